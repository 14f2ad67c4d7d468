using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Everything before a capture runs, in order: who asked (the admission webhook's stamp), the spec
/// (libpcap compiles the filter, policy allows the rest), a concurrency slot, Object Lock when the
/// capture asks for it, the target pods, and the capture container on each. No status write before
/// the pods are touched: after a crash between the container patch and the status write, the next
/// reconcile finds the pods that already carry this capture's container and takes exactly those again.
/// </summary>
public sealed class CaptureStart(
    ReconcilerOptions options,
    ConcurrencySlots slots,
    IEvidenceRetention retention,
    TargetSelection selection,
    ContainerInjection injection,
    CaptureStatusWriter writer,
    CaptureCompletion completion)
{
    /// <summary>How soon a capture waiting for a concurrency slot looks again (from the cache, no API read).</summary>
    private static readonly TimeSpan AdmissionRetry = TimeSpan.FromSeconds(5);

    private readonly TimeSpan resync = CapturePolicy.ParseDuration(options.ResyncPeriod, "Reconciler:ResyncPeriod");

    /// <summary>Null when the capture runs (its targets chosen, their containers added); otherwise the end of this reconcile.</summary>
    public async Task<ReconcileResult?> StartAsync(StatusDraft draft, SpecVerdict verdict, IReadOnlyList<PacketCapture> allCaptures, CancellationToken cancellationToken)
    {
        if (Requester(draft) is { } unstamped)
        {
            return await completion.FailAsync(draft, unstamped, cancellationToken);
        }

        draft.Set(CaptureConditions.Accepted, verdict.Allowed, verdict.Reason, verdict.Message);
        if (!verdict.Allowed)
        {
            return await completion.FailAsync(draft, new NotStarted(verdict.Reason, verdict.Message), cancellationToken);
        }

        PodSecurityVerdict? security = null;
        if (draft.Status.Targets.Count == 0)
        {
            if (await AdmitAsync(draft, allCaptures, cancellationToken) is { } notAdmitted)
            {
                return notAdmitted;
            }

            (var notChosen, security) = await selection.ChooseAsync(draft, cancellationToken);
            if (notChosen is not null)
            {
                slots.Release(draft.Uid);
                return await completion.FailAsync(draft, notChosen, cancellationToken);
            }
        }

        if (draft.Status.Targets.Any(t => t.State == TargetState.Pending) && !draft.StopAsked
            && await injection.InjectAsync(draft, security, cancellationToken) is { } notInjected)
        {
            slots.Release(draft.Uid);
            foreach (var target in draft.Status.Targets.Where(t => t.State == TargetState.Pending))
            {
                PhaseRollUp.Fail(target, notInjected.Reason, notInjected.Message);
            }

            return await completion.FailAsync(draft, notInjected, cancellationToken);
        }

        return null;
    }

    /// <summary>Who asked: the admission webhook's stamp, or nothing starts (when the operator requires it).</summary>
    private NotStarted? Requester(StatusDraft draft)
    {
        if (!options.RequireRequesterStamp || draft.Status.Targets.Count != 0)
        {
            return null;
        }

        if (RequesterStamp.Read(draft.Capture.Metadata.Annotations, out var unstamped) is not { } requester)
        {
            var message = $"the capture carries no requester stamped by admission ({unstamped}): the KubeCapture admission webhook is not installed or was bypassed; nothing was captured (recreate the capture once the MutatingWebhookConfiguration is in place)";
            draft.Set(CaptureConditions.RequesterVerified, false, "NotStamped", message);
            return new NotStarted("NotStamped", message);
        }

        draft.Set(CaptureConditions.RequesterVerified, true, "Stamped", $"requested by {requester.Username}, as kube-apiserver authenticated them");
        return null;
    }

    /// <summary>Not started yet: not stopped, a concurrency slot, and Object Lock when the capture needs it.</summary>
    private async Task<ReconcileResult?> AdmitAsync(StatusDraft draft, IReadOnlyList<PacketCapture> allCaptures, CancellationToken cancellationToken)
    {
        if (draft.StopAsked)
        {
            draft.Set(CaptureConditions.Admitted, false, "StoppedBeforeStart", "the capture was stopped or deleted before it started");
            return await completion.FailAsync(draft, new NotStarted("StoppedBeforeStart", "stopped or deleted before any capture started: nothing was captured"), cancellationToken);
        }

        if (slots.TryAdmit(draft.Capture, allCaptures) is { } waiting)
        {
            draft.Set(CaptureConditions.Admitted, false, "ConcurrencyLimit", waiting);
            draft.Status.Phase = CapturePhase.Pending;
            draft.Status.Message = waiting;
            await writer.WriteAsync(draft, cancellationToken);
            // From the cache only: a freed slot is seen at the next look, at most this long after.
            return ReconcileResult.After(resync < AdmissionRetry ? resync : AdmissionRetry);
        }

        draft.Set(CaptureConditions.Admitted, true, "SlotAvailable", "within the concurrency limits");
        if (draft.Capture.Spec.Retention is { NeedsObjectLock: true } asked)
        {
            // Before anything starts: never silently unlocked evidence.
            if (await retention.CheckObjectLockAsync(cancellationToken) is { } noLock)
            {
                slots.Release(draft.Uid);
                var legalHold = asked.LegalHold == true;
                var locked = asked.Lock is "governance" or "compliance";
                var message = $"spec.retention asks for {(legalHold ? "a legal hold" : "")}{(legalHold && locked ? " and " : "")}{(locked ? $"a {asked.Lock} lock" : "")}, but {noLock}; nothing was captured";
                draft.Set(CaptureConditions.StorageReady, false, "ObjectLockUnavailable", message);
                return await completion.FailAsync(draft, new NotStarted("ObjectLockUnavailable", message), cancellationToken);
            }

            draft.Set(CaptureConditions.StorageReady, true, "ObjectLockEnabled", "the bucket has Object Lock");
        }

        return null;
    }
}
