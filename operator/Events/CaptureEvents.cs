using k8s;
using k8s.Models;
using KubeCapture.Operator.Resources;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Events;

/// <summary>
/// Kubernetes Events on the capture and on its target pods (kubectl describe shows them). Recording
/// an event never fails a reconcile: a lost event is logged, the status stays the source of truth.
/// </summary>
public sealed class CaptureEvents(IKubernetes kubernetes, ILogger<CaptureEvents> logger, TimeProvider time)
{
    public const string Component = "kubecapture-operator";

    public Task OnCaptureAsync(PacketCapture capture, string type, string reason, string message, CancellationToken cancellationToken) =>
        RecordAsync(capture.Metadata.NamespaceProperty, new V1ObjectReference
        {
            ApiVersion = PacketCapture.GroupVersion,
            Kind = PacketCapture.KindName,
            Name = capture.Metadata.Name,
            NamespaceProperty = capture.Metadata.NamespaceProperty,
            Uid = capture.Metadata.Uid,
            ResourceVersion = capture.Metadata.ResourceVersion,
        }, type, reason, message, cancellationToken);

    public Task OnPodAsync(V1Pod pod, string type, string reason, string message, CancellationToken cancellationToken) =>
        RecordAsync(pod.Metadata.NamespaceProperty, new V1ObjectReference
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Name = pod.Metadata.Name,
            NamespaceProperty = pod.Metadata.NamespaceProperty,
            Uid = pod.Metadata.Uid,
        }, type, reason, message, cancellationToken);

    private async Task RecordAsync(string ns, V1ObjectReference involved, string type, string reason, string message, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().UtcDateTime;
        try
        {
            await kubernetes.CoreV1.CreateNamespacedEventAsync(new Corev1Event
            {
                Metadata = new V1ObjectMeta { GenerateName = involved.Name + ".", NamespaceProperty = ns },
                InvolvedObject = involved,
                Type = type,
                Reason = reason,
                Message = message.Length > 1024 ? message[..1024] : message,
                Source = new V1EventSource { Component = Component },
                ReportingComponent = Component,
                ReportingInstance = Environment.MachineName,
                FirstTimestamp = now,
                LastTimestamp = now,
                Count = 1,
            }, ns, cancellationToken: cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.LogWarning("could not record event {Reason} on {Kind} {Namespace}/{Name}: {Error}", reason, involved.Kind, ns, involved.Name, e.Message);
        }
    }
}
