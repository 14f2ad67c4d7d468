using System.Collections.Concurrent;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// What this operator process knows about every target's upload: its status (for the reconciler),
/// which stream currently owns it, early-stop requests, and the resume window of disconnected agents.
/// What is finished is found again in storage after a restart.
/// </summary>
public sealed class UploadRegistry(
    IArtifactStore store,
    Microsoft.Extensions.Options.IOptions<IngestOptions> options,
    Microsoft.Extensions.Options.IOptions<StorageOptions> storageOptions,
    ILogger<UploadRegistry> logger) : IIngestStatus
{
    private readonly ConcurrentDictionary<CaptureIdentity, TargetUpload> _uploads = new();
    private readonly ConcurrentDictionary<CaptureIdentity, TargetSlot> _slots = new();
    private readonly ConcurrentDictionary<string, string> _stops = new();

    public event Action<TargetUpload>? Changed;

    public async Task<TargetUpload?> GetAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        if (_uploads.TryGetValue(target, out var upload))
        {
            return upload;
        }

        var stored = await store.FindStoredAsync(target, cancellationToken);
        if (stored is not null && stored.CaptureUid == target.CaptureUid)
        {
            return FromStored(stored);
        }

        var checkpoint = await store.LoadCheckpointAsync(target, cancellationToken);
        return checkpoint is null || checkpoint.Target.CaptureUid != target.CaptureUid
            ? null
            : new TargetUpload { Target = target, Phase = UploadPhase.Streaming, Bytes = checkpoint.Offset, UpdatedAt = checkpoint.UpdatedAt };
    }

    public void RequestStop(string captureUid)
    {
        _stops[captureUid] = "the capture was stopped";
        foreach (var slot in _slots.Values)
        {
            if (slot.Target.CaptureUid == captureUid)
            {
                slot.Owner?.RequestStop("the capture was stopped");
            }
        }
    }

    /// <summary>Why the capture was asked to stop, or null.</summary>
    public string? StopRequested(string captureUid) => _stops.GetValueOrDefault(captureUid);

    /// <summary>True while a stream of this process owns the target (the sweeper leaves it alone).</summary>
    public bool IsActive(CaptureIdentity target) => _slots.TryGetValue(target, out var slot) && slot.Owner is not null;

    public TargetUpload? Current(CaptureIdentity target) => _uploads.GetValueOrDefault(target);

    public void Publish(TargetUpload upload)
    {
        _uploads[upload.Target] = upload;
        Changed?.Invoke(upload);
    }

    public void Update(CaptureIdentity target, Func<TargetUpload, TargetUpload> change)
    {
        var updated = _uploads.AddOrUpdate(
            target,
            _ => change(new TargetUpload { Target = target, Phase = UploadPhase.Streaming, UpdatedAt = DateTimeOffset.UtcNow }),
            (_, current) => change(current));
        Changed?.Invoke(updated);
    }

    public static TargetUpload FromStored(StoredCaptureManifest stored) => new()
    {
        Target = stored.Target,
        Phase = UploadPhase.Finished,
        Packets = stored.Agent?.PacketsWritten ?? 0,
        Bytes = stored.Size,
        DroppedByKernel = stored.Agent?.PacketsDroppedByKernel ?? 0,
        Manifest = stored.Agent,
        Artifact = stored.ToArtifact(),
        UpdatedAt = stored.StoredAt,
    };

    /// <summary>
    /// Makes <paramref name="owner"/> the only stream of the target: an older stream of the same target
    /// (a half-dead connection the agent has given up on) is cancelled, and this call waits until it
    /// has let go. Dispose the result to let go.
    /// </summary>
    public async Task<IDisposable> AcquireAsync(CaptureIdentity target, IStreamOwner owner, CancellationToken cancellationToken)
    {
        var slot = _slots.GetOrAdd(target, t => new TargetSlot(t));
        slot.Owner?.Supersede();
        await slot.Lock.WaitAsync(cancellationToken);
        slot.Owner = owner;
        slot.Generation++;
        return new Release(this, slot, owner);
    }

    private void Disconnected(TargetSlot slot, IStreamOwner owner, int generation)
    {
        _ = owner;
        slot.Owner = null;
        slot.Lock.Release();
        var current = Current(slot.Target);
        if (current is null || current.Phase != UploadPhase.Streaming)
        {
            return;
        }

        // The agent may come back (stream cut, operator restart); past the window, the upload is abandoned.
        var window = options.Value.ResumeWindow;
        _ = Task.Run(async () =>
        {
            await Task.Delay(window);
            if (slot.Generation != generation || slot.Owner is not null)
            {
                return; // the agent came back
            }

            await slot.Lock.WaitAsync();
            try
            {
                if (slot.Generation != generation || Current(slot.Target)?.Phase != UploadPhase.Streaming)
                {
                    return;
                }

                var budget = storageOptions.Value.RetryBudget;
                var checkpoint = await StorageRetry.RunAsync("reading the upload checkpoint", budget, ct => store.LoadCheckpointAsync(slot.Target, ct), logger, CancellationToken.None);
                if (checkpoint is not null)
                {
                    await StorageRetry.RunAsync("aborting the abandoned upload", budget, ct => store.AbortUploadAsync(checkpoint, ct), logger, CancellationToken.None);
                }

                var error = $"the agent disconnected after {current.Bytes} bytes and did not come back within {window.TotalSeconds:0.#}s; the incomplete upload was aborted and nothing was published";
                logger.LogWarning("{Namespace}/{Capture} pod {Pod}: {Error}", slot.Target.Namespace, slot.Target.CaptureName, slot.Target.Pod, error);
                Update(slot.Target, u => u with { Phase = UploadPhase.Failed, Error = error, UpdatedAt = DateTimeOffset.UtcNow });
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "aborting the abandoned upload of {Namespace}/{Capture} pod {Pod} failed; the retention sweeper retries", slot.Target.Namespace, slot.Target.CaptureName, slot.Target.Pod);
                Update(slot.Target, u => u with { Phase = UploadPhase.Failed, Error = $"the agent disconnected and did not come back within {window.TotalSeconds:0.#}s; nothing was published (aborting the upload failed: {e.Message})", UpdatedAt = DateTimeOffset.UtcNow });
            }
            finally
            {
                slot.Lock.Release();
            }
        });
    }

    private sealed class TargetSlot(CaptureIdentity target)
    {
        public CaptureIdentity Target { get; } = target;

        public SemaphoreSlim Lock { get; } = new(1, 1);

        public volatile IStreamOwner? Owner;

        public volatile int Generation;
    }

    private sealed class Release(UploadRegistry registry, TargetSlot slot, IStreamOwner owner) : IDisposable
    {
        private readonly int _generation = slot.Generation;
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                registry.Disconnected(slot, owner, _generation);
            }
        }
    }
}

/// <summary>A stream that owns a target's upload.</summary>
public interface IStreamOwner
{
    /// <summary>Tell the agent to finish early.</summary>
    void RequestStop(string reason);

    /// <summary>A newer stream of the same target takes over: end this one.</summary>
    void Supersede();
}
