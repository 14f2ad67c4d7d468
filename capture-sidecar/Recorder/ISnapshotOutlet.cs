namespace KubeCapture.Agent.Recorder;

/// <summary>
/// Where a recording's snapshots go: files in --snapshot-dir (<see cref="SnapshotFiles"/>, local
/// mode), or each its own upload to the operator's ingest (<see cref="SnapshotUploads"/>, cluster
/// mode, where the root filesystem is read-only). Called on the capture thread: nothing here may
/// wait for the network.
/// </summary>
public interface ISnapshotOutlet
{
    /// <summary>Where snapshot <paramref name="number"/> is written; throws IOException or UnauthorizedAccessException when it cannot be.</summary>
    SnapshotOutput Open(int number);

    /// <summary>The snapshot is written whole (or as far as it could be): keep it, with its manifest.</summary>
    void Publish(SnapshotOutput output, SnapshotManifest manifest);
}

/// <summary>One snapshot's pcap on its way: the stream the writer writes to, what it is called, and how to hash what reached it when writing failed part-way.</summary>
public sealed record SnapshotOutput(Stream Stream, string Name, Func<string> HashWritten);
