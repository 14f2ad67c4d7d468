using KubeCapture.Agent.Summary;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>What tests compare: a summary's findings beside the Info <see cref="FindingTypes.Latency"/> figures, which every capture with a handshake or a response has.</summary>
internal static class SummaryFindings
{
    public static IReadOnlyList<Finding> BesideLatency(this TcpSummaryReport report) => [.. report.Findings.Where(f => f.Type != FindingTypes.Latency)];
}
