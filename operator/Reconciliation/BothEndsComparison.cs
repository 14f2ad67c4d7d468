using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Findings;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Targets captured over the same window are compared two by two (the ends of the conversations
/// between them): what only both ends show goes to the capture's findings. Needs the agents'
/// manifests, which the ingest keeps while the capture exists.
/// </summary>
public sealed class BothEndsComparison(IIngestStatus ingest)
{
    public async Task CompareAsync(StatusDraft draft, CancellationToken cancellationToken)
    {
        var status = draft.Status;
        var summaries = new List<(string Pod, TcpSummaryReport Summary, long Dropped)>();
        foreach (var target in status.Targets.Where(t => t.State == TargetState.Succeeded))
        {
            if ((await ingest.GetAsync(draft.Target(target.Pod), cancellationToken))?.Manifest is { Summary: { } summary } manifest)
            {
                summaries.Add((target.Pod, summary, manifest.PacketsDroppedByKernel));
            }
        }

        for (var i = 0; i < summaries.Count; i++)
        {
            for (var j = i + 1; j < summaries.Count; j++)
            {
                var comparison = EndComparison.Compare(summaries[i].Summary, summaries[j].Summary, capturesMissedPackets: summaries[i].Dropped + summaries[j].Dropped > 0);
                if (comparison.Count > 0)
                {
                    status.Findings = StatusFindings.WithComparison(status.Findings, summaries[i].Pod, summaries[j].Pod, comparison);
                    status.FindingCount = (status.FindingCount ?? 0) + comparison.Count(f => f.Severity != FindingSeverity.Info);
                }
            }
        }
    }
}
