using System.Collections.Concurrent;
using System.Text.Json;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Reconciliation;

namespace KubeCapture.Operator.Custody;

/// <summary>
/// The reconciler's side of the chain of custody: it tells, on every reconcile of a target (so again
/// after a restart or on a new leader), who asked, why, the spec, the pod and the capture
/// container's image; the ingest writes that into the manifest it signs.
/// </summary>
public interface ICustodyWitness
{
    void Witness(PacketCapture capture, V1Pod pod, string captureContainer);

    /// <summary>The capture is gone: forget its targets.</summary>
    void Forget(string captureUid);
}

/// <summary>Implements <see cref="ICustodyWitness"/> for the ingest, which reads it when a pcap is stored.</summary>
public sealed class CustodyLedger : ICustodyWitness
{
    private readonly ConcurrentDictionary<CaptureIdentity, TargetCustody> _targets = new();

    public void Witness(PacketCapture capture, V1Pod pod, string captureContainer)
    {
        var target = new CaptureIdentity(capture.Metadata.Uid, capture.Metadata.NamespaceProperty, capture.Metadata.Name, pod.Metadata.Name);
        var previous = _targets.GetValueOrDefault(target);
        _targets[target] = new TargetCustody
        {
            Requester = RequesterStamp.Read(capture.Metadata),
            Reason = capture.Spec.Reason,
            Spec = JsonDocument.Parse(KubernetesJson.Serialize(capture.Spec)).RootElement.Clone(),
            Pod = new TargetPodRecord
            {
                Name = pod.Metadata.Name,
                Uid = pod.Metadata.Uid,
                Node = pod.Spec?.NodeName,
                Ips = PodAddresses.Of(pod) is { Count: > 0 } ips ? ips : previous?.Pod.Ips ?? [],
            },
            AgentImage = pod.Spec?.EphemeralContainers?.FirstOrDefault(c => c.Name == captureContainer)?.Image ?? previous?.AgentImage,
            Lock = capture.Spec.Retention?.Lock ?? "none",
            LegalHold = capture.Spec.Retention?.LegalHold == true,
        };
    }

    /// <summary>What the reconciler told about the target, or null (a standalone ingest, or not reconciled since this process started).</summary>
    public TargetCustody? Of(CaptureIdentity target) => _targets.GetValueOrDefault(target);

    public void Forget(string captureUid)
    {
        foreach (var target in _targets.Keys.Where(t => t.CaptureUid == captureUid))
        {
            _targets.TryRemove(target, out _);
        }
    }
}
