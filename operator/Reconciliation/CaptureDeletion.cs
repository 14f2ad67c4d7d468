using System.Collections.Concurrent;
using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Finalizer;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Watcher;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// The capture finalizer's life: added before anything starts (unless someone broke glass), let go
/// of once a deleted capture's status is final, and the deletion recorded in the audit log exactly
/// once, whether the operator let the capture go or it went without the finalizer.
/// </summary>
public sealed class CaptureDeletion(IKubernetes kubernetes, CaptureCache captures, IIngestStatus ingest, ICaptureAuditLog audit, ILogger<CaptureDeletion> logger)
{
    /// <summary>Captures (by UID) whose deletion the operator let go of itself, its audit line written.</summary>
    private readonly ConcurrentDictionary<string, bool> recorded = new();

    /// <summary>
    /// Without the admission webhook (which adds it at create): the finalizer, and the object as
    /// patched (its new resourceVersion) to go on with, no second trip through the queue.
    /// </summary>
    public async Task<PacketCapture> EnsureFinalizerAsync(PacketCapture capture, CancellationToken cancellationToken)
    {
        if (capture.Metadata.DeletionTimestamp is not null || CaptureFinalizer.IsPresent(capture) || CaptureFinalizer.BreakGlass(capture) is not null)
        {
            return capture;
        }

        capture = await CaptureFinalizer.AddAsync(kubernetes, capture, cancellationToken);
        captures.Written(capture);
        return capture;
    }

    /// <summary>The deleted capture's final status is written: the finalizer goes, and the audit log says what became of what it stored.</summary>
    public async Task LetGoAsync(PacketCapture capture, IReadOnlyList<TargetDisposal> disposals, CancellationToken cancellationToken)
    {
        // Marked before the finalizer goes: the object is gone the moment it does, and the watch's
        // Deleted may reach Deleted() on another thread before RemoveAsync returns here; unmarked,
        // it would take this for a deletion without the finalizer and record 'deleted' a second time.
        // A reconcile of a stale view (the mark already there) neither adds nor takes it away.
        var marked = recorded.TryAdd(capture.Metadata.Uid, true);
        try
        {
            await CaptureFinalizer.RemoveAsync(kubernetes, capture, cancellationToken);
        }
        catch when (marked)
        {
            recorded.TryRemove(capture.Metadata.Uid, out _);
            throw;
        }

        var what = disposals.Count == 0
            ? "nothing was stored"
            : string.Join("; ", disposals.Select(d => d.Deleted ? $"deleted {d.Uri} and its manifest" : $"{d.Uri} and its manifest {d.Kept}"));
        await audit.RecordAsync(capture, new Transition(AuditEvent.Deleted, "Normal", "Deleted", $"the PacketCapture was deleted: {what}"), cancellationToken);
    }

    /// <summary>
    /// The PacketCapture is gone. When the operator let it go (its finalizer), that is recorded
    /// already. Otherwise it went without: someone broke glass, or it was deleted before the finalizer
    /// was added. Its agents are told to stop (each stores what it captured, with the capture's lock
    /// and requester from its upload checkpoint), and the audit log records the deletion.
    /// </summary>
    public void Deleted(PacketCapture capture)
    {
        if (recorded.TryRemove(capture.Metadata.Uid, out _))
        {
            return;
        }

        ingest.RequestStop(capture.Metadata.Uid);
        var why = CaptureFinalizer.BreakGlass(capture) is { } reason ? $"someone broke glass: {reason}" : "it was deleted before the finalizer was added";
        var message = $"the PacketCapture was deleted without the operator's finalizer ({why}): its agents were told to stop; " +
            "what they store is kept, with the capture's lock and requester, until its retention ends";
        logger.LogWarning("{Capture}: {Message}", capture.Key, message);
        _ = Task.Run(async () =>
        {
            try
            {
                await audit.RecordAsync(capture, new Transition(AuditEvent.Deleted, "Warning", "DeletedWithoutFinalizer", message), CancellationToken.None);
            }
            catch (Exception e)
            {
                logger.LogWarning("{Capture}: the Event of its deletion was not recorded: {Error}", capture.Key, e.Message);
            }
        });
    }
}
