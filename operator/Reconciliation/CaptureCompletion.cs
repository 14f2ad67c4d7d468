using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Finalizer;
using KubeCapture.Operator.Metrics;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// A capture's end: its final status written once, one Event saying how it ended (unless the audit
/// log announces it), and a deleted capture's stored pcaps deleted unless a lock or legal hold keeps
/// them, before its finalizer goes.
/// </summary>
public sealed class CaptureCompletion(CaptureStatusWriter writer, CaptureDeletion deletion, IEvidenceRetention retention, ICaptureAuditLog audit, CaptureEvents events,
    TimeProvider time)
{
    /// <summary>The capture failed as a whole (before or as it started): Failed, announced, written.</summary>
    public async Task<ReconcileResult> FailAsync(StatusDraft draft, NotStarted why, CancellationToken cancellationToken)
    {
        PhaseRollUp.Fail(draft.Status, why.Reason, why.Message, draft.Capture.Metadata.Generation, time.GetUtcNow().UtcDateTime);
        await AnnounceAsync(draft, cancellationToken);
        return await FinishAsync(draft, cancellationToken);
    }

    /// <summary>The targets' roll-up ended the capture: announced, written.</summary>
    public async Task<ReconcileResult> EndAsync(StatusDraft draft, CancellationToken cancellationToken)
    {
        await AnnounceAsync(draft, cancellationToken);
        return await FinishAsync(draft, cancellationToken);
    }

    /// <summary>Writes the final status; a deleted capture then lets go of its finalizer.</summary>
    public async Task<ReconcileResult> FinishAsync(StatusDraft draft, CancellationToken cancellationToken)
    {
        var deleted = draft.Deleting && CaptureFinalizer.IsPresent(draft.Capture);
        IReadOnlyList<TargetDisposal> disposals = [];
        if (deleted)
        {
            // Deleting the capture deletes what it stored, unless a lock or legal hold keeps it: the status says which, until when.
            disposals = await retention.DisposeAsync(draft.Status.Targets.Where(t => t.Artifact is not null).Select(t => draft.Target(t.Pod)), cancellationToken);
            foreach (var disposal in disposals)
            {
                draft.Status.Targets.First(t => t.Pod == disposal.Pod).Artifact!.Kept = disposal.Kept ?? "deleted with the PacketCapture";
            }
        }

        var written = await writer.WriteAsync(draft, cancellationToken);
        if (draft.Deleting && CaptureFinalizer.IsPresent(written))
        {
            await deletion.LetGoAsync(written, disposals, cancellationToken);
        }

        return ReconcileResult.Done;
    }

    /// <summary>Once, when the capture ends: the metric, and a Normal or Warning Event with the reason it ended.</summary>
    private async Task AnnounceAsync(StatusDraft draft, CancellationToken cancellationToken)
    {
        if (CapturePhase.IsTerminal(draft.Capture.Status?.Phase))
        {
            return;
        }

        var status = draft.Status;
        var reason = CaptureConditions.Find(status, CaptureConditions.Complete)?.Reason ?? status.Phase!;
        OperatorMetrics.CapturesEnded.Add(1, new KeyValuePair<string, object?>("phase", status.Phase));
        if (reason == CaptureConditions.UploadContested && audit.AnnouncesContestedEnds)
        {
            return; // the audit line 'contested' of the pod announced it, with its Event
        }

        await events.OnCaptureAsync(draft.Capture, status.Phase == CapturePhase.Succeeded ? "Normal" : "Warning", reason, status.Message ?? "", cancellationToken);
    }
}
