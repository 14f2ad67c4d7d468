using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;

namespace KubeCapture.Operator.Findings;

/// <summary>
/// The agents' findings as the PacketCapture's status shows them: per target (<c>status.targets[].findings</c>)
/// and for the capture (<c>status.findings</c>, the most serious of all targets, each naming its
/// target). Bounded whatever the agent sends, so the status object stays small: a few findings, each
/// with a few samples and a sentence of bounded length; what is left out is counted.
/// </summary>
public static class StatusFindings
{
    public const int MaxPerTarget = 20;
    public const int MaxPerCapture = 10;
    public const int MaxMessageLength = 1024;
    private const int MaxIndicators = 8;
    private const int MaxFlowLength = 128;

    /// <summary>A target's findings from its agent's summary, most serious first; <paramref name="omitted"/> counts those left out (here and by the agent).</summary>
    public static List<CaptureFinding> OfTarget(TcpSummaryReport summary, out int omitted)
    {
        var kept = Of(summary.Findings, out omitted);
        omitted += summary.FindingsOmitted;
        return kept;
    }

    /// <summary>Findings (a target's, a snapshot's window's), most serious first and bounded; <paramref name="omitted"/> counts those left out.</summary>
    public static List<CaptureFinding> Of(IReadOnlyList<Finding> findings, out int omitted)
    {
        var ordered = findings.OrderBy(f => FindingSeverity.Rank(f.Severity)).ToList();
        omitted = Math.Max(0, ordered.Count - MaxPerTarget);
        return ordered.Take(MaxPerTarget).Select(Bounded).ToList();
    }

    /// <summary>The capture's findings: the most serious of all targets', each naming its target.</summary>
    public static List<CaptureFinding> OfCapture(IEnumerable<CaptureTargetStatus> targets) =>
        targets
            .SelectMany(t => (t.Findings ?? []).Select(f => (Target: t.Pod, Finding: f)))
            .OrderBy(x => FindingSeverity.Rank(x.Finding.Severity))
            .ThenByDescending(x => x.Finding.Evidence.Connections)
            .Take(MaxPerCapture)
            .Select(x => new CaptureFinding
            {
                Type = x.Finding.Type,
                Severity = x.Finding.Severity,
                Message = x.Finding.Message,
                Target = x.Target,
                Evidence = x.Finding.Evidence,
            })
            .ToList();

    /// <summary>
    /// Adds what only comparing two targets shows (<see cref="EndComparison"/>), naming both pods, before
    /// the targets' own findings (they explain them), within <see cref="MaxPerCapture"/>.
    /// </summary>
    public static List<CaptureFinding> WithComparison(IEnumerable<CaptureFinding>? capture, string first, string second, IReadOnlyList<Finding> comparison)
    {
        var compared = comparison.Select(Bounded).Select(f =>
        {
            f.Target = $"{first},{second}";
            return f;
        });
        return compared.Concat(capture ?? []).OrderBy(f => FindingSeverity.Rank(f.Severity)).Take(MaxPerCapture).ToList();
    }

    /// <summary>
    /// The findings that say something is wrong (Error and Warning) of every target, those left out
    /// included: the printer column. Info findings (the latency figures, segments reordered or copied
    /// by the network, retransmissions that were needless) describe healthy traffic too, so healthy
    /// traffic counts 0.
    /// </summary>
    public static long Count(IEnumerable<CaptureTargetStatus> targets) =>
        targets.Sum(t => (long)(t.Findings ?? []).Count(f => f.Severity != FindingSeverity.Info) + (t.FindingsOmitted ?? 0));

    private static CaptureFinding Bounded(Finding finding) => new()
    {
        Type = Truncate(finding.Type, 64),
        Severity = Truncate(finding.Severity, 16),
        Message = Truncate(finding.Message, MaxMessageLength),
        Evidence = new CaptureFindingEvidence
        {
            Connections = finding.Evidence.Connections,
            Packets = finding.Evidence.Packets,
            Flows = finding.Evidence.Flows.Take(FindingEvidence.MaxFlows).Select(f => Truncate(f, MaxFlowLength)).ToList(),
            PacketNumbers = finding.Evidence.PacketNumbers.Take(FindingEvidence.MaxPackets).ToList(),
            FirstSeen = finding.Evidence.FirstSeen is { } first ? Truncate(first, 32) : null,
            LastSeen = finding.Evidence.LastSeen is { } last ? Truncate(last, 32) : null,
            Indicators = finding.Evidence.Indicators.Take(MaxIndicators).Select(i => Truncate(i, 32)).ToList(),
        },
    };

    private static string Truncate(string text, int max) => text.Length <= max ? text : string.Concat(text.AsSpan(0, max - 1), "…");
}
