using KubeCapture.Agent.Ingest;

namespace KubeCapture.Agent.Recorder;

/// <summary>
/// Cluster mode: each snapshot is its own upload to the operator's ingest (Open.snapshot_index N, the
/// recording's session), streamed as it is written from an <see cref="UploadBuffer"/> in memory (the
/// ephemeral container's root filesystem is read-only): the ring's records at once, then the packets
/// as they come, resumed and retried as a capture's upload is. The buffer holds the ring's size and
/// the capture's unacknowledged budget, so writing the ring into it never waits for the network; the
/// packets after the trigger wait for acknowledgements as a capture's do. Once stored, the snapshot's
/// manifest is printed as one JSON line, its <c>file</c> the stored object.
/// </summary>
public sealed class SnapshotUploads(IngestTarget target, IngestUploader recording, Action<string> stopRequested, long ringCapacity, TextWriter stdout, TextWriter stderr) : ISnapshotOutlet
{
    private readonly Dictionary<int, (IngestUploader Uploader, UploadBuffer Buffer, Task<StoredPcap> Upload)> _open = [];
    private readonly List<Task<bool>> _published = [];

    public SnapshotOutput Open(int number)
    {
        var buffer = new UploadBuffer((int)Math.Min(ringCapacity + target.BufferBytes, Array.MaxLength));
        var uploader = new IngestUploader(target, buffer, stopRequested, stderr, number, recording);
        var upload = Task.Run(() => uploader.RunAsync(CancellationToken.None));
        _open[number] = (uploader, buffer, upload);
        return new SnapshotOutput(buffer, $"snapshot {number} to {target.Url}", () => "");
    }

    public void Publish(SnapshotOutput output, SnapshotManifest manifest)
    {
        if (!_open.Remove(manifest.Snapshot, out var open))
        {
            throw new InvalidOperationException($"snapshot {manifest.Snapshot} was never opened");
        }

        open.Uploader.Finish(manifest.Sha256, manifest.ToJsonLine());
        _published.Add(open.Upload.ContinueWith(upload =>
        {
            open.Uploader.Dispose();
            if (upload.IsCompletedSuccessfully)
            {
                var stored = upload.Result;
                lock (stdout)
                {
                    stdout.WriteLine((manifest with { File = stored.Uri }).ToJsonLine());
                    stdout.Flush();
                }

                stderr.WriteLine($"kubecapture-agent: snapshot {manifest.Snapshot} stored {stored.Uri} ({stored.Size} bytes, sha256 {stored.Sha256})");
                return manifest.Error is null;
            }

            stderr.WriteLine($"kubecapture-agent: snapshot {manifest.Snapshot} was not stored: {upload.Exception?.GetBaseException().Message}");
            return false;
        }, TaskScheduler.Default));
    }

    /// <summary>Waits for every snapshot handed over to be stored (or to fail for good); how many were not stored whole.</summary>
    public int WaitForAll() => Task.WhenAll(_published).GetAwaiter().GetResult().Count(stored => !stored);
}
