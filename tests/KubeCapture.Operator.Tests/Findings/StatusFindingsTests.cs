using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Findings;

namespace KubeCapture.Operator.Tests.Findings;

public sealed class StatusFindingsTests
{
    [Fact]
    public void A_summary_with_many_findings_and_flows_makes_a_status_of_bounded_size_and_counts_what_it_left_out()
    {
        // What an agent could send (or a forged one): far more than the status may hold.
        var summary = new TcpSummaryReport
        {
            Findings = Enumerable.Range(0, 500).Select(i => Finding(i % 3 == 0 ? FindingSeverity.Error : FindingSeverity.Info, i, 10_000)).ToList(),
            FindingsOmitted = 7,
        };
        var targets = Enumerable.Range(0, 5).Select(i =>
        {
            var findings = StatusFindings.OfTarget(summary, out var omitted);
            return new CaptureTargetStatus { Pod = $"api-{i}", Findings = findings, FindingsOmitted = omitted };
        }).ToList();
        var status = new PacketCaptureStatus { Targets = targets, Findings = StatusFindings.OfCapture(targets), FindingCount = StatusFindings.Count(targets) };

        var target = targets[0];
        Assert.Equal(StatusFindings.MaxPerTarget, target.Findings!.Count);
        Assert.Equal(500 + 7 - StatusFindings.MaxPerTarget, target.FindingsOmitted);
        Assert.All(target.Findings, f => Assert.Equal(FindingSeverity.Error, f.Severity)); // the most serious are kept
        Assert.All(target.Findings, f =>
        {
            Assert.True(f.Message.Length <= StatusFindings.MaxMessageLength);
            Assert.True(f.Evidence.Flows.Count <= FindingEvidence.MaxFlows);
            Assert.True(f.Evidence.PacketNumbers.Count <= FindingEvidence.MaxPackets);
        });
        Assert.Equal(StatusFindings.MaxPerCapture, status.Findings.Count);
        Assert.All(status.Findings, f => Assert.StartsWith("api-", f.Target));
        Assert.Equal(5 * 507, status.FindingCount);
        var json = KubernetesJson.Serialize(status);
        Assert.True(json.Length < 256 * 1024, $"{json.Length} bytes of status");
    }

    [Fact]
    public void A_healthy_summary_gives_no_finding_and_a_count_of_zero()
    {
        var findings = StatusFindings.OfTarget(new TcpSummaryReport { Connections = 3, HandshakesCompleted = 3 }, out var omitted);
        var targets = new List<CaptureTargetStatus> { new() { Pod = "api", Findings = findings } };

        Assert.Empty(findings);
        Assert.Equal(0, omitted);
        Assert.Empty(StatusFindings.OfCapture(targets));
        Assert.Equal(0, StatusFindings.Count(targets));
    }

    [Fact]
    public void Healthy_traffic_with_its_latency_figures_lists_the_info_finding_and_counts_zero()
    {
        var latency = Finding(FindingSeverity.Info, 1, 1) with { Type = FindingTypes.Latency };
        var findings = StatusFindings.OfTarget(new TcpSummaryReport { Connections = 3, HandshakesCompleted = 3, Findings = [latency] }, out _);
        var targets = new List<CaptureTargetStatus> { new() { Pod = "api", Findings = findings } };

        Assert.Equal(FindingTypes.Latency, Assert.Single(StatusFindings.OfCapture(targets)).Type);
        Assert.Equal(0, StatusFindings.Count(targets));
    }

    [Fact]
    public void The_capture_lists_errors_of_every_target_before_warnings_each_naming_its_target()
    {
        var targets = new List<CaptureTargetStatus>
        {
            new() { Pod = "client", Findings = StatusFindings.OfTarget(new TcpSummaryReport { Findings = [Finding(FindingSeverity.Warning, 1, 10)] }, out _) },
            new() { Pod = "server", Findings = StatusFindings.OfTarget(new TcpSummaryReport { Findings = [Finding(FindingSeverity.Error, 2, 10)] }, out _) },
        };

        var capture = StatusFindings.OfCapture(targets);

        Assert.Equal([("server", FindingSeverity.Error), ("client", FindingSeverity.Warning)], capture.Select(f => (f.Target!, f.Severity)));
        Assert.Equal(2, StatusFindings.Count(targets));
    }

    private static Finding Finding(string severity, int i, int samples) => new()
    {
        Type = FindingTypes.ConnectionRefused,
        Severity = severity,
        Message = new string('x', samples),
        Evidence = new FindingEvidence
        {
            Connections = i,
            Packets = 2 * i,
            Flows = Enumerable.Range(0, samples).Select(k => $"169.254.1.2:{k} -> 169.254.1.1:{i}").ToList(),
            PacketNumbers = Enumerable.Range(1, samples).Select(k => (long)k).ToList(),
            Indicators = Enumerable.Range(0, samples).Select(k => $"i{k}").ToList(),
        },
    };
}
