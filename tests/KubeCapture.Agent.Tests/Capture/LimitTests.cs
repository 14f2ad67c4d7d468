using System.Globalization;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Capture;

/// <summary>tcpdump's guard rails: each limit stops the capture and leaves a valid pcap with the stop reason.</summary>
public sealed class LimitTests(LabFixture fixture) : IClassFixture<LabFixture>
{
    private string Filter => $"tcp port {LabFixture.HttpPort}";

    [Fact]
    public async Task PacketCountStopsTheCaptureAtExactlyThatManyPackets()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-c", "7", "--duration", "20s", "-w", pcap, Filter]);
        await agent.WaitUntilListeningAsync();
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("30k.bin"))).Stdout);
        var exit = await agent.WaitForExitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, exit.ExitCode);
        Assert.Equal(7, (await Tcpdump.ReadAsync(pcap)).Lines.Count);
        Assert.Equal(7, (await Capinfos.ReadAsync(pcap)).Packets);
        var manifest = CaptureFiles.Manifest(pcap);
        Assert.Equal("count", manifest.StopReason);
        Assert.Equal(7, manifest.PacketsWritten);
        Assert.Equal(7, manifest.Limits.MaxPackets);
        Assert.Contains("packet limit reached", exit.Stdout);
    }

    [Fact]
    public async Task DurationStopsTheCaptureOnTimeWithAValidPcap()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        var started = DateTime.UtcNow;
        var exit = await AgentProcess.RunAsync(fixture.Server, ["capture", "--duration", "800ms", "-w", pcap, Filter], TimeSpan.FromSeconds(15));
        var elapsed = DateTime.UtcNow - started;

        Assert.Equal(0, exit.ExitCode);
        var manifest = CaptureFiles.Manifest(pcap);
        Assert.Equal("duration", manifest.StopReason);
        Assert.Equal(0.8, manifest.Limits.DurationSeconds, 6);
        Assert.Equal("800ms", manifest.Limits.Duration);
        var captured = Parse(manifest.End) - Parse(manifest.Start);
        Assert.InRange(captured.TotalMilliseconds, 790, 5000); // on time, not to the millisecond: this is no benchmark
        Assert.True(elapsed < TimeSpan.FromSeconds(10), $"{elapsed}");
        Assert.Equal(0, (await Capinfos.ReadAsync(pcap)).Packets);
        Assert.Empty((await Tcpdump.ReadAsync(pcap)).Lines);
    }

    [Fact]
    public async Task DurationKeepsThePacketsOfTheWindowsLastMomentsAndNoneAfterIt()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        // tcpdump on the same interface is the ground truth: what arrived, with the kernel's timestamps.
        using var tcpdump = await TcpdumpCapture.StartAsync(fixture.Server, fixture.Server.Interface, files.Pcap("truth.pcap"), "udp port 10");
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-i", fixture.Server.Interface, "--duration", "1500ms", "-w", pcap, "udp port 10"]);
        await agent.WaitUntilListeningAsync();
        // A datagram every few milliseconds, from before the window closes until well after it.
        var sender = fixture.Client.ExecAsync("bash", "-c", $"for i in $(seq 400); do echo $i > /dev/udp/{fixture.Server.IPv4}/10; sleep 0.005; done");
        var exit = await agent.WaitForExitAsync(TimeSpan.FromSeconds(15));
        (await sender).EnsureSuccess();
        await tcpdump.StopAsync();

        Assert.Equal(0, exit.ExitCode);
        var manifest = CaptureFiles.Manifest(pcap);
        Assert.Equal("duration", manifest.StopReason);
        var windowEnd = Parse(manifest.Start).AddMilliseconds(1500);
        static DateTime Stamp(PcapRecord r) => DateTime.UnixEpoch.AddSeconds(r.Seconds).AddTicks(r.Microseconds * 10L);
        var stamps = PcapFile.Read(pcap).Records.Select(Stamp).ToList();
        Assert.NotEmpty(stamps);
        Assert.All(stamps, t => Assert.True(t <= windowEnd, $"{t:O} is after the window's end {windowEnd:O}"));
        // The kernel hands packets over in blocks, up to 100 ms late: without reading on past the
        // deadline, the window's last tens of milliseconds would be missing. Every datagram that
        // arrived in the window's last 200 ms (as tcpdump saw it; each packet socket stamps the
        // packet itself, so the stamps differ by microseconds) is there, matched by its payload
        // (the sender's counter, after the Ethernet, IPv4 and UDP headers).
        static string Payload(PcapRecord r) => System.Text.Encoding.ASCII.GetString(r.Data, 42, r.Data.Length - 42).Trim();
        var captured = PcapFile.Read(pcap).Records.Select(Payload).ToHashSet();
        var lastMoments = PcapFile.Read(tcpdump.Path).Records
            .Where(r => Stamp(r) > windowEnd.AddMilliseconds(-200) && Stamp(r) <= windowEnd.AddMilliseconds(-5))
            .Select(Payload)
            .ToList();
        Assert.NotEmpty(lastMoments);
        var missing = lastMoments.Where(p => !captured.Contains(p)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} of the {lastMoments.Count} datagrams of the window's last 200 ms (tcpdump) are not in the capture: {string.Join(' ', missing)}; its last packet {stamps.Max():O}, window end {windowEnd:O}");
    }

    [Fact]
    public async Task ByteCeilingIsNeverExceededAndTheFileStaysReadable()
    {
        const long maxBytes = 8192;
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-s", "0", "--max-bytes", "8KiB", "--duration", "20s", "-w", pcap, Filter]);
        await agent.WaitUntilListeningAsync();
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("30k.bin"))).Stdout);
        var exit = await agent.WaitForExitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, exit.ExitCode);
        var size = new FileInfo(pcap).Length;
        Assert.InRange(size, maxBytes - 1600, maxBytes); // stopped because the next whole record did not fit
        var manifest = CaptureFiles.Manifest(pcap);
        Assert.Equal("bytes", manifest.StopReason);
        Assert.Equal(maxBytes, manifest.Limits.MaxBytes);
        Assert.Equal(size, manifest.BytesWritten);
        var capinfos = await Capinfos.ReadAsync(pcap);
        Assert.Equal(manifest.PacketsWritten, capinfos.Packets);
        var dump = await Tcpdump.ReadAsync(pcap);
        Assert.Equal(manifest.PacketsWritten, dump.Lines.Count);
        Assert.DoesNotContain("truncated", dump.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(manifest.PacketsWritten, PcapFile.Read(pcap).Records.Count);
    }

    [Fact]
    public async Task SigtermMidCaptureLeavesAValidPcapAndStopReasonSignal()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-i", "any", "--duration", "60s", "-w", pcap, Filter]);
        await agent.WaitUntilListeningAsync();
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("200k.bin"))).Stdout);
        await Task.Delay(300);
        var exit = await agent.StopAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, exit.ExitCode);
        var manifest = CaptureFiles.Manifest(pcap);
        Assert.Equal("signal", manifest.StopReason);
        Assert.Contains("interrupted by signal", exit.Stdout);
        Assert.True(manifest.PacketsWritten > 100, $"{manifest.PacketsWritten} packets");
        Assert.Equal(manifest.PacketsWritten, (await Capinfos.ReadAsync(pcap)).Packets);
        Assert.Equal(manifest.PacketsWritten, (await Tcpdump.ReadAsync(pcap)).Lines.Count);
        Assert.True(Parse(manifest.End) - Parse(manifest.Start) < TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task SigtermRightAfterTheLastPacketsStillWritesThemAll()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        // --exact-filter: the server's ICMP port unreachables about these datagrams would be kept too (IcmpTrafficTests).
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-i", fixture.Server.Interface, "--duration", "20s", "--exact-filter", "-w", pcap, "udp port 9"]);
        await agent.WaitUntilListeningAsync();
        (await fixture.Client.ExecAsync("bash", "-c", $"for i in 1 2 3 4 5; do echo $i > /dev/udp/{fixture.Server.IPv4}/9; done")).EnsureSuccess();
        var exit = await agent.StopAsync(); // no pause: the packets may still sit in the kernel's ring

        Assert.Equal(0, exit.ExitCode);
        var manifest = CaptureFiles.Manifest(pcap);
        Assert.Equal(5, manifest.PacketsReceived);
        Assert.Equal(5, manifest.PacketsWritten);
        Assert.Equal(5, PcapFile.Read(pcap).Records.Count);
        Assert.Equal("signal", manifest.StopReason);
    }

    [Fact]
    public async Task SigtermAtAnyMomentOfStartUpLeavesAValidPcapOrNothing()
    {
        var outcomes = new List<string>();
        for (var delay = 60; delay <= 300; delay += 20)
        {
            using var files = new CaptureFiles();
            var pcap = files.Pcap();
            await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-i", "lo", "--duration", "20s", "-w", pcap]);
            await Task.Delay(delay);
            agent.Terminate();
            var exit = await agent.WaitForExitAsync(TimeSpan.FromSeconds(10));
            if (files.Names().Length == 0)
            {
                outcomes.Add($"{delay}ms: exit {exit.ExitCode}, nothing created");
                Assert.NotEqual(0, exit.ExitCode); // killed before it began: no file, no success
                continue;
            }

            // It had begun: a whole pcap and its manifest, never an empty or torn file.
            outcomes.Add($"{delay}ms: exit {exit.ExitCode}, {string.Join(' ', files.Names())}");
            Assert.True(exit.ExitCode == 0, string.Join('\n', outcomes) + exit.Stderr);
            Assert.Equal(["capture.pcap", "capture.pcap.json"], files.Names());
            Assert.Equal(CaptureFiles.Manifest(pcap).PacketsWritten, PcapFile.Read(pcap).Records.Count);
            Assert.Equal("signal", CaptureFiles.Manifest(pcap).StopReason);
        }
    }

    [Fact]
    public async Task ManifestDescribesTheCaptureAndItsSha256IsTheFiles()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        var before = DateTime.UtcNow;
        await using var agent = AgentProcess.Start(fixture.Server,
            ["capture", "-i", fixture.Server.Interface, "-s", "200", "-c", "1000", "--duration", "30s", "--max-bytes", "2MiB", "-w", pcap, Filter]);
        await agent.WaitUntilListeningAsync();
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("30k.bin", ipv6: true))).Stdout);
        await Task.Delay(300);
        var exit = await agent.StopAsync();
        var after = DateTime.UtcNow;
        Assert.Equal(0, exit.ExitCode);

        var manifest = CaptureFiles.Manifest(pcap);
        var sha = CaptureFiles.Sha256(pcap);
        Assert.Equal(sha, manifest.Sha256);
        Assert.Equal(sha, (await Capinfos.ReadAsync(pcap)).Sha256);
        Assert.Contains(sha, exit.Stdout);
        Assert.Equal(fixture.Server.Interface, manifest.Interface);
        Assert.Equal("EN10MB", manifest.LinkType);
        Assert.Equal(1u, manifest.LinkTypeValue);
        Assert.Equal(200, manifest.Snaplen);
        Assert.Equal(Filter, manifest.Filter);
        Assert.Equal(1000, manifest.Limits.MaxPackets);
        Assert.Equal("30s", manifest.Limits.Duration);
        Assert.Equal(30, manifest.Limits.DurationSeconds);
        Assert.Equal(2L << 20, manifest.Limits.MaxBytes);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", manifest.Start);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", manifest.End);
        Assert.InRange(Parse(manifest.Start), before.AddSeconds(-1), Parse(manifest.End));
        Assert.InRange(Parse(manifest.End), Parse(manifest.Start), after.AddSeconds(1));
        Assert.Equal(new FileInfo(pcap).Length, manifest.BytesWritten);
        var file = PcapFile.Read(pcap);
        Assert.Equal(manifest.PacketsWritten, file.Records.Count);
        Assert.Equal(200u, file.SnapshotLength);
        Assert.Equal(1u, file.LinkType);
        Assert.True(manifest.PacketsWritten > 20);
        Assert.True(manifest.PacketsReceived >= manifest.PacketsWritten, $"received {manifest.PacketsReceived}, written {manifest.PacketsWritten}");
        Assert.Equal(0, manifest.PacketsDroppedByKernel);
        Assert.Equal(Path.GetFullPath(pcap), manifest.Output);
        Assert.False(string.IsNullOrEmpty(manifest.AgentVersion));
        Assert.Equal(1, manifest.Summary!.HandshakesCompleted);

        // Every record's timestamp lies inside the capture's start and end.
        var start = Parse(manifest.Start);
        var end = Parse(manifest.End);
        Assert.All(file.Records, r =>
            Assert.InRange(DateTime.UnixEpoch.AddSeconds(r.Seconds).AddTicks(r.Microseconds * 10L), start.AddMilliseconds(-5), end));
    }

    private static DateTime Parse(string timestamp) =>
        DateTime.Parse(timestamp, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
}
