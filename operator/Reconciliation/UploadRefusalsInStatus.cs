using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Ingest;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Uploads the ingest refused for a capture's targets (a second session, a forged stream): counted
/// into each target's status first, announced (one Warning Event per target) only once the status
/// holds them, so a failed status write loses none.
/// </summary>
public sealed class UploadRefusalsInStatus(IAgentAddresses addresses, CaptureEvents events, ILogger<UploadRefusalsInStatus> logger)
{
    /// <summary>
    /// Refused uploads the ingest counted since the last reconcile, added to each target's status.
    /// They stay pending in the ingest until <see cref="AnnounceAsync"/> runs after the status write.
    /// </summary>
    public IReadOnlyList<(CaptureIdentity Target, UploadRefusals Refusals)> Take(StatusDraft draft)
    {
        var taken = new List<(CaptureIdentity, UploadRefusals)>();
        foreach (var target in draft.Status.Targets)
        {
            var identity = draft.Target(target.Pod);
            var refusals = addresses.Refusals(identity);
            if (refusals.Count > 0)
            {
                refusals.AddTo(target);
                taken.Add((identity, refusals));
            }
        }

        return taken;
    }

    /// <summary>After the status holds them: one Warning Event per target, and the ingest forgets them.</summary>
    public async Task AnnounceAsync(PacketCapture capture, IReadOnlyList<(CaptureIdentity Target, UploadRefusals Refusals)> refused, CancellationToken cancellationToken)
    {
        foreach (var (target, refusals) in refused)
        {
            addresses.Surfaced(target, refusals);
            logger.LogWarning("{Capture} pod {Pod}: {Count} upload(s) refused: {Message}", capture.Key, target.Pod, refusals.Count, refusals.LastMessage);
            await events.OnCaptureAsync(capture, "Warning", "UploadRefused", refusals.EventMessage(target.Pod), cancellationToken);
        }
    }
}
