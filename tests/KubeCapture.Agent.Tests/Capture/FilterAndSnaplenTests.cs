using System.Globalization;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Capture;

public sealed class FilterAndSnaplenTests(LabFixture fixture) : IClassFixture<LabFixture>
{
    [Fact]
    public async Task PacketsTheFilterRejectsAreNotCountedAsReceivedByFilter()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        // Dense traffic outside the filter while the capture opens: the kernel counts packets from the
        // moment its socket is bound, before the filter is installed.
        var pings = fixture.Client.ExecAsync("ping", "-n", "-q", "-i", "0.002", "-c", "600", fixture.Server.IPv4.ToString());
        await Task.Delay(200);
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var exit = await AgentProcess.RunAsync(fixture.Server, ["capture", "-i", fixture.Server.Interface, "--duration", "300ms", "--overwrite", "-w", pcap, "udp port 9"], TimeSpan.FromSeconds(15));
            Assert.Equal(0, exit.ExitCode);
            var manifest = CaptureFiles.Manifest(pcap);
            Assert.Equal(0, manifest.PacketsWritten);
            Assert.Equal(0, manifest.PacketsReceived);
        }

        await pings;
    }

    [Fact]
    public async Task NoPacketOutsideTheFilterIsCapturedWhileOtherTrafficFlows()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-i", "any", "--duration", "20s", "-w", pcap, $"tcp port {LabFixture.HttpPort}"]);
        await agent.WaitUntilListeningAsync();

        // Traffic inside the filter, and outside it: a refused TCP port, UDP (answered by ICMP port unreachable), IPv6.
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("small.txt"))).Stdout);
        Assert.Equal(7, (await fixture.Client.CurlAsync($"http://{fixture.Server.UrlHost(false)}:{LabFixture.ClosedPort}/")).ExitCode);
        (await fixture.Client.ExecAsync("bash", "-c", $"echo outside > /dev/udp/{fixture.Server.IPv4}/9999")).EnsureSuccess();
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("small.txt", ipv6: true))).Stdout);
        await Task.Delay(300);
        Assert.Equal(0, (await agent.StopAsync()).ExitCode);

        var inside = await Tcpdump.ReadAsync(pcap);
        var outside = await Tcpdump.ReadAsync(pcap, $"not (tcp port {LabFixture.HttpPort})");
        Assert.Empty(outside.Lines);
        Assert.Contains(inside.Tcp, l => !l.IsIPv6);
        Assert.Contains(inside.Tcp, l => l.IsIPv6);
        Assert.Equal(inside.Lines.Count, inside.Tcp.Count);
        var tshark = await Tshark.FieldsAsync(pcap, ["frame.number"], $"!(tcp.port == {LabFixture.HttpPort})");
        Assert.Empty(tshark);
        Assert.Equal($"tcp port {LabFixture.HttpPort}", CaptureFiles.Manifest(pcap).Filter);
    }

    [Fact]
    public async Task SnaplenCutsEveryRecordButKeepsTheOriginalLength()
    {
        const int snaplen = 96;
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-i", fixture.Server.Interface, "-s", $"{snaplen}", "--duration", "20s", "-w", pcap, $"tcp port {LabFixture.HttpPort}"]);
        await agent.WaitUntilListeningAsync();
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("30k.bin"))).Stdout);
        await Task.Delay(300);
        var exit = await agent.StopAsync();
        Assert.Equal(0, exit.ExitCode);

        var capinfos = await Capinfos.ReadAsync(pcap);
        Assert.Equal(snaplen, capinfos.SnapshotLength);
        var frames = await Tshark.FieldsAsync(pcap, ["frame.cap_len", "frame.len"]);
        var lengths = frames.Select(f => (Captured: int.Parse(f[0], CultureInfo.InvariantCulture), Original: int.Parse(f[1], CultureInfo.InvariantCulture))).ToList();
        Assert.NotEmpty(lengths);
        Assert.All(lengths, l => Assert.True(l.Captured <= snaplen && l.Captured <= l.Original, $"{l}"));
        Assert.Contains(lengths, l => l.Original >= 1500); // full-size Ethernet frames of the 30 kB body, cut to 96
        Assert.All(lengths.Where(l => l.Original > snaplen), l => Assert.Equal(snaplen, l.Captured));
        Assert.Equal(capinfos.Packets, lengths.Count);

        // The summary still measures the cut segments from their headers.
        var summary = CaptureFiles.Manifest(pcap).Summary!;
        Assert.Equal(0, summary.UndecodablePackets);
        Assert.Equal(1448, summary.LargestAcknowledgedSegment);
        Assert.Equal(1, summary.HandshakesCompleted);
    }

    [Fact]
    public async Task SnaplenCuttingInsideTheHeadersNeverCrashesTheSummary()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        // 40 bytes of Linux cooked frames: SLL (16) + IPv4 (20) + 4 bytes of TCP.
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-i", "any", "-s", "40", "--duration", "20s", "-w", pcap, "--json", $"tcp port {LabFixture.HttpPort}"]);
        await agent.WaitUntilListeningAsync();
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("30k.bin"))).Stdout);
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("small.txt", ipv6: true))).Stdout);
        await Task.Delay(300);
        var exit = await agent.StopAsync();
        Assert.Equal(0, exit.ExitCode);

        var manifest = CaptureManifest.FromJson(exit.Stdout);
        Assert.Equal("signal", manifest.StopReason);
        Assert.True(manifest.PacketsWritten > 20, $"{manifest.PacketsWritten} packets");
        Assert.Equal(manifest.PacketsWritten, manifest.Summary!.UndecodablePackets);
        Assert.Equal((await Capinfos.ReadAsync(pcap)).Packets, manifest.PacketsWritten);
    }
}
