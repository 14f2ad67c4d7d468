using KubeCapture.Contracts;

namespace KubeCapture.Operator.Storage;

/// <summary>Retention in object storage as the controller meets it (<see cref="EvidenceRetention"/>).</summary>
public interface IEvidenceRetention
{
    /// <summary>Null when the store can lock objects; otherwise why a locked or held capture cannot be kept.</summary>
    Task<string?> CheckObjectLockAsync(CancellationToken cancellationToken);

    /// <summary>Deletes each target's pcap and manifest, except those a lock or legal hold keeps (and says until when).</summary>
    Task<IReadOnlyList<TargetDisposal>> DisposeAsync(IEnumerable<CaptureIdentity> targets, CancellationToken cancellationToken);
}
