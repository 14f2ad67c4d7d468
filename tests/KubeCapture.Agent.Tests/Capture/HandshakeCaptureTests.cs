using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Capture;

/// <summary>
/// The drill of the tcpdump field guide, captured by the agent and read back by the real tcpdump:
/// one request to a throwaway web server and one connection to a port where nothing listens.
/// </summary>
public sealed class HandshakeCaptureTests(LabFixture fixture) : IClassFixture<LabFixture>
{
    [Theory]
    [InlineData(false, true, "LINUX_SLL")]
    [InlineData(true, true, "LINUX_SLL")]
    [InlineData(false, false, "EN10MB")]
    [InlineData(true, false, "EN10MB")]
    public async Task TcpdumpReadsTheHandshakeTheRequestAndTheRefusal(bool ipv6, bool anyInterface, string linkType)
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        var iface = anyInterface ? "any" : fixture.Server.Interface;
        await using var agent = AgentProcess.Start(fixture.Server,
            ["capture", "-i", iface, "--duration", "20s", "-w", pcap, $"tcp port {LabFixture.HttpPort} or tcp port {LabFixture.ClosedPort}"]);
        await agent.WaitUntilListeningAsync();

        var ok = await fixture.Client.CurlAsync(fixture.Http.Url("small.txt", ipv6));
        Assert.Equal("200", ok.Stdout);
        var refused = await fixture.Client.CurlAsync($"http://{fixture.Server.UrlHost(ipv6)}:{LabFixture.ClosedPort}/");
        Assert.Equal(7, refused.ExitCode); // curl: couldn't connect
        await Task.Delay(300);
        var exit = await agent.StopAsync();
        Assert.Equal(0, exit.ExitCode);

        var dump = await Tcpdump.ReadAsync(pcap);
        Assert.Equal(linkType, dump.LinkType);
        Assert.Equal(128, dump.SnapshotLength);
        var client = fixture.Client.Address(ipv6).ToString();
        var server = fixture.Server.Address(ipv6).ToString();
        var tcp = dump.Tcp.ToList();
        Assert.All(tcp, l => Assert.Equal(ipv6, l.IsIPv6));

        // The handshake: [S], [S.] acknowledging the client's ISN + 1, then [.] ack 1.
        var syn = Assert.Single(tcp, l => l.Flags == "S" && l.Source == client && l.DestinationPort == LabFixture.HttpPort);
        var synAck = Assert.Single(tcp, l => l.Flags == "S." && l.Source == server && l.DestinationPort == syn.SourcePort);
        Assert.Equal((syn.Sequence + 1) & 0xffff_ffff, synAck.Acknowledgment);
        var ack = tcp.First(l => l.Flags == "." && l.Source == client && l.SourcePort == syn.SourcePort);
        Assert.Equal(1, ack.Acknowledgment);
        Assert.True(tcp.IndexOf(syn) < tcp.IndexOf(synAck) && tcp.IndexOf(synAck) < tcp.IndexOf(ack), string.Join('\n', dump.Lines));

        // The request: [P.] seq 1:N+1 carrying exactly curl's N bytes.
        var expected = NetnsPod.CurlRequest("/small.txt", fixture.Server.UrlHost(ipv6), LabFixture.HttpPort).Length;
        var request = Assert.Single(tcp, l => l.Flags == "P." && l.Source == client && l.DestinationPort == LabFixture.HttpPort);
        Assert.Equal(expected, request.Length);
        Assert.Equal(1, request.Sequence);
        Assert.Equal(1 + expected, request.SequenceEnd);

        // The refusal: [S] to the closed port answered by [R.] acknowledging its ISN + 1.
        var closedSyn = Assert.Single(tcp, l => l.Flags == "S" && l.Source == client && l.DestinationPort == LabFixture.ClosedPort);
        var reset = Assert.Single(tcp, l => l.Flags == "R." && l.Source == server && l.SourcePort == LabFixture.ClosedPort);
        Assert.Equal(closedSyn.SourcePort, reset.DestinationPort);
        Assert.Equal((closedSyn.Sequence + 1) & 0xffff_ffff, reset.Acknowledgment);

        var manifest = CaptureFiles.Manifest(pcap);
        Assert.Equal("signal", manifest.StopReason);
        Assert.Equal(linkType, manifest.LinkType);
        Assert.Equal(dump.Lines.Count, manifest.PacketsWritten);
    }
}
