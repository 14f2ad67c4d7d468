using k8s.Models;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// How many capture containers one pod may carry (<see cref="ReconcilerOptions.MaxCaptureContainersPerPod"/>):
/// ephemeral containers can never be removed, so each capture leaves one behind until the pod restarts.
/// </summary>
public sealed class CaptureContainerCap(ReconcilerOptions options)
{
    /// <summary>Why <paramref name="pod"/> can take no capture container named <paramref name="name"/>; null when it can (or has it already).</summary>
    public string? Reached(V1Pod pod, string name)
    {
        var ours = pod.Spec.EphemeralContainers?.Any(c => c.Name == name) == true;
        var others = (pod.Spec.EphemeralContainers ?? []).Count(c => EphemeralContainerSpec.CaptureUidOf(c.Name) is not null && c.Name != name);
        return !ours && others >= options.MaxCaptureContainersPerPod
            ? $"pod '{pod.Metadata.Name}' already has {others} capture containers, the most allowed (ephemeral containers can never be removed; restart the pod to clear them)"
            : null;
    }
}
