using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Watcher;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>What the queue should do with the capture's key after a reconcile.</summary>
public sealed record ReconcileResult(TimeSpan? RequeueAfter)
{
    public static readonly ReconcileResult Done = new((TimeSpan?)null);

    public static ReconcileResult After(TimeSpan delay) => new(delay);
}

/// <summary>
/// Level-triggered and idempotent: from the capture as it is now, the pods as they are and the
/// ingest's view of each upload, bring the world one step closer to the spec and write a status
/// that says exactly what is true. Safe to run any number of times, and after a crash at any line.
/// Reads pods and namespaces from the operator's caches (<see cref="ClusterCache"/>): a capture on
/// one pod costs the finalizer patch, the container patch, one Event and the status writes.
/// Each step is its own class: <see cref="CaptureStart"/> (stamp, policy, slot, Object Lock,
/// <see cref="TargetSelection"/>, <see cref="ContainerInjection"/>), <see cref="TargetObservation"/>,
/// <see cref="UploadRefusalsInStatus"/>, <see cref="RecordingRollUp"/>, <see cref="PhaseRollUp"/>, <see cref="BothEndsComparison"/>,
/// <see cref="CaptureCompletion"/> and the throttled <see cref="CaptureStatusWriter"/>.
/// </summary>
public sealed class PacketCaptureController(
    CapturePolicy policy,
    ReconcilerOptions options,
    ConcurrencySlots slots,
    CaptureDeletion deletion,
    CaptureStart start,
    ContainerInjection injection,
    TargetObservation observation,
    UploadRefusalsInStatus refusals,
    RecordingRollUp recording,
    BothEndsComparison ends,
    CaptureStatusWriter writer,
    CaptureCompletion completion,
    TimeProvider time)
{
    private readonly TimeSpan grace = CapturePolicy.ParseDuration(options.Grace, "Reconciler:Grace");
    private readonly TimeSpan resync = CapturePolicy.ParseDuration(options.ResyncPeriod, "Reconciler:ResyncPeriod");

    /// <summary>How capture containers get their upload token (<see cref="ContainerInjection.TokenDelivery"/>).</summary>
    public TokenDelivery TokenDelivery
    {
        get => injection.TokenDelivery;
        set => injection.TokenDelivery = value;
    }

    public async Task<ReconcileResult> ReconcileAsync(PacketCapture capture, IReadOnlyList<PacketCapture> allCaptures, CancellationToken cancellationToken)
    {
        capture = await deletion.EnsureFinalizerAsync(capture, cancellationToken);
        var draft = new StatusDraft(capture, time.GetUtcNow().UtcDateTime);
        if (CapturePhase.IsTerminal(draft.Status.Phase))
        {
            return await EndedAgainAsync(draft, cancellationToken);
        }

        draft.ObserveGeneration();
        var verdict = policy.Check(capture);
        if (await start.StartAsync(draft, verdict, allCaptures, cancellationToken) is { } notRunning)
        {
            return notRunning;
        }

        observation.StopIfAsked(draft);
        // Refused uploads first: a refused second session bears on the verdict.
        var refused = refusals.Take(draft);
        var deadline = (draft.Status.StartTime ?? draft.Now) + verdict.Duration + grace;
        await observation.ObserveAsync(draft, pastDeadline: draft.Now > deadline, cancellationToken);
        await recording.ApplyAsync(draft, cancellationToken);
        PhaseRollUp.Apply(draft.Status, capture.Metadata.Generation, draft.Now);
        var result = CapturePhase.IsTerminal(draft.Status.Phase)
            ? await EndAsync(draft, cancellationToken)
            : await writer.WriteRunningAsync(draft, NextLook(deadline - draft.Now), cancellationToken);
        await refusals.AnnounceAsync(capture, refused, cancellationToken);
        return result;
    }

    /// <summary>The capture is gone: its agents are told to stop, and its deletion is recorded (<see cref="CaptureDeletion.Deleted"/>).</summary>
    public void Deleted(PacketCapture capture) => deletion.Deleted(capture);

    /// <summary>The targets just ended the capture: both ends compared, its slot freed, the end announced and written.</summary>
    private async Task<ReconcileResult> EndAsync(StatusDraft draft, CancellationToken cancellationToken)
    {
        await ends.CompareAsync(draft, cancellationToken);
        slots.Release(draft.Uid);
        writer.Forget(draft.Uid);
        return await completion.EndAsync(draft, cancellationToken);
    }

    /// <summary>
    /// An ended capture, again (after an operator restart or on a new leader): a stored pcap is never
    /// replaced, but the ingest is told again what ended, and a forged stream that tries after the end is still recorded.
    /// </summary>
    private async Task<ReconcileResult> EndedAgainAsync(StatusDraft draft, CancellationToken cancellationToken)
    {
        slots.Release(draft.Uid);
        writer.Forget(draft.Uid);
        observation.TellEnded(draft);
        var refused = refusals.Take(draft);
        var ended = await completion.FinishAsync(draft, cancellationToken);
        await refusals.AnnounceAsync(draft.Capture, refused, cancellationToken);
        return ended;
    }

    /// <summary>At the deadline (a moment after), or at the next resync, whichever comes first.</summary>
    private TimeSpan NextLook(TimeSpan untilDeadline) =>
        untilDeadline > TimeSpan.Zero && untilDeadline < resync ? untilDeadline + TimeSpan.FromMilliseconds(50) : resync;
}
