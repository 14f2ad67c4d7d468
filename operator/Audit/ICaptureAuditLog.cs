using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Audit;

/// <summary>What the controller records in the audit log (<see cref="AuditTrail"/>).</summary>
public interface ICaptureAuditLog
{
    /// <summary>True when a contested end is announced by the audit log's own 'contested' line and its Event: the controller then adds no second Event.</summary>
    bool AnnouncesContestedEnds { get; }

    Task RecordAsync(PacketCapture capture, Transition transition, CancellationToken cancellationToken);

    /// <summary>Records every lifecycle event the status written for <paramref name="before"/> shows.</summary>
    Task RecordTransitionsAsync(PacketCapture before, PacketCaptureStatus written, CancellationToken cancellationToken);
}
