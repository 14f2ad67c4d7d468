using System.Text.Json;
using k8s;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Watcher;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Adds the capture container (an ephemeral container with only CAP_NET_RAW, <see cref="EphemeralContainerSpec"/>)
/// to every Pending target, skipping pods that already have it: its name holds the capture's UID, so
/// a repeated injection is a no-op. The upload token goes first, in a Secret the kubelet hands the
/// container (or in the pod spec, <see cref="TokenDelivery"/>). One Event on each pod it was added to.
/// </summary>
public sealed class ContainerInjection(
    IKubernetes kubernetes,
    ClusterCache cluster,
    ICaptureTokenIssuer tokens,
    IAgentAddresses addresses,
    ICustodyWitness custody,
    IIngestAuthority ingestAuthority,
    PodSecurityPreflight podSecurity,
    CaptureContainerCap cap,
    CaptureEvents events,
    ReconcilerOptions options)
{
    /// <summary>
    /// How capture containers get their upload token: Secret or PodSpec (<see cref="ReconcilerOptions.TokenDelivery"/>;
    /// Auto is resolved by <see cref="CaptureOperator"/> from the server's version before any reconcile).
    /// </summary>
    public TokenDelivery TokenDelivery { get; set; } = options.TokenDelivery == TokenDelivery.PodSpec ? TokenDelivery.PodSpec : TokenDelivery.Secret;

    /// <summary>
    /// Null once every Pending target carries the container (now Starting); otherwise why not.
    /// <paramref name="checkedSecurity"/>: the Pod Security verdict of this reconcile, if it already has one.
    /// </summary>
    public async Task<NotStarted?> InjectAsync(StatusDraft draft, PodSecurityVerdict? checkedSecurity, CancellationToken cancellationToken)
    {
        var capture = draft.Capture;
        var status = draft.Status;
        var security = checkedSecurity ?? await podSecurity.CheckAsync(capture.Metadata.NamespaceProperty, cancellationToken);
        if (!security.Allowed)
        {
            draft.Set(CaptureConditions.TargetsReady, false, security.Reason, security.Message);
            return new NotStarted(security.Reason, security.Message);
        }

        var name = EphemeralContainerSpec.ContainerName(capture.Metadata.Uid);
        foreach (var target in status.Targets.Where(t => t.State == TargetState.Pending))
        {
            if (await cluster.GetPodAsync(capture.Metadata.NamespaceProperty, target.Pod, cancellationToken) is not { } pod)
            {
                addresses.Unbind(draft.Target(target.Pod));
                var gone = $"pod '{target.Pod}' was deleted before the capture container could be added";
                draft.Set(CaptureConditions.Injected, false, "PodDeleted", gone);
                return new NotStarted("PodDeleted", gone);
            }

            custody.Witness(capture, pod, name);
            addresses.Expect(draft.Target(target.Pod), UploadTerms.Of(capture, pod));
            if (pod.Spec.EphemeralContainers?.Any(c => c.Name == name) != true)
            {
                if (cap.Reached(pod, name) is { } full)
                {
                    draft.Set(CaptureConditions.TargetsReady, false, "CaptureContainerLimit", full);
                    return new NotStarted("CaptureContainerLimit", full);
                }

                using var inject = Tracing.CaptureTracing.StartInject(capture.Metadata.NamespaceProperty, capture.Metadata.Name, target.Pod);
                if (await AddContainerAsync(draft, target, security, inject?.Id, cancellationToken) is { } failed)
                {
                    draft.Set(CaptureConditions.Injected, false, "InjectionFailed", failed);
                    return new NotStarted("InjectionFailed", failed);
                }

                // One Event per injection, on the pod (kubectl describe pod): who captures there and why.
                // The capture itself records it in its Injected condition.
                await events.OnPodAsync(pod, "Normal", "CaptureStarted",
                    $"capture container {name} added for PacketCapture {capture.Metadata.Name}: {capture.Spec.Reason}" + (security.AddNetRaw ? "" : "; " + security.Message),
                    cancellationToken);
            }

            target.State = TargetState.Starting;
        }

        draft.Set(CaptureConditions.Injected, true, "ContainersAdded", $"capture container {name} added to {string.Join(", ", status.Targets.Select(t => t.Pod))}");
        return null;
    }

    /// <summary>The token, then the container patch (<paramref name="traceParent"/>: the inject span's context, for the agent); null when added, otherwise what the API server refused.</summary>
    private async Task<string?> AddContainerAsync(StatusDraft draft, CaptureTargetStatus target, PodSecurityVerdict security, string? traceParent,
        CancellationToken cancellationToken)
    {
        var capture = draft.Capture;
        var issued = tokens.Issue(draft.Target(target.Pod));
        var inSecret = TokenDelivery == TokenDelivery.Secret;
        var container = EphemeralContainerSpec.Build(capture, target.Pod, options.AgentImage, options.IngestUrl,
            inSecret ? EphemeralContainerSpec.TokenFromSecret(UploadTokenSecret.NameFor(capture.Metadata.Uid, target.Pod)) : EphemeralContainerSpec.TokenInSpec(issued),
            security.AddNetRaw, IngestAuthority(), traceParent);
        try
        {
            if (inSecret)
            {
                // The token first, in a Secret the kubelet hands the container: never a literal in the pod spec.
                await UploadTokenSecret.EnsureAsync(kubernetes, capture, target.Pod, issued, cancellationToken);
            }

            var patch = "{\"spec\":{\"ephemeralContainers\":[" + KubernetesJson.Serialize(container) + "]}}";
            // The pod as patched joins the cache: the next reconcile sees the container even before the watch does.
            cluster.Pods.Offer(await kubernetes.CoreV1.PatchNamespacedPodEphemeralcontainersAsync(
                new V1Patch(patch, V1Patch.PatchType.StrategicMergePatch), target.Pod, capture.Metadata.NamespaceProperty, cancellationToken: cancellationToken));
            return null;
        }
        catch (k8s.Autorest.HttpOperationException e) when ((int)e.Response.StatusCode is 403 or 404 or 422)
        {
            return e.Request.RequestUri.AbsolutePath.Contains("/secrets", StringComparison.Ordinal)
                ? $"could not create the upload token Secret for pod '{target.Pod}': {StatusMessage(e)}"
                : $"could not add the capture container to pod '{target.Pod}': {StatusMessage(e)}";
        }
    }

    /// <summary>
    /// The CA the agent verifies a TLS ingest against (https:// ingest URL); null for a plain h2c one.
    /// Not loaded yet (the serving certificate is read at start): the reconcile fails and is retried.
    /// </summary>
    private string? IngestAuthority() =>
        !EphemeralContainerSpec.IsTls(options.IngestUrl) ? null
        : ingestAuthority.AuthorityPem ?? throw new InvalidOperationException(
            "the ingest serves TLS but its CA is not loaded yet (ServingCertificate): the capture container is added once it is");

    /// <summary>The message of kube-apiserver's Status in <paramref name="e"/>'s body, else the exception's.</summary>
    internal static string StatusMessage(k8s.Autorest.HttpOperationException e)
    {
        try
        {
            return KubernetesJson.Deserialize<V1Status>(e.Response.Content).Message ?? e.Message;
        }
        catch (JsonException)
        {
            return e.Message;
        }
    }
}
