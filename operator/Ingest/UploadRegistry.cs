using System.Collections.Concurrent;
using KubeCapture.Contracts;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// What this operator process knows about every target's upload: its status (for the reconciler),
/// which agent session holds it and which stream currently owns it, early-stop requests, the resume
/// window of disconnected agents, and the targets found contested. What is finished is found again
/// in storage after a restart.
/// </summary>
public sealed class UploadRegistry(
    IArtifactStore store,
    Microsoft.Extensions.Options.IOptions<IngestOptions> options,
    Microsoft.Extensions.Options.IOptions<StorageOptions> storageOptions,
    ILogger<UploadRegistry> logger,
    KubeCapture.Operator.Custody.ManifestSigner? signer = null,
    UploadOwnership? ownership = null) : IIngestStatus
{
    private readonly ConcurrentDictionary<CaptureIdentity, TargetUpload> _uploads = new();
    private readonly ConcurrentDictionary<CaptureIdentity, TargetSlot> _slots = new();
    private readonly ConcurrentDictionary<string, string> _stops = new();
    private readonly ConcurrentDictionary<CaptureIdentity, ContestRecord> _contested = new();
    private readonly ConcurrentDictionary<string, long> _stopsTold = new();

    public event Action<TargetUpload>? Changed;

    /// <summary>
    /// What this process knows, while one of its streams owns the target or once the upload ended
    /// here; else what storage and the target's upload Lease say (another replica may stream it, or
    /// have stored it, since this process last saw it).
    /// </summary>
    public async Task<TargetUpload?> GetAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        var local = _uploads.GetValueOrDefault(target);
        if (local is not null && (local.Phase != UploadPhase.Streaming || IsActive(target) || ownership is null))
        {
            return local;
        }

        var stored = await store.FindStoredAsync(target, cancellationToken);
        if (stored is not null && stored.CaptureUid == target.CaptureUid)
        {
            return FromStored(stored);
        }

        if (ownership is not null && await ownership.ProgressAsync(target, cancellationToken) is { } progress)
        {
            return (local ?? new TargetUpload { Target = target, Phase = UploadPhase.Streaming, UpdatedAt = DateTimeOffset.UtcNow }) with
            {
                Packets = progress.Packets,
                Bytes = progress.Bytes,
                DroppedByKernel = progress.DroppedByKernel,
                Recorder = progress.Recorder ?? local?.Recorder,
            };
        }

        if (local is not null)
        {
            return local;
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

        // Targets other replicas stream: told through their Leases (again at most every renew period, while the reconciler asks).
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (ownership is not null && _stopsTold.AddOrUpdate(captureUid, now, (_, told) => System.Diagnostics.Stopwatch.GetElapsedTime(told, now) >= ownership.Options.RenewPeriod ? now : told) == now)
        {
            _ = ownership.RequestStopAsync(captureUid, "the capture was stopped", CancellationToken.None);
        }
    }

    /// <summary>
    /// Asks the agent recording <paramref name="target"/> for a snapshot by hand, on the stream it holds
    /// open to this process; null when asked, else why not (no agent streams the target here).
    /// </summary>
    public string? RequestSnapshot(CaptureIdentity target, string requester, string? alert = null)
    {
        if (_slots.GetValueOrDefault(target)?.Owner is not { } owner)
        {
            return $"no agent of capture {target.Namespace}/{target.CaptureName} on pod {target.Pod} is connected to this operator: the recording has not started, has ended, or is reconnecting";
        }

        owner.RequestSnapshot(requester, alert);
        return null;
    }

    /// <summary>The snapshots of <paramref name="target"/>'s recording this process stored or confirmed, by index.</summary>
    public IReadOnlyList<TargetUpload> Snapshots(CaptureIdentity target) =>
        [.. _uploads.Values.Where(u => u.Target.Snapshot > 0 && u.Target.Target == target && u.Phase == UploadPhase.Finished).OrderBy(u => u.Target.Snapshot)];

    public async Task<TargetUpload?> StoredSnapshotAsync(CaptureIdentity snapshot, CancellationToken cancellationToken)
    {
        if (_uploads.GetValueOrDefault(snapshot) is { Phase: UploadPhase.Finished } local)
        {
            return local;
        }

        return await store.FindStoredAsync(snapshot, cancellationToken) is { Snapshot: not null } stored && stored.Target == snapshot
            ? FromStored(stored)
            : null;
    }

    /// <summary>Why the capture was asked to stop, or null.</summary>
    public string? StopRequested(string captureUid) => _stops.GetValueOrDefault(captureUid);

    /// <summary>True while a stream of this process owns the target (the sweeper leaves it alone).</summary>
    public bool IsActive(CaptureIdentity target) => _slots.TryGetValue(target, out var slot) && slot.Owner is not null;

    /// <summary>True while a stream of this process owns the target, or another replica renewed its upload Lease within <paramref name="window"/>.</summary>
    public async Task<bool> IsActiveAnywhereAsync(CaptureIdentity target, DateTimeOffset now, TimeSpan window, CancellationToken cancellationToken) =>
        IsActive(target) || (ownership is not null && await ownership.RenewedWithinAsync(target, now, window, cancellationToken));

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
        Snapshot = stored.Snapshot,
        Artifact = stored.ToArtifact(),
        UpdatedAt = stored.StoredAt,
    };

    /// <summary>
    /// Makes <paramref name="owner"/> the only stream of the target. The first agent session that opens
    /// a target holds its upload for good: in this process's memory, and durably in the upload's
    /// checkpoint and its stored manifest, which <paramref name="durableHolder"/> reads once, the first
    /// time this process sees the target. A stream of another session is refused with
    /// <see cref="UploadHeldException"/> and the holder's stream is not touched. A newer stream of the
    /// holding session (its agent reconnected; the old connection is half dead) takes over: the older
    /// stream is cancelled, and this call waits until it has let go. Dispose the result to let go.
    /// </summary>
    public async Task<IDisposable> AcquireAsync(CaptureIdentity target, IStreamOwner owner, Func<CancellationToken, Task<AgentSessionRecord?>> durableHolder, CancellationToken cancellationToken)
    {
        var slot = _slots.GetOrAdd(target, t => new TargetSlot(t));
        await slot.Claim.WaitAsync(cancellationToken);
        try
        {
            slot.Holder ??= await durableHolder(cancellationToken) ?? owner.Session;
            if (slot.Holder.Sha256 != owner.Session.Sha256)
            {
                throw new UploadHeldException(target, slot.Holder);
            }
        }
        finally
        {
            slot.Claim.Release();
        }

        slot.Owner?.Supersede();
        await slot.Lock.WaitAsync(cancellationToken);
        slot.Owner = owner;
        slot.Generation++;
        return new Release(this, slot, owner);
    }

    /// <summary>Why the target's pcap is contested, when the reconciler found it so (in this process), else null.</summary>
    public ContestRecord? Contested(CaptureIdentity target) => _contested.GetValueOrDefault(target);

    public void MarkContested(CaptureIdentity target, string message)
    {
        if (!_contested.TryAdd(target, new ContestRecord(DateTimeOffset.UtcNow, message)))
        {
            return; // told again (every reconcile of the ended capture): once is enough
        }

        logger.LogWarning("{Namespace}/{Capture} pod {Pod}: contested: {Message}", target.Namespace, target.CaptureName, target.Pod, message);
        _ = Task.Run(() => AmendStoredAsync(target, _contested[target]));
    }

    /// <summary>A pcap already stored when it was found contested: its manifest is signed again, saying so (a new version on a versioned bucket).</summary>
    private async Task AmendStoredAsync(CaptureIdentity target, ContestRecord contest)
    {
        try
        {
            var budget = storageOptions.Value.RetryBudget;
            var stored = await StorageRetry.RunAsync("reading the stored manifest", budget, ct => store.FindStoredAsync(target, ct), logger, CancellationToken.None);
            if (stored is null || stored.CaptureUid != target.CaptureUid || stored.Contested is not null)
            {
                return; // not stored (yet: it says so when it is published), or already amended
            }

            var seal = signer is null ? StorageJsonContext.Unsigned : await signer.SealAsync(CancellationToken.None);
            var amended = stored with { Contested = contest };
            await StorageRetry.RunAsync("amending the stored manifest", budget, ct => store.AmendManifestAsync(amended, seal, ct), logger, CancellationToken.None);
            Publish(FromStored(amended));
            logger.LogWarning("{Namespace}/{Capture} pod {Pod}: the manifest of {Uri} now records that it is contested", target.Namespace, target.CaptureName, target.Pod, stored.Uri);
        }
        catch (Exception e)
        {
            _contested.TryRemove(target, out _); // the next reconcile of the capture tells it again
            logger.LogError("{Namespace}/{Capture} pod {Pod}: could not record the contest in the stored manifest: {Error}", target.Namespace, target.CaptureName, target.Pod, e.Message);
        }
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
            UploadClaim? claim = null;
            try
            {
                if (slot.Generation != generation || Current(slot.Target)?.Phase != UploadPhase.Streaming)
                {
                    return;
                }

                if (ownership is not null)
                {
                    try
                    {
                        claim = await ownership.ClaimAsync(slot.Target, owner: null, CancellationToken.None);
                    }
                    catch (UploadOwnedElsewhereException elsewhere)
                    {
                        // The agent came back, to another replica: the upload is its now.
                        logger.LogInformation("{Namespace}/{Capture} pod {Pod}: the agent resumed with replica {Holder}", slot.Target.Namespace, slot.Target.CaptureName, slot.Target.Pod, elsewhere.Holder);
                        _uploads.TryRemove(slot.Target, out _);
                        return;
                    }
                }

                var budget = storageOptions.Value.RetryBudget;
                if (ownership is not null
                    && await StorageRetry.RunAsync("reading the stored manifest", budget, ct => store.FindStoredAsync(slot.Target, ct), logger, CancellationToken.None) is { } stored
                    && stored.CaptureUid == slot.Target.CaptureUid)
                {
                    Publish(FromStored(stored)); // the agent resumed with another replica, which stored it
                    return;
                }

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
                if (claim is not null)
                {
                    await claim.DisposeAsync();
                }

                slot.Lock.Release();
            }
        });
    }

    private sealed class TargetSlot(CaptureIdentity target)
    {
        public CaptureIdentity Target { get; } = target;

        /// <summary>Held while a stream claims the target (short), so that two sessions never both become its holder.</summary>
        public SemaphoreSlim Claim { get; } = new(1, 1);

        /// <summary>Held by the stream that owns the target, for as long as it streams.</summary>
        public SemaphoreSlim Lock { get; } = new(1, 1);

        /// <summary>The agent session that holds the target's upload, once one opened it (or it was read from storage).</summary>
        public AgentSessionRecord? Holder;

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
    /// <summary>The agent session the stream belongs to.</summary>
    AgentSessionRecord Session { get; }

    /// <summary>Tell the agent to finish early.</summary>
    void RequestStop(string reason);

    /// <summary>A flight recording's stream: tell the agent to take a snapshot, naming who asked (and the Alertmanager alert that asked, if one did).</summary>
    void RequestSnapshot(string requester, string? alert = null);

    /// <summary>A newer stream of the same target takes over: end this one.</summary>
    void Supersede();

    /// <summary>This replica may no longer write the target (its upload Lease could not be renewed): end the stream, saying why.</summary>
    void Lose(string reason);
}

/// <summary>Another agent session holds the target's upload: this stream is refused (the holder's is not touched).</summary>
public sealed class UploadHeldException(CaptureIdentity target, AgentSessionRecord holder) : Exception(
    $"upload for capture {target.Namespace}/{target.CaptureName} (uid {target.CaptureUid}) pod {target.Pod} refused: another agent session holds this target's upload ({holder}). " +
    "A capture container runs exactly one agent process, and it never restarts: a second session comes from someone else with the upload token, inside the pod. " +
    "Its stream is refused and the holder's goes on; if this is the capture agent, the upload it was refused is reported as contested and never as clean evidence")
{
    public AgentSessionRecord Holder { get; } = holder;
}
