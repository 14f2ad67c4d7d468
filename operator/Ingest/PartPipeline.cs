using System.Buffers;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// One target's pcap on its way into storage: bytes are hashed and gathered into a part buffer; a
/// full part starts uploading at once while the next one fills, with at most
/// <c>Storage:PartsInFlight</c> parts uploading together. Parts are committed in order: once a part
/// and every part before it are stored, the checkpoint is saved, and only then are the bytes
/// acknowledged to the agent. Memory stays at (parts in flight + 1) parts, whatever the pcap's size.
/// </summary>
public sealed class PartPipeline : IAsyncDisposable
{
    /// <summary>
    /// Part buffers of every upload: a bounded pool without per-thread caches, so buffers are reused
    /// across uploads (not left to the large-object heap) and the pool never hoards more than a few.
    /// </summary>
    private const int InitialBuffer = 64 << 10;

    private static readonly ArrayPool<byte> Parts = ArrayPool<byte>.Create(maxArrayLength: 64 << 20, maxArraysPerBucket: 6);

    private readonly IArtifactStore _store;
    private readonly TimeSpan _retryBudget;
    private readonly ILogger _logger;
    private readonly Action<long> _durable;
    private readonly ResumableSha256 _sha;
    private readonly CancellationToken _cancellationToken;
    private readonly int _partSize;
    private readonly int _partsInFlight;
    private readonly Queue<Task> _commits = new();
    private byte[] _filling;
    private int _filled;
    private int _nextPartNumber;
    private Task _lastCommit = Task.CompletedTask;

    public PartPipeline(IArtifactStore store, UploadCheckpoint checkpoint, int partSize, int partsInFlight, TimeSpan retryBudget, ILogger logger, Action<long> durable, CancellationToken cancellationToken)
    {
        _store = store;
        Checkpoint = checkpoint;
        _retryBudget = retryBudget;
        _logger = logger;
        _durable = durable;
        _cancellationToken = cancellationToken;
        _sha = ResumableSha256.Import(checkpoint.Sha256State);
        _partSize = partSize;
        _partsInFlight = Math.Max(1, partsInFlight);
        _filling = Parts.Rent(InitialBuffer);
        _nextPartNumber = checkpoint.Parts.Count + 1;
        Received = checkpoint.Offset;
    }

    /// <summary>What is durably stored (updated once each part, in order, and its checkpoint are written).</summary>
    public UploadCheckpoint Checkpoint { get; private set; }

    /// <summary>Bytes received so far (stored or not).</summary>
    public long Received { get; private set; }

    public async ValueTask AppendAsync(ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            var take = Math.Min(_partSize - _filled, data.Length);
            Reserve(_filled + take);
            var slice = data.Span[..take];
            slice.CopyTo(_filling.AsSpan(_filled));
            _sha.Append(slice);
            _filled += take;
            Received += take;
            data = data[take..];
            if (_filled == _partSize)
            {
                await SealAsync();
            }
        }
    }

    /// <summary>
    /// Grows the part being filled as bytes arrive (doubling, up to the part size), so the thousand
    /// small captures of a busy cluster hold kilobytes each, not a whole part each.
    /// </summary>
    private void Reserve(int needed)
    {
        if (needed <= _filling.Length)
        {
            return;
        }

        var grown = Parts.Rent(Math.Min(_partSize, Math.Max(needed, _filling.Length * 2)));
        _filling.AsSpan(0, _filled).CopyTo(grown);
        Parts.Return(_filling);
        _filling = grown;
    }

    /// <summary>Stores the last part and returns the SHA-256 of everything, once every part is durable.</summary>
    public async Task<string> DrainAsync()
    {
        if (_filled > 0)
        {
            await SealAsync();
        }

        while (_commits.Count > 0)
        {
            await _commits.Dequeue();
        }

        return _sha.HashHex();
    }

    private async Task SealAsync()
    {
        while (_commits.Count >= _partsInFlight)
        {
            await _commits.Dequeue(); // bounded: at most this many parts held for upload
        }

        var part = _filling;
        var length = _filled;

        // A stream that filled a whole part is a large one: its next part starts at full size instead
        // of growing again from 64 KiB (which copied each part about twice more and kept buffers of
        // every intermediate size in the pool).
        _filling = Parts.Rent(length == _partSize ? _partSize : InitialBuffer);
        _filled = 0;
        var number = _nextPartNumber++;
        var upload = UploadAsync(number, part, length);
        _lastCommit = CommitAsync(upload, _lastCommit, number, part, length, _sha.ExportState(), Received);
        _commits.Enqueue(_lastCommit);
    }

    private Task<string> UploadAsync(int number, byte[] part, int length)
    {
        var target = Checkpoint.Target;
        var uploadId = Checkpoint.UploadId;
        return StorageRetry.RunAsync(
            $"uploading part {number} of {target.Namespace}/{target.CaptureName}/{target.Pod}",
            _retryBudget,
            ct => _store.UploadPartAsync(target, uploadId, number, part.AsMemory(0, length), ct),
            _logger,
            _cancellationToken);
    }

    private async Task CommitAsync(Task<string> upload, Task previous, int number, byte[] part, int length, string shaState, long offset)
    {
        string etag;
        try
        {
            etag = await upload;
        }
        finally
        {
            Parts.Return(part);
        }

        await previous; // in order: a part is committed only after every part before it
        var next = Checkpoint with
        {
            Parts = [.. Checkpoint.Parts, new UploadedPart(number, length, etag)],
            Offset = offset,
            Sha256State = shaState,
            UpdatedAt = DateTimeOffset.UtcNow,
        };

        // A part upload may be cut with the stream: it is not recorded. The checkpoint write is not.
        await SaveCheckpointAsync(_store, next, _retryBudget, _logger);
        Checkpoint = next;
        _durable(offset);
    }

    /// <summary>
    /// Saves a checkpoint, the first of an upload or a later one, with retries within the budget.
    /// Not cancelled with the stream: a checkpoint write cut half-way could leave a torn or empty
    /// object on stores whose PUT is not atomic (s3rver), and every later open of the target would
    /// fail on it.
    /// </summary>
    public static async Task SaveCheckpointAsync(IArtifactStore store, UploadCheckpoint checkpoint, TimeSpan retryBudget, ILogger logger)
    {
        var target = checkpoint.Target;
        using var saveTimeout = new CancellationTokenSource(retryBudget + TimeSpan.FromSeconds(30));
        await StorageRetry.RunAsync(
            $"saving the upload checkpoint of {target.Namespace}/{target.CaptureName}/{target.Pod}",
            retryBudget,
            ct => store.SaveCheckpointAsync(checkpoint, ct),
            logger,
            saveTimeout.Token);
    }

    public async ValueTask DisposeAsync()
    {
        while (_commits.Count > 0)
        {
            try
            {
                await _commits.Dequeue();
            }
            catch (Exception)
            {
                // the stream already ended; what is durable is in the checkpoint
            }
        }

        Parts.Return(_filling);
    }
}
