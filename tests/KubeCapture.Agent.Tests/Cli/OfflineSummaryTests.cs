using System.Text.Json;
using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Cli;

/// <summary><c>summarize FILE.pcap</c>: the TCP summary for a pcap someone else captured, e.g. with tcpdump.</summary>
public sealed class OfflineSummaryTests(LabFixture fixture) : IClassFixture<LabFixture>
{
    [Fact]
    public async Task SummarizesAPcapWrittenByTcpdump()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap("by-tcpdump.pcap");
        using var tcpdump = await TcpdumpCapture.StartAsync(fixture.Server, "any", pcap, $"tcp port {LabFixture.HttpPort} or tcp port {LabFixture.ClosedPort}");
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("small.txt", ipv6: true))).Stdout);
        Assert.Equal(7, (await fixture.Client.CurlAsync($"http://{fixture.Server.UrlHost(false)}:{LabFixture.ClosedPort}/")).ExitCode);
        await Task.Delay(300);
        await tcpdump.StopAsync();

        var human = await AgentProcess.RunAsync(null, ["summarize", pcap]);
        Assert.Equal(0, human.ExitCode);
        Assert.True(!human.Stdout.Contains("TCP: 0 packets", StringComparison.Ordinal), tcpdump.Log + human.Stdout + new FileInfo(pcap).Length);
        Assert.Contains("1 connection to " + fixture.Server.IPv4 + $":{LabFixture.ClosedPort} refused", human.Stdout);
        var json = await AgentProcess.RunAsync(null, ["summarize", "--json", pcap]);
        Assert.Equal(0, json.ExitCode);
        var report = JsonSerializer.Deserialize(json.Stdout, SummaryJsonContext.Default.TcpSummaryReport)!;
        Assert.Equal(2, report.Connections);
        Assert.Equal(1, report.HandshakesCompleted);
        Assert.Equal(1, report.Refused);
        Assert.Equal(0, report.Retransmissions);
        Assert.Equal(0, report.UndecodablePackets);
    }

    [Fact]
    public async Task MissingFileIsBadInput()
    {
        var exit = await AgentProcess.RunAsync(null, ["summarize", "/nonexistent/kcAT.pcap"]);
        Assert.Equal(2, exit.ExitCode);
        Assert.Equal("kubecapture-agent: no such file: '/nonexistent/kcAT.pcap'", Assert.Single(exit.StderrLines));
    }

    [Fact]
    public async Task FileThatIsNoPcapIsBadInput()
    {
        using var files = new CaptureFiles();
        var notPcap = files.Pcap("notes.pcap");
        await File.WriteAllTextAsync(notPcap, "this is not a capture\n");
        var exit = await AgentProcess.RunAsync(null, ["summarize", notPcap]);
        Assert.Equal(2, exit.ExitCode);
        Assert.Equal($"kubecapture-agent: '{notPcap}' is not a capture file libpcap can read: unknown file format", Assert.Single(exit.StderrLines));
    }
}
