using System.Globalization;
using System.Security.Cryptography;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Arguments;
using KubeCapture.KubectlPlugin.Cli;
using KubeCapture.KubectlPlugin.Cluster;

namespace KubeCapture.KubectlPlugin.Commands;

/// <summary>
/// <c>download NAME [--pod P] [--snapshot N] [-o FILE|-]</c>: the stored pcap (or snapshot N of a
/// flight recording) through kube-apiserver, its SHA-256
/// computed while the bytes arrive and compared with the server's header; written to FILE.partial
/// and renamed to FILE only when it matches (a mismatch keeps FILE.partial, nothing is lost, exit 1);
/// then the signed manifest beside it, FILE.manifest.json.
/// </summary>
public static class DownloadCommand
{
    public const string ManifestSuffix = ".manifest.json";
    public const string PartialSuffix = ".partial";

    /// <summary>What to download where: checked before the cluster is asked (an existing file is never overwritten: exit 2).</summary>
    public sealed record Request(string Name, string? Pod, string Output, int Snapshot = 0);

    public static Request Check(PluginArguments args)
    {
        args.Allow("--pod", "--output", "--snapshot");
        var name = ResourceCommands.OneName(args);
        var pod = args.Option("--pod");
        var snapshot = args.Option("--snapshot") is { } n
            ? int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index >= 1 ? index
                : throw new UsageException($"invalid --snapshot '{n}': the snapshot's number, 1 for the first (kubectl capture status {name} lists them)")
            : 0;
        var output = args.Option("--output") ?? $"{name}{(pod is null ? "" : "-" + pod)}{(snapshot == 0 ? "" : $"-snapshot-{snapshot}")}.pcap";
        if (output != "-")
        {
            foreach (var existing in new[] { output, output + ManifestSuffix }.Where(File.Exists))
            {
                throw new UsageException($"'{existing}' already exists: choose another -o FILE, or move it away (a download never overwrites evidence)");
            }
        }

        return new Request(name, pod, output, snapshot);
    }

    public static async Task<int> RunAsync(Request request, ClusterConnection cluster, TextWriter stdout, TextWriter stderr, Func<Stream> openStdout, CancellationToken cancellationToken)
    {
        var (name, pod, output, snapshot) = request;
        var toStdout = output == "-";

        using var response = await cluster.GetStreamAsync(ExtensionApi.PathOf(cluster.Namespace, name, ExtensionApi.Pcap, pod, snapshot), cancellationToken);
        var expected = response.Headers.TryGetValues(ExtensionApi.Sha256Header, out var values) ? values.FirstOrDefault() : null;
        var length = response.Content.Headers.ContentLength;
        var partial = output + PartialSuffix;
        var where = toStdout ? "the bytes written to stdout" : $"the bytes are kept in {partial}";
        var progress = new CopyProgress();
        string actual;
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            await using var target = toStdout ? openStdout() : Open(partial, FileMode.Create); // a .partial left by a failed download is replaced
            actual = await CopyHashingAsync(body, target, progress, cancellationToken);
        }
        catch (IOException e)
        {
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"kubectl-capture: the download broke off after {progress.Bytes} bytes ({e.Message}); {where} are incomplete, download again"));
            return 1;
        }

        var received = progress.Bytes;
        if (expected is null)
        {
            stderr.WriteLine($"kubectl-capture: the server sent no {ExtensionApi.Sha256Header} header: the download cannot be checked; {where}");
            return 1;
        }

        if (length is { } declared && declared != received)
        {
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"kubectl-capture: the download ended after {received} of {declared} bytes; {where} are incomplete, download again"));
            return 1;
        }

        if (!string.Equals(expected, actual, StringComparison.OrdinalIgnoreCase))
        {
            stderr.WriteLine($"kubectl-capture: SHA-256 mismatch: the bytes received hash to {actual}, the stored pcap's is {expected}; {where} and are NOT the stored pcap, download again");
            return 1;
        }

        var report = toStdout ? stderr : stdout;
        if (toStdout)
        {
            report.WriteLine(string.Create(CultureInfo.InvariantCulture, $"kubectl-capture: {received} bytes, SHA-256 {actual} as stored (no manifest written with -o -; get it with -o FILE)"));
            return 0;
        }

        File.Move(partial, output);
        report.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{output}: {received} bytes, SHA-256 {actual} as stored"));
        var manifestPath = output + ManifestSuffix;
        try
        {
            using var manifest = await cluster.GetStreamAsync(ExtensionApi.PathOf(cluster.Namespace, name, ExtensionApi.Manifest, pod, snapshot), cancellationToken);
            await using var body = await manifest.Content.ReadAsStreamAsync(cancellationToken);
            await using var file = Open(manifestPath, FileMode.CreateNew);
            await body.CopyToAsync(file, cancellationToken);
        }
        catch (ClusterException e)
        {
            stderr.WriteLine($"kubectl-capture: the pcap is in {output}, but its manifest could not be read: {e.Message}");
            return 1;
        }

        report.WriteLine($"{manifestPath}: its signed manifest (check both: kubectl capture verify {output} --public-key KEY)");
        return 0;
    }

    private static FileStream Open(string path, FileMode mode)
    {
        try
        {
            return new FileStream(path, mode, FileAccess.Write, FileShare.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ClusterException($"cannot write '{path}': {e.Message}");
        }
    }

    /// <summary>Bytes copied so far: what a broken download got.</summary>
    private sealed class CopyProgress
    {
        public long Bytes { get; set; }
    }

    private static async Task<string> CopyHashingAsync(Stream source, Stream target, CopyProgress progress, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[81920];
        int read;
        while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
            progress.Bytes += read;
        }

        await target.FlushAsync(cancellationToken);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
