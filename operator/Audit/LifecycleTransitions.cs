using System.Globalization;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Audit;

/// <summary>
/// One lifecycle event. <paramref name="Announce"/>: also a Kubernetes Event on the PacketCapture.
/// Requested, admitted and started are not: before Running every API request counts (issue 13's
/// budget), and the object already shows them (the Accepted and Admitted conditions, the
/// CaptureStarted Event on the pod). <paramref name="Actor"/>: who caused it, where that is not the requester.
/// </summary>
public sealed record Transition(string Event, string EventType, string EventReason, string Message, string? Pod = null, AuditArtifact? Artifact = null, bool Announce = true, string? Actor = null);

/// <summary>
/// Which lifecycle events happened between the status as it was and the status just written: each
/// event is recorded once, when the status first shows it (the reconciler is level-triggered; the
/// status is the memory).
/// </summary>
public static class LifecycleTransitions
{
    /// <summary>The events between the capture as it was (<paramref name="before"/>) and the status just written for it.</summary>
    public static IEnumerable<Transition> Between(PacketCapture before, PacketCaptureStatus after)
    {
        if (before.Status is null)
        {
            // Its first status write: the operator has taken the request up (with or without the finalizer
            // patch, which the admission webhook makes unnecessary).
            yield return new Transition(AuditEvent.Requested, "Normal", "Requested", $"requested: {Describe(before.Spec)}", Announce: false);
        }

        foreach (var transition in Between(before.Status, after))
        {
            yield return transition;
        }
    }

    private static string Describe(PacketCaptureSpec spec) =>
        $"pod {spec.Target.PodName ?? (spec.Target.PodSelector is { } selector ? "selector " + k8s.KubernetesJson.Serialize(selector) : "?")}, filter '{spec.Filter}', duration {spec.Duration}, reason: {spec.Reason}";

    private static IEnumerable<Transition> Between(PacketCaptureStatus? before, PacketCaptureStatus after)
    {
        // In the order they happened when one write shows several: admitted, then refused before it started (e.g. its pod is gone).
        if (CaptureConditions.Find(after, CaptureConditions.Admitted)?.Status == "True" && CaptureConditions.Find(before, CaptureConditions.Admitted)?.Status != "True")
        {
            yield return new Transition(AuditEvent.Admitted, "Normal", "Admitted", "admitted: within the policy and the concurrency limits", Announce: false);
        }

        var accepted = CaptureConditions.Find(after, CaptureConditions.Accepted);
        if (accepted?.Status == "False" && CaptureConditions.Find(before, CaptureConditions.Accepted)?.Status != "False")
        {
            yield return new Transition(AuditEvent.Refused, "Warning", accepted.Reason ?? "Refused", $"refused: {accepted.Message}");
        }
        else if (after.Phase == CapturePhase.Failed && before?.Phase != CapturePhase.Failed && after.Targets.Count == 0)
        {
            var complete = CaptureConditions.Find(after, CaptureConditions.Complete);
            yield return new Transition(AuditEvent.Refused, "Warning", complete?.Reason ?? "Refused", $"refused before it started: {after.Message}");
        }

        foreach (var snapshot in Snapshots(before, after))
        {
            yield return snapshot;
        }

        foreach (var target in after.Targets)
        {
            var earlier = before?.Targets.FirstOrDefault(t => t.Pod == target.Pod);
            if (Started(target) && (earlier is null || !Started(earlier)))
            {
                yield return new Transition(AuditEvent.Started, "Normal", "Started", $"pod {target.Pod}: capturing in container {target.Container} on node {target.Node}", target.Pod, Announce: false);
            }

            if (target.StopReason is not null && earlier?.StopReason is null)
            {
                yield return new Transition(AuditEvent.Stopped, "Normal", "Stopped", string.Create(CultureInfo.InvariantCulture,
                    $"pod {target.Pod}: stopped ({target.StopReason}) after {target.Packets} packets, {target.Bytes} bytes, {target.DroppedByKernel} dropped by the kernel"), target.Pod);
            }

            if (target.Artifact is { } artifact && earlier?.Artifact is null)
            {
                yield return new Transition(AuditEvent.Stored, "Normal", "Stored", string.Create(CultureInfo.InvariantCulture,
                    $"pod {target.Pod}: stored {artifact.Uri} ({artifact.Size} bytes, sha256 {artifact.Sha256})"), target.Pod,
                    new AuditArtifact { Uri = artifact.Uri, Size = artifact.Size, Sha256 = artifact.Sha256 });
            }

            if (target.Reason == CaptureConditions.UploadContested && earlier?.Reason != target.Reason)
            {
                yield return new Transition(AuditEvent.Contested, "Warning", target.Reason, $"pod {target.Pod}: {target.Message}", target.Pod,
                    target.Artifact is { } contested ? new AuditArtifact { Uri = contested.Uri, Size = contested.Size, Sha256 = contested.Sha256 } : null);
            }
        }
    }

    /// <summary>Each snapshot of a recording, once, when the status first lists it: why it was kept, who asked, where it is.</summary>
    private static IEnumerable<Transition> Snapshots(PacketCaptureStatus? before, PacketCaptureStatus after)
    {
        foreach (var snapshot in after.Snapshots ?? [])
        {
            if (snapshot.Artifact is { } artifact && before?.Snapshots?.Any(s => s.Pod == snapshot.Pod && s.Index == snapshot.Index) != true)
            {
                yield return new Transition(AuditEvent.Snapshot, "Normal", "SnapshotStored", string.Create(CultureInfo.InvariantCulture,
                    $"pod {snapshot.Pod}: snapshot {snapshot.Index} ({snapshot.TriggerKind}: {snapshot.TriggerDetail}; {snapshot.Packets} packets from {snapshot.WindowStart} to {snapshot.WindowEnd}) stored {artifact.Uri} ({artifact.Size} bytes, sha256 {artifact.Sha256})"),
                    snapshot.Pod, new AuditArtifact { Uri = artifact.Uri, Size = artifact.Size, Sha256 = artifact.Sha256 }, Actor: snapshot.Requester);
            }
        }
    }

    private static bool Started(CaptureTargetStatus target) =>
        target.State is TargetState.Capturing or TargetState.Uploading or TargetState.Succeeded || target.StopReason is not null || target.Artifact is not null;
}
