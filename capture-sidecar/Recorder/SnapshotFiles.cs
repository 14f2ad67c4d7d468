namespace KubeCapture.Agent.Recorder;

/// <summary>
/// Local mode: snapshot N is <c>DIR/kubecapture-record-START-N.pcap</c>, its manifest beside it as
/// <c>.pcap.json</c> and one JSON line on stdout.
/// </summary>
public sealed class SnapshotFiles(string directory, DateTime started, TextWriter stdout, TextWriter stderr) : ISnapshotOutlet
{
    /// <summary>DIR/kubecapture-record-UTC: the snapshots are PREFIX-N.pcap.</summary>
    public string Prefix { get; } = FilePrefix(directory, started);

    /// <summary>The snapshot files of a recording started at <paramref name="started"/>: DIR/kubecapture-record-UTC-N.pcap.</summary>
    public static string FilePrefix(string directory, DateTime started) =>
        Path.Combine(directory, $"kubecapture-record-{started.ToUniversalTime():yyyyMMdd'T'HHmmss'Z'}");

    public SnapshotOutput Open(int number)
    {
        var path = Path.GetFullPath($"{Prefix}-{number}.pcap");
        var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 0);
        return new SnapshotOutput(file, path, () => HashOnDisk(path));
    }

    public void Publish(SnapshotOutput output, SnapshotManifest manifest)
    {
        var line = manifest.ToJsonLine();
        try
        {
            File.WriteAllText(output.Name + ".json", line + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"kubecapture-agent: writing {output.Name}.json failed: {e.Message}; its manifest is the line on stdout");
        }

        stdout.WriteLine(line);
        stdout.Flush();
    }

    /// <summary>The file was cut back to its last whole record: the SHA-256 of what it holds.</summary>
    private static string HashOnDisk(string path)
    {
        try
        {
            using var written = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(written));
        }
        catch (IOException)
        {
            return "";
        }
    }
}
