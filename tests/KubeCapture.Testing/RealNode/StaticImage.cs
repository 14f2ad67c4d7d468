using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// An OCI image archive of one layer made of this machine's static binaries, for what no registry
/// can give here: the pause image (catatonit in pause mode) and a busybox for test pods. Written
/// as an OCI image layout in a tar (what <c>ctr images import</c> reads), named by the
/// <c>io.containerd.image.name</c> annotation.
/// </summary>
public static class StaticImage
{
    /// <summary>The pause image: /pause is catatonit, run with -P (pause mode).</summary>
    public static void WritePause(string archive) =>
        Write(archive, NodeLayout.PauseImage, [new ImageFile("pause", NodeBinaries.Catatonit)], [], ["/pause", "-P"], user: "65535:65535");

    /// <summary>Busybox with its applets as links (sh, httpd, wget, ping, nc, sleep, ...): command given by the pod.</summary>
    public static void WriteBusybox(string archive)
    {
        string[] applets = ["sh", "httpd", "wget", "ping", "nc", "sleep", "echo", "cat", "ls", "mkdir", "true", "false", "env", "hostname", "ip", "nslookup", "head", "dd", "seq", "kill"];
        Write(archive, NodeLayout.BusyboxImage, [new ImageFile("bin/busybox", NodeBinaries.Busybox)],
            [.. applets.Select(a => ($"bin/{a}", "busybox"))], ["/bin/sh"], user: null);
    }

    private static void Write(string archive, string name, IReadOnlyList<ImageFile> files, IReadOnlyList<(string Link, string Target)> links, string[] entrypoint, string? user)
    {
        var layer = Layer(files, links);
        var layerDigest = Digest(layer);
        var configuration = new JsonObject
        {
            ["architecture"] = "amd64",
            ["os"] = "linux",
            ["config"] = new JsonObject
            {
                ["Entrypoint"] = new JsonArray([.. entrypoint.Select(e => (JsonNode)e)]),
                ["Env"] = new JsonArray("PATH=/bin"),
            },
            ["rootfs"] = new JsonObject { ["type"] = "layers", ["diff_ids"] = new JsonArray(layerDigest) },
        };
        if (user is not null)
        {
            configuration["config"]!["User"] = user;
        }

        var config = Encoding.UTF8.GetBytes(configuration.ToJsonString());
        var manifest = Encoding.UTF8.GetBytes(new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = "application/vnd.oci.image.manifest.v1+json",
            ["config"] = Descriptor("application/vnd.oci.image.config.v1+json", config),
            ["layers"] = new JsonArray(Descriptor("application/vnd.oci.image.layer.v1.tar", layer)),
        }.ToJsonString());
        var named = Descriptor("application/vnd.oci.image.manifest.v1+json", manifest);
        named["annotations"] = new JsonObject { ["io.containerd.image.name"] = name, ["org.opencontainers.image.ref.name"] = name.Split(':')[^1] };
        var index = new JsonObject
        {
            ["schemaVersion"] = 2,
            ["mediaType"] = "application/vnd.oci.image.index.v1+json",
            ["manifests"] = new JsonArray(named),
        };

        using var output = File.Create(archive);
        using var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: false);
        Add(tar, "oci-layout", Encoding.UTF8.GetBytes("""{"imageLayoutVersion":"1.0.0"}"""));
        Add(tar, "index.json", Encoding.UTF8.GetBytes(index.ToJsonString()));
        foreach (var blob in new[] { layer, config, manifest })
        {
            Add(tar, "blobs/sha256/" + Digest(blob)["sha256:".Length..], blob);
        }
    }

    private static byte[] Layer(IReadOnlyList<ImageFile> files, IReadOnlyList<(string Link, string Target)> links)
    {
        using var buffer = new MemoryStream();
        using (var tar = new TarWriter(buffer, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var directory in files.Select(f => Path.GetDirectoryName(f.PathInImage)).Concat(links.Select(l => Path.GetDirectoryName(l.Link))).Where(d => !string.IsNullOrEmpty(d)).Distinct())
            {
                tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, directory + "/") { Mode = (UnixFileMode)0b111_101_101 });
            }

            // A world-writable /tmp, as images have: a pod running as any user writes there.
            tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "tmp/") { Mode = (UnixFileMode)0b1_111_111_111 });
            foreach (var file in files)
            {
                var entry = new PaxTarEntry(TarEntryType.RegularFile, file.PathInImage)
                {
                    Mode = (UnixFileMode)0b111_101_101,
                    DataStream = new MemoryStream(File.ReadAllBytes(file.Source)),
                };
                tar.WriteEntry(entry);
            }

            foreach (var (link, target) in links)
            {
                tar.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, link) { LinkName = target, Mode = (UnixFileMode)0b111_111_111 });
            }
        }

        return buffer.ToArray();
    }

    private static void Add(TarWriter tar, string name, byte[] content) =>
        tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { Mode = (UnixFileMode)0b110_100_100, DataStream = new MemoryStream(content) });

    private static string Digest(byte[] content) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(content));

    private static JsonObject Descriptor(string mediaType, byte[] content) => new()
    {
        ["mediaType"] = mediaType,
        ["digest"] = Digest(content),
        ["size"] = content.Length,
    };

    private sealed record ImageFile(string PathInImage, string Source);
}
