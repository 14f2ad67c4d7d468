using System.Runtime.CompilerServices;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Storage;

/// <summary>
/// The embedded default store: a directory. Parts are files beside the checkpoint until the upload
/// completes; completion concatenates them into <c>pod.pcap.tmp</c>, syncs it and renames it into
/// place, so the pcap name only ever holds a whole file. Every write is synced before it is
/// acknowledged.
/// </summary>
public sealed class LocalArtifactStore(string root, string prefix) : IArtifactStore
{
    private readonly string _root = Path.GetFullPath(root);
    private readonly ArtifactLayout _layout = new(prefix);

    public string UriOf(CaptureIdentity target) => new Uri(PathOf(_layout.PcapKey(target))).AbsoluteUri;

    public async Task<UploadCheckpoint?> LoadCheckpointAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        var path = PathOf(_layout.CheckpointKey(target));
        return File.Exists(path) ? StorageJsonContext.ReadCheckpoint(await File.ReadAllBytesAsync(path, cancellationToken)) : null;
    }

    public Task SaveCheckpointAsync(UploadCheckpoint checkpoint, CancellationToken cancellationToken) =>
        WriteAtomicallyAsync(PathOf(_layout.CheckpointKey(checkpoint.Target)), StorageJsonContext.Serialize(checkpoint), cancellationToken);

    public Task<string> BeginUploadAsync(CaptureIdentity target, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        var uploadId = Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(PartsDirectory(target, uploadId));
        return Task.FromResult(uploadId);
    }

    public async Task<string> UploadPartAsync(CaptureIdentity target, string uploadId, int partNumber, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var directory = PartsDirectory(target, uploadId);
        if (!Directory.Exists(directory))
        {
            throw new InvalidOperationException($"no upload {uploadId} for {target.Namespace}/{target.CaptureName}/{target.Pod}");
        }

        await WriteAtomicallyAsync(Path.Combine(directory, $"{partNumber}.part"), data, cancellationToken);
        return $"{partNumber}-{data.Length}";
    }

    public async Task<StoredCaptureManifest> CompleteUploadAsync(UploadCheckpoint checkpoint, StoredCaptureManifest manifest, ManifestSeal seal, CancellationToken cancellationToken)
    {
        if (manifest.Retention is { } retention && (retention.Lock != "none" || retention.LegalHold))
        {
            // The reconciler's preflight refuses such a capture before it starts; never store it unlocked.
            throw new S3ErrorException(System.Net.HttpStatusCode.NotImplemented, "ObjectLockUnavailable", NoObjectLock);
        }

        var target = checkpoint.Target;
        var pcap = PathOf(_layout.PcapKey(target));
        var directory = PartsDirectory(target, checkpoint.UploadId);
        if (Directory.Exists(directory))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(pcap)!);
            var temporary = pcap + ".tmp";
            await using (var output = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                foreach (var part in checkpoint.Parts.OrderBy(p => p.Number))
                {
                    await using var input = new FileStream(Path.Combine(directory, $"{part.Number}.part"), FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
                    if (input.Length != part.Size)
                    {
                        throw new IOException($"part {part.Number} of {pcap} has {input.Length} bytes, the checkpoint says {part.Size}");
                    }

                    await input.CopyToAsync(output, cancellationToken);
                }

                output.Flush(flushToDisk: true);
            }

            File.Move(temporary, pcap, overwrite: true);
            Directory.Delete(directory, recursive: true);
        }
        else if (!File.Exists(pcap) || new FileInfo(pcap).Length != checkpoint.Offset)
        {
            throw new IOException($"upload {checkpoint.UploadId} of {pcap} has neither its parts nor a complete file");
        }

        await WriteAtomicallyAsync(PathOf(_layout.ManifestKey(target)), seal(manifest), cancellationToken);
        return manifest;
    }

    public Task AmendManifestAsync(StoredCaptureManifest manifest, ManifestSeal seal, CancellationToken cancellationToken) =>
        WriteAtomicallyAsync(PathOf(_layout.ManifestKey(manifest.Target)), seal(manifest), cancellationToken);

    public Task RemoveCheckpointAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        File.Delete(PathOf(_layout.CheckpointKey(target)));
        return Task.CompletedTask;
    }

    public Task AbortUploadAsync(UploadCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        var directory = PartsDirectory(checkpoint.Target, checkpoint.UploadId);
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }

        File.Delete(PathOf(_layout.CheckpointKey(checkpoint.Target)));
        return Task.CompletedTask;
    }

    public async Task<StoredCaptureManifest?> FindStoredAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        var bytes = await ReadStoredManifestAsync(target, cancellationToken);
        return bytes is null ? null : StorageJsonContext.ReadManifest(bytes);
    }

    public async Task<byte[]?> ReadStoredManifestAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        var path = PathOf(_layout.ManifestKey(target));
        return File.Exists(path) ? await File.ReadAllBytesAsync(path, cancellationToken) : null;
    }

    public Task<Stream?> OpenStoredAsync(StoredCaptureManifest stored, CancellationToken cancellationToken)
    {
        try
        {
            return Task.FromResult<Stream?>(new FileStream(PathOf(_layout.PcapKey(stored.Target)), FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, useAsync: true));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<Stream?>(null);
        }
    }

    public async IAsyncEnumerable<StoredCaptureManifest> ListStoredAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var top = PathOf(_layout.Join(""));
        if (!Directory.Exists(top))
        {
            yield break;
        }

        var checkpoints = PathOf(_layout.CheckpointPrefix);
        foreach (var path in Directory.EnumerateFiles(top, "*.manifest.json", SearchOption.AllDirectories))
        {
            if (!path.StartsWith(checkpoints, StringComparison.Ordinal))
            {
                yield return StorageJsonContext.ReadManifest(await File.ReadAllBytesAsync(path, cancellationToken));
            }
        }
    }

    public async IAsyncEnumerable<UploadCheckpoint> ListCheckpointsAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var top = PathOf(_layout.CheckpointPrefix);
        if (!Directory.Exists(top))
        {
            yield break;
        }

        foreach (var path in Directory.EnumerateFiles(top, "*.json", SearchOption.AllDirectories))
        {
            yield return StorageJsonContext.ReadCheckpoint(await File.ReadAllBytesAsync(path, cancellationToken));
        }
    }

    private const string NoObjectLock = "the local filesystem store cannot lock objects: use an S3 bucket with Object Lock for locked or held captures";

    public Task<string?> CheckObjectLockAsync(CancellationToken cancellationToken) => Task.FromResult<string?>(NoObjectLock);

    public Task DeleteStoredAsync(StoredCaptureManifest stored, CancellationToken cancellationToken)
    {
        File.Delete(PathOf(_layout.PcapKey(stored.Target)));
        File.Delete(PathOf(_layout.ManifestKey(stored.Target)));
        return Task.CompletedTask;
    }

    public Task<string?> CheckAsync(CancellationToken cancellationToken)
    {
        try
        {
            Directory.CreateDirectory(_root);
            var probe = Path.Combine(_root, $".ready-{Environment.ProcessId}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return Task.FromResult<string?>(null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Task.FromResult<string?>($"the local store {_root} is not writable: {e.Message}");
        }
    }

    private string PartsDirectory(CaptureIdentity target, string uploadId) =>
        PathOf(_layout.Join($"{ArtifactLayout.CheckpointFolder}/{target.Namespace}/{target.CaptureName}/{ArtifactLayout.NameOf(target)}.{uploadId}.parts"));

    private string PathOf(string key) => Path.Combine(_root, key);

    private static async Task WriteAtomicallyAsync(string path, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temporary = path + ".tmp";
        await using (var file = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
        {
            await file.WriteAsync(data, cancellationToken);
            file.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
    }
}
