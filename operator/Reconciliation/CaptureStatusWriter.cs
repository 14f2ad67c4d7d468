using System.Collections.Concurrent;
using System.Text.Json;
using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Watcher;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Writes a reconcile's status: PUT on the status subresource with the read resourceVersion (a stale
/// view gets 409 and runs again), only when it changed, and while a capture runs no more often than
/// <see cref="ReconcilerOptions.ProgressInterval"/> when only its progress moved (counters, findings so far).
/// What it writes joins the capture cache and the audit log.
/// </summary>
public sealed class CaptureStatusWriter(IKubernetes kubernetes, CaptureCache captures, ICaptureAuditLog audit, ReconcilerOptions options, TimeProvider time,
    ILogger<CaptureStatusWriter> logger)
{
    private readonly TimeSpan progressInterval = CapturePolicy.ParseDuration(options.ProgressInterval, "Reconciler:ProgressInterval");

    /// <summary>When each active capture's status was last written (by UID).</summary>
    private readonly ConcurrentDictionary<string, DateTimeOffset> writtenAt = new();

    /// <summary>Writes the draft if it changed; returns the capture as written (or as read, when unchanged).</summary>
    public async Task<PacketCapture> WriteAsync(StatusDraft draft, CancellationToken cancellationToken)
    {
        if (!draft.Changed)
        {
            return draft.Capture;
        }

        var capture = draft.Capture;
        var status = draft.Status;
        var next = new PacketCapture { Metadata = capture.Metadata, Spec = capture.Spec, Status = status };
        var result = await kubernetes.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync<PacketCapture>(
            next, PacketCapture.Group, PacketCapture.Version, capture.Metadata.NamespaceProperty, PacketCapture.Plural, capture.Metadata.Name,
            cancellationToken: cancellationToken);
        logger.LogDebug("{Capture}: {Phase} - {Message}", capture.Key, status.Phase, status.Message);
        if (!CapturePhase.IsTerminal(status.Phase))
        {
            writtenAt[capture.Metadata.Uid] = time.GetUtcNow();
        }

        captures.Written(result);
        await audit.RecordTransitionsAsync(capture, status, cancellationToken);
        return result;
    }

    /// <summary>
    /// A running capture's status: written now, or (only its progress moved, and it was written less
    /// than ProgressInterval ago) later. The capture is looked at again after <paramref name="next"/>,
    /// or sooner when the write was put off.
    /// </summary>
    public async Task<ReconcileResult> WriteRunningAsync(StatusDraft draft, TimeSpan next, CancellationToken cancellationToken)
    {
        if (TooSoon(draft) is { } wait)
        {
            return ReconcileResult.After(wait < next ? wait : next);
        }

        await WriteAsync(draft, cancellationToken);
        return ReconcileResult.After(next);
    }

    /// <summary>The capture has ended: its writes are no longer throttled.</summary>
    public void Forget(string uid) => writtenAt.TryRemove(uid, out _);

    /// <summary>
    /// How long until the status may be written again, when only its progress changed and it was
    /// written less than ProgressInterval ago; null when it is to be written now (or not changed at
    /// all). The status as read is the capture's own: the reconcile changes only its draft.
    /// </summary>
    private TimeSpan? TooSoon(StatusDraft draft)
    {
        if (!writtenAt.TryGetValue(draft.Uid, out var at))
        {
            return null;
        }

        var since = time.GetUtcNow() - at;
        if (since >= progressInterval || WithoutProgress(draft.Capture.Status ?? new PacketCaptureStatus()) != WithoutProgress(draft.Status))
        {
            return null;
        }

        return progressInterval - since;
    }

    /// <summary>The status as JSON without what moves while a capture runs: counters and findings so far.</summary>
    private static string WithoutProgress(PacketCaptureStatus status)
    {
        var copy = StatusDraft.Clone(status)!;
        (copy.Packets, copy.DroppedByKernel, copy.FindingCount, copy.Findings) = (null, null, null, null);
        foreach (var target in copy.Targets)
        {
            (target.Packets, target.Bytes, target.DroppedByKernel) = (0, 0, 0);
            (target.Summary, target.Findings, target.FindingsOmitted) = (null, null, null);
        }

        return JsonSerializer.Serialize(copy);
    }
}
