using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Findings;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// The capture's phase, message, counters, findings and Complete condition, rolled up from its
/// targets. A pure function of the targets: every target Succeeded is Succeeded, every target ended
/// with one Failed is Failed (the first failure is the message), otherwise Uploading, Running or Pending.
/// </summary>
public static class PhaseRollUp
{
    public static void Apply(PacketCaptureStatus status, long? generation, DateTime now)
    {
        var list = status.Targets;
        status.TargetSummary = string.Join(",", list.Select(t => t.Pod));
        status.Packets = list.Sum(t => t.Packets);
        status.DroppedByKernel = list.Sum(t => t.DroppedByKernel);
        status.FindingCount = StatusFindings.Count(list);
        status.Findings = StatusFindings.OfCapture(list) is { Count: > 0 } findings ? findings : null;
        if (list.All(t => t.State == TargetState.Succeeded))
        {
            status.Phase = CapturePhase.Succeeded;
            status.Message = $"{status.Packets} packets from {list.Count} pod(s) stored and verified";
            status.CompletionTime = now;
            CaptureConditions.Set(status, CaptureConditions.Complete, true, "Succeeded", status.Message, generation, now);
        }
        else if (list.All(t => TargetState.IsTerminal(t.State)))
        {
            var failed = list.First(t => t.State == TargetState.Failed);
            var reason = failed.Reason ?? "Failed";
            status.Phase = CapturePhase.Failed;
            status.Message = $"pod {failed.Pod}: {failed.Reason}: {failed.Message}";
            status.CompletionTime = now;
            CaptureConditions.Set(status, CaptureConditions.Complete, false, reason, status.Message, generation, now);
        }
        else
        {
            var active = list.Where(t => !TargetState.IsTerminal(t.State)).ToList();
            status.Phase = active.All(t => t.State == TargetState.Uploading) ? CapturePhase.Uploading
                : active.Any(t => t.State is TargetState.Capturing or TargetState.Uploading) ? CapturePhase.Running
                : CapturePhase.Pending;
            status.Message = status.Phase switch
            {
                CapturePhase.Uploading => "capture finished; storing the pcap",
                CapturePhase.Running => $"capturing on {active.Count(t => t.State == TargetState.Capturing)} pod(s)",
                _ => "waiting for the capture containers to start",
            };
            CaptureConditions.Set(status, CaptureConditions.Complete, null, status.Phase, status.Message, generation, now);
        }
    }

    /// <summary>The capture failed as a whole (before or at its start): Failed, with its reason in the Complete condition.</summary>
    public static void Fail(PacketCaptureStatus status, string reason, string message, long? generation, DateTime now)
    {
        status.Phase = CapturePhase.Failed;
        status.Message = message;
        status.CompletionTime ??= now;
        CaptureConditions.Set(status, CaptureConditions.Complete, false, reason, message, generation, now);
    }

    /// <summary>One target failed, and why.</summary>
    public static void Fail(CaptureTargetStatus target, string reason, string message)
    {
        target.State = TargetState.Failed;
        target.Reason = reason;
        target.Message = message;
    }
}
