using System.Text.Json;
using k8s;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// The status one reconcile works on: a copy of the capture's status as read, changed step by step
/// and written once, only if it changed (<see cref="Before"/>). The capture's own status is never touched.
/// </summary>
public sealed class StatusDraft
{
    public StatusDraft(PacketCapture capture, DateTime now)
    {
        Capture = capture;
        Status = Clone(capture.Status) ?? new PacketCaptureStatus();
        Before = JsonSerializer.Serialize(Status);
        Now = now;
        Deleting = capture.Metadata.DeletionTimestamp is not null;
    }

    /// <summary>The capture as read (or as the finalizer patch returned it).</summary>
    public PacketCapture Capture { get; }

    public PacketCaptureStatus Status { get; }

    /// <summary>The status as read, as JSON: unchanged, nothing is written.</summary>
    public string Before { get; }

    /// <summary>The reconcile's one clock reading.</summary>
    public DateTime Now { get; }

    public bool Deleting { get; }

    /// <summary>The stop field, or the capture being deleted.</summary>
    public bool StopAsked => Deleting || Capture.Spec.Stop == true;

    public string Uid => Capture.Metadata.Uid;

    public bool Changed => JsonSerializer.Serialize(Status) != Before;

    /// <summary>Sets a condition for the capture's current generation, as of <see cref="Now"/>.</summary>
    public void Set(string type, bool? value, string reason, string message) =>
        CaptureConditions.Set(Status, type, value, reason, message, Capture.Metadata.Generation, Now);

    /// <summary>This reconcile looks at the current generation: what still holds, holds for it.</summary>
    public void ObserveGeneration()
    {
        var generation = Capture.Metadata.Generation;
        Status.ObservedGeneration = generation;
        foreach (var condition in Status.Conditions)
        {
            condition.ObservedGeneration = generation;
        }
    }

    /// <summary>The upload of one target pod of this capture.</summary>
    public CaptureIdentity Target(string pod) => TargetOf(Capture, pod);

    public static CaptureIdentity TargetOf(PacketCapture capture, string pod) =>
        new(capture.Metadata.Uid, capture.Metadata.NamespaceProperty, capture.Metadata.Name, pod);

    public static PacketCaptureStatus? Clone(PacketCaptureStatus? status) =>
        status is null ? null : KubernetesJson.Deserialize<PacketCaptureStatus>(KubernetesJson.Serialize(status));
}
