using System.Buffers;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// One target's pcap on its way into storage: bytes are hashed and gathered into a part buffer; a
/// full part is uploaded while the next one fills (two buffers, so memory stays at two parts
/// whatever the capture's size), then the checkpoint is saved, and only then are the bytes
/// acknowledged to the agent.
/// </summary>
public sealed class PartPipeline : IAsyncDisposable
{
    private readonly IArtifactStore _store;
    private readonly TimeSpan _retryBudget;
    private readonly ILogger _logger;
    private readonly Action<long> _durable;
    private readonly ResumableSha256 _sha;
    private readonly CancellationToken _cancellationToken;
    private readonly int _partSize;
    private byte[] _filling;
    private byte[] _spare;
    private int _filled;
    private Task? _inflight;

    public PartPipeline(IArtifactStore store, UploadCheckpoint checkpoint, int partSize, TimeSpan retryBudget, ILogger logger, Action<long> durable, CancellationToken cancellationToken)
    {
        _store = store;
        Checkpoint = checkpoint;
        _retryBudget = retryBudget;
        _logger = logger;
        _durable = durable;
        _cancellationToken = cancellationToken;
        _sha = ResumableSha256.Import(checkpoint.Sha256State);
        _partSize = partSize;
        _filling = ArrayPool<byte>.Shared.Rent(partSize); // reused by the next upload, not left to the LOH
        _spare = ArrayPool<byte>.Shared.Rent(partSize);
        Received = checkpoint.Offset;
    }

    /// <summary>What is durably stored (updated once each part and its checkpoint are written).</summary>
    public UploadCheckpoint Checkpoint { get; private set; }

    /// <summary>Bytes received so far (stored or not).</summary>
    public long Received { get; private set; }

    public async ValueTask AppendAsync(ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            var room = _partSize - _filled;
            var take = Math.Min(room, data.Length);
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

    /// <summary>Stores the last part and returns the SHA-256 of everything, once every part is durable.</summary>
    public async Task<string> DrainAsync()
    {
        if (_filled > 0)
        {
            await SealAsync();
        }

        if (_inflight is not null)
        {
            await _inflight;
            _inflight = null;
        }

        return _sha.HashHex();
    }

    private async Task SealAsync()
    {
        if (_inflight is not null)
        {
            await _inflight; // at most one part in flight: memory stays at two buffers
        }

        var part = _filling;
        var length = _filled;
        (_filling, _spare) = (_spare, part);
        _filled = 0;
        _inflight = StoreAsync(part, length, _sha.ExportState(), Received);
    }

    private async Task StoreAsync(byte[] part, int length, string shaState, long offset)
    {
        var checkpoint = Checkpoint;
        var number = checkpoint.Parts.Count + 1;
        var target = checkpoint.Target;
        var etag = await StorageRetry.RunAsync(
            $"uploading part {number} of {target.Namespace}/{target.CaptureName}/{target.Pod}",
            _retryBudget,
            ct => _store.UploadPartAsync(target, checkpoint.UploadId, number, part.AsMemory(0, length), ct),
            _logger,
            _cancellationToken);
        var next = checkpoint with
        {
            Parts = [.. checkpoint.Parts, new UploadedPart(number, length, etag)],
            Offset = offset,
            Sha256State = shaState,
            UpdatedAt = DateTimeOffset.UtcNow,
        };
        // Not cancelled with the stream: a checkpoint write cut half-way could leave a torn object
        // on stores whose PUT is not atomic (s3rver). The part above may be cut: it is not recorded.
        using var saveTimeout = new CancellationTokenSource(_retryBudget + TimeSpan.FromSeconds(30));
        await StorageRetry.RunAsync(
            $"saving the upload checkpoint of {target.Namespace}/{target.CaptureName}/{target.Pod}",
            _retryBudget,
            ct => _store.SaveCheckpointAsync(next, ct),
            _logger,
            saveTimeout.Token);
        Checkpoint = next;
        _durable(offset);
    }

    public async ValueTask DisposeAsync()
    {
        if (_inflight is not null)
        {
            try
            {
                await _inflight;
            }
            catch (Exception)
            {
                // the stream already ended; what is durable is in the checkpoint
            }
        }

        ArrayPool<byte>.Shared.Return(_filling);
        ArrayPool<byte>.Shared.Return(_spare);
    }
}
