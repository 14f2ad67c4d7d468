using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Watcher;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Chooses a capture's target pods, once: the pods that already carry this capture's container first
/// (an injection before a crash), otherwise the resolved selector; then Pod Security and the per-pod
/// cap of capture containers. Records the targets as Pending and tells the ingest whom to expect.
/// </summary>
public sealed class TargetSelection(ClusterCache cluster, TargetResolver targets, PodSecurityPreflight podSecurity, CaptureContainerCap cap, IAgentAddresses addresses)
{
    /// <summary>Null and the Pod Security verdict when the targets are chosen; otherwise why not.</summary>
    public async Task<(NotStarted? Problem, PodSecurityVerdict? Security)> ChooseAsync(StatusDraft draft, CancellationToken cancellationToken)
    {
        var capture = draft.Capture;
        var status = draft.Status;
        var name = EphemeralContainerSpec.ContainerName(capture.Metadata.Uid);
        var injectedBefore = cluster.PodsWithContainer(capture.Metadata.NamespaceProperty, name);
        var resolution = injectedBefore.Count > 0
            ? new TargetResolution([.. injectedBefore.OrderBy(p => p.Metadata.Name, StringComparer.Ordinal)], null, null)
            : await targets.ResolveAsync(capture, cancellationToken);
        if (!resolution.Found)
        {
            draft.Set(CaptureConditions.TargetsReady, false, resolution.Reason!, resolution.Message!);
            return (new NotStarted(resolution.Reason!, resolution.Message!), null);
        }

        var security = await podSecurity.CheckAsync(capture.Metadata.NamespaceProperty, cancellationToken);
        if (!security.Allowed)
        {
            draft.Set(CaptureConditions.TargetsReady, false, security.Reason, security.Message);
            return (new NotStarted(security.Reason, security.Message), security);
        }

        foreach (var pod in resolution.Pods)
        {
            if (cap.Reached(pod, name) is { } full)
            {
                draft.Set(CaptureConditions.TargetsReady, false, "CaptureContainerLimit", full);
                return (new NotStarted("CaptureContainerLimit", full), security);
            }
        }

        draft.Set(CaptureConditions.TargetsReady, true, security.Reason, security.Message);
        foreach (var pod in resolution.Pods)
        {
            addresses.Expect(draft.Target(pod.Metadata.Name), UploadTerms.Of(capture, pod));
        }

        status.Targets = resolution.Pods.Select(p => new CaptureTargetStatus
        {
            Pod = p.Metadata.Name,
            Node = p.Spec.NodeName,
            Container = name,
            State = TargetState.Pending,
        }).ToList();
        status.StartTime = draft.Now;
        status.Phase = CapturePhase.Pending;
        status.Message = "adding capture containers";
        status.TargetSummary = string.Join(",", status.Targets.Select(t => t.Pod));
        return (null, security);
    }
}
