using KubeCapture.Agent.Recorder;
using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Agent.Tests.Recorder;

/// <summary>
/// The flight recorder on real traffic between two pods, held to tcpdump capturing the same traffic
/// on the same interface with the same filter: a snapshot holds exactly tcpdump's packets of its
/// window. Every time compared is a packet time (the kernel's, the same in both captures).
/// </summary>
public sealed class FlightRecorderTrafficTests(LabFixture fixture) : IClassFixture<LabFixture>
{
    private const int SigStop = 19;
    private const int SigCont = 18;
    private const string RstFilter = "tcp[tcpflags] & tcp-rst != 0";
    private static readonly string TcpFilter = $"tcp port {LabFixture.HttpPort} or tcp port {LabFixture.ClosedPort}";

    [Fact]
    public async Task ASnapshotByHandHoldsExactlyThePacketsOfItsWindowAcrossTheRingsWrap()
    {
        const int ring = 1 << 20;
        // At most 5,000 datagrams a second of 144-byte records: a 500 ms window is at most 360 KB, well inside
        // the 1 MiB ring, which the stream goes round many times before the snapshot.
        await using var run = await RecordingRun.StartAsync(fixture.Server, "udp port 9",
            "--window", "500ms", "--after", "300ms", "--max-bytes", ring.ToString(System.Globalization.CultureInfo.InvariantCulture), "--duration", "5m");
        using var sender = RecorderTraffic.StartUdp(fixture, 9);
        try
        {
            await run.WaitForTrafficAsync(3 * ring);
            run.RequestSnapshot();
            await run.WaitForSnapshotsAsync(1);
        }
        finally
        {
            sender.Kill();
        }

        var exit = await run.StopAsync();
        Assert.Equal(0, exit.ExitCode);
        var snapshot = Assert.Single(run.Snapshots);
        Assert.Equal("manual", snapshot.Trigger.Kind);
        Assert.Equal("SIGUSR1", snapshot.Trigger.Detail);
        Assert.Equal("after", snapshot.Ended);
        Assert.True(snapshot.Recording.RingWraps >= 2, $"the ring wrapped {snapshot.Recording.RingWraps} times");
        Assert.False(snapshot.WindowCutByMaxBytes);
        Assert.Equal(0, snapshot.PacketsDroppedByKernel);

        var start = RecordingRun.ManifestMicroseconds(snapshot.WindowStart);
        var end = RecordingRun.ManifestMicroseconds(snapshot.WindowEnd);
        Assert.Equal(500_000 + 300_000, end - start);
        var got = await run.AssertHoldsExactlyItsWindowAsync(snapshot);
        Assert.True(got.Count > 100, $"{got.Count} packets in the window");
        Assert.Equal(CaptureFiles.Sha256(snapshot.File), snapshot.Sha256);
        Assert.Equal(new FileInfo(snapshot.File).Length, snapshot.Bytes);
        Assert.Equal(snapshot.ToJsonLine(), (await File.ReadAllTextAsync(snapshot.File + ".json")).TrimEnd('\n'));
    }

    [Fact]
    public async Task AResetStormAfterHealthyTrafficFiresTheFilterTriggerOnceAndTheSnapshotStartsAWindowBeforeTheFirstRst()
    {
        // No --after and no cooldown: only the trigger's own hysteresis can keep a 60-RST storm to one snapshot.
        await using var run = await RecordingRun.StartAsync(fixture.Server, TcpFilter,
            "--window", "2s", "--after", "0s", "--cooldown", "0s", "--max-snapshots", "5", "--duration", "5m",
            "--trigger-filter", RstFilter, "--trigger-count", "20/10s");
        for (var i = 0; i < 8; i++)
        {
            Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("small.txt"))).Stdout);
            await Task.Delay(200);
        }

        (await RecorderTraffic.RefuseAsync(fixture, 60)).EnsureSuccess();
        var snapshot = (await run.WaitForSnapshotsAsync(1))[0];
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("small.txt"))).Stdout); // traffic after it: the recorder goes on
        var exit = await run.StopAsync();
        Assert.Equal(0, exit.ExitCode);

        Assert.Single(run.Snapshots);
        Assert.DoesNotContain("not taken:", exit.Stderr, StringComparison.Ordinal);
        Assert.Equal("filter", snapshot.Trigger.Kind);
        Assert.Equal($"filter '{RstFilter}' matched 20 times within 10s", snapshot.Trigger.Detail);
        var resets = await RecordingRun.PacketsAsync(run.TcpdumpPath, "tcp.flags.reset == 1");
        Assert.Equal(60, resets.Count);

        var got = await run.AssertHoldsExactlyItsWindowAsync(snapshot);
        var snapshotResets = await RecordingRun.PacketsAsync(snapshot.File, "tcp.flags.reset == 1");
        Assert.Equal(resets.Take(20).Select(r => r.Key), snapshotResets.Select(r => r.Key)); // the storm's first 20: it ends at the one that crossed the threshold
        var firstRst = snapshotResets[0].Time;
        Assert.Equal(firstRst, RecordingRun.ManifestMicroseconds(snapshot.Trigger.EventStart));
        Assert.Equal(snapshotResets[19].Time, RecordingRun.ManifestMicroseconds(snapshot.Trigger.Time));
        Assert.Equal(firstRst - 2_000_000, RecordingRun.ManifestMicroseconds(snapshot.WindowStart)); // a window before the first RST
        Assert.Contains(got, p => p.Time < firstRst && p.Key.Contains($"|{LabFixture.HttpPort}|", StringComparison.Ordinal)); // the healthy traffic before the storm
        Assert.Contains(snapshot.Findings, f => f.Type == FindingTypes.ConnectionRefused && f.Evidence.Connections == 20);
    }

    [Fact]
    public async Task ASecondStormWithinTheCooldownGivesNoSecondSnapshot()
    {
        // At least a period (1 s) without RSTs between the storms: the trigger re-arms, only the cooldown holds it.
        var (run, first) = await TwoStormsAsync("2m", TimeSpan.FromMilliseconds(1500));
        await using var _ = run;
        await WaitForStderrAsync(run, "not taken: in the cooldown");
        var exit = await run.StopAsync();

        Assert.Equal(0, exit.ExitCode);
        Assert.Single(run.Snapshots);
        var resets = await RecordingRun.PacketsAsync(run.TcpdumpPath, "tcp.flags.reset == 1");
        Assert.Equal(60, resets.Count);
        var secondStorm = resets[30].Time;
        Assert.True(secondStorm - RecordingRun.ManifestMicroseconds(first.WindowEnd) is > 1_000_000 and < 120_000_000);
        Assert.Single(exit.StderrLines, l => l.Contains($"trigger filter ({first.Trigger.Detail}) at ", StringComparison.Ordinal) && l.EndsWith(
            $"not taken: in the cooldown until {FlightRecorder.Timestamp(RecordingRun.ManifestMicroseconds(first.WindowEnd) + 120_000_000)}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AStormAfterTheCooldownGivesASecondSnapshot()
    {
        var (run, first) = await TwoStormsAsync("1s", TimeSpan.FromMilliseconds(2500), "--max-snapshots", "2"); // longer than the cooldown, in packet time too
        await using var _ = run;
        var snapshots = await run.WaitForSnapshotsAsync(2);
        var exit = await run.WaitForEndAsync(); // the last snapshot allowed ends the recording

        Assert.Equal(0, exit.ExitCode);
        Assert.Contains("recording ended (--max-snapshots 2 taken)", exit.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, snapshots.Count);
        var resets = await RecordingRun.PacketsAsync(run.TcpdumpPath, "tcp.flags.reset == 1");
        Assert.Equal(60, resets.Count);
        await run.AssertHoldsExactlyItsWindowAsync(first);
        await run.AssertHoldsExactlyItsWindowAsync(snapshots[1]);
        var secondResets = await RecordingRun.PacketsAsync(snapshots[1].File, "tcp.flags.reset == 1");
        Assert.Equal(resets.Skip(30).Take(20).Select(r => r.Key), secondResets.Select(r => r.Key)); // the second storm's first 20
        Assert.Equal(secondResets[0].Time, RecordingRun.ManifestMicroseconds(snapshots[1].Trigger.EventStart));
        Assert.True(secondResets[0].Time >= RecordingRun.ManifestMicroseconds(first.WindowEnd) + 1_000_000, "the second snapshot came within the cooldown");
    }

    [Fact]
    public async Task TheFindingTriggerFiresWhenRefusalsPassItsRateAndNotBefore()
    {
        await using var run = await RecordingRun.StartAsync(fixture.Server, TcpFilter,
            "--window", "20s", "--after", "0s", "--duration", "5m", "--trigger-finding", "ConnectionRefused>5/1m");
        (await RecorderTraffic.RefuseAsync(fixture, 3)).EnsureSuccess();
        await Task.Delay(2500); // the summary is read about once a second: three readings with 3 refusals
        Assert.Empty(run.Snapshots);
        (await RecorderTraffic.RefuseAsync(fixture, 4)).EnsureSuccess();
        var snapshot = (await run.WaitForSnapshotsAsync(1))[0];
        var exit = await run.StopAsync();

        Assert.Equal(0, exit.ExitCode);
        Assert.Equal("finding", snapshot.Trigger.Kind);
        Assert.Equal("ConnectionRefused>5/1m", snapshot.Trigger.Detail);
        var got = await run.AssertHoldsExactlyItsWindowAsync(snapshot);
        var resets = await RecordingRun.PacketsAsync(snapshot.File, "tcp.flags.reset == 1");
        Assert.Equal(7, resets.Count);
        Assert.True(RecordingRun.ManifestMicroseconds(snapshot.Trigger.Time) >= resets[5].Time, "fired before the sixth refusal");
        var refused = Assert.Single(snapshot.Findings, f => f.Type == FindingTypes.ConnectionRefused);
        Assert.Equal(7, refused.Evidence.Connections);
        Assert.Equal(14, got.Count); // 7 SYNs, 7 RSTs: all of them
    }

    [Fact]
    public async Task ARingSmallerThanTheWindowsTrafficKeepsTheNewestWholeRecords()
    {
        const int ring = 64 << 10;
        const int record = 16 + 128; // a record header and the snaplen
        await using var run = await RecordingRun.StartAsync(fixture.Server, "udp port 9 or udp port 10",
            "--window", "1m", "--after", "0s", "--max-bytes", ring.ToString(System.Globalization.CultureInfo.InvariantCulture), "--duration", "5m",
            "--trigger-filter", "udp port 10", "--trigger-count", "1/1s");
        (await RecorderTraffic.UdpAsync(fixture, 9, 3000, triggerPort: 10)).EnsureSuccess();
        var snapshot = (await run.WaitForSnapshotsAsync(1))[0];
        var exit = await run.StopAsync();

        Assert.Equal(0, exit.ExitCode);
        Assert.True(snapshot.WindowCutByMaxBytes);
        var all = await RecordingRun.PacketsAsync(run.TcpdumpPath);
        Assert.Equal(3001, all.Count);
        var got = await run.AssertHoldsExactlyItsWindowAsync(snapshot, cutAtStart: true);
        Assert.Equal(all.TakeLast(got.Count).Select(p => p.Key), got.Select(p => p.Key)); // the newest, to the trigger's datagram
        Assert.True(RecordingRun.ManifestMicroseconds(snapshot.FirstPacket!) > RecordingRun.ManifestMicroseconds(snapshot.WindowStart) + 10_000);
        var held = snapshot.Bytes - 24;
        Assert.InRange(held, ring - (2 * record) + 1, ring); // whole records: at most one record's room lost at the wrap, one at the end
    }

    [Fact]
    public async Task PacketsAfterTheTriggerPastTheRingsSizeEndTheSnapshotThereWithEveryPacketBeforeTheCut()
    {
        const int ring = 64 << 10;
        const int record = 16 + 128; // a record header and the snaplen: each datagram is cut to 128 bytes
        await using var run = await RecordingRun.StartAsync(fixture.Server, "udp port 9 or udp port 10",
            "--window", "1m", "--after", "5m", "--max-bytes", ring.ToString(System.Globalization.CultureInfo.InvariantCulture), "--duration", "10m",
            "--trigger-filter", "udp port 10", "--trigger-count", "1/1s");
        (await RecorderTraffic.UdpAsync(fixture, 10, 1)).EnsureSuccess(); // the trigger, then twice the ring's worth
        (await RecorderTraffic.UdpAsync(fixture, 9, 2 * ring / record)).EnsureSuccess();
        var snapshot = (await run.WaitForSnapshotsAsync(1))[0]; // long before its 5 minutes after
        var exit = await run.StopAsync();

        Assert.Equal(0, exit.ExitCode);
        Assert.Equal("max-bytes", snapshot.Ended);
        Assert.False(snapshot.WindowCutByMaxBytes);
        var limit = KubeCapture.Contracts.Recorder.RecorderLimits.SnapshotMaxBytes(ring);
        Assert.InRange(snapshot.Bytes, limit - record + 1, limit); // the next record would not have fit
        Assert.Equal(snapshot.Bytes, new FileInfo(snapshot.File).Length);
        Assert.Equal(snapshot.Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(snapshot.File))));
        var all = await RecordingRun.PacketsAsync(run.TcpdumpPath);
        var got = await RecordingRun.PacketsAsync(snapshot.File);
        Assert.Equal(snapshot.Packets, got.Count);
        Assert.Equal(all.Take(got.Count).Select(p => p.Key), got.Select(p => p.Key)); // from the trigger's datagram on, no gap, to the cut
        Assert.True(all.Count > got.Count, $"tcpdump saw {all.Count} packets, the snapshot holds {got.Count}");
    }

    [Fact]
    public async Task SigtermWhileASnapshotIsOpenFinishesItWithEveryPacketSoFarAndExitsZero()
    {
        await using var run = await RecordingRun.StartAsync(fixture.Server, "udp port 9 or udp port 10",
            "--window", "1m", "--after", "5m", "--duration", "10m", "--trigger-filter", "udp port 10", "--trigger-count", "1/1s");
        (await RecorderTraffic.UdpAsync(fixture, 9, 200, triggerPort: 10)).EnsureSuccess();
        (await RecorderTraffic.UdpAsync(fixture, 9, 300)).EnsureSuccess(); // after the trigger, within its 5 minutes
        await run.WaitForTrafficAsync(24 + (500 * (16 + 128)) + 16 + 1); // tcpdump (-s 128) has the 500 datagrams and the trigger
        var exit = await run.StopAsync();

        Assert.Equal(0, exit.ExitCode);
        var snapshot = Assert.Single(run.Snapshots);
        Assert.Equal("stopped", snapshot.Ended);
        Assert.Null(snapshot.Error);
        var got = await run.AssertHoldsExactlyItsWindowAsync(snapshot);
        Assert.Equal(501, got.Count); // the 200 before, the trigger, the 300 after: every one tcpdump saw
    }

    [Fact]
    public async Task PacketsTheKernelDroppedInTheWindowAreCountedInTheSnapshot()
    {
        const int sent = 5000;
        // A 64 KiB kernel buffer, and the agent frozen (SIGSTOP) while a burst arrives: the kernel drops.
        await using var run = await RecordingRun.StartAsync(fixture.Server, "udp port 9", "-B", "64", "--window", "30s", "--after", "0s", "--duration", "5m");
        HostCommand.Signal(run.Agent.Pid, SigStop);
        try
        {
            (await RecorderTraffic.UdpBurstAsync(fixture, sent)).EnsureSuccess();
        }
        finally
        {
            HostCommand.Signal(run.Agent.Pid, SigCont);
        }

        await Task.Delay(500);
        run.RequestSnapshot();
        var snapshot = (await run.WaitForSnapshotsAsync(1))[0];
        var exit = await run.StopAsync();

        Assert.Equal(0, exit.ExitCode);
        Assert.True(snapshot.PacketsDroppedByKernel > 0, $"dropped {snapshot.PacketsDroppedByKernel}, kept {snapshot.Packets}");
        Assert.InRange(snapshot.Packets + snapshot.PacketsDroppedByKernel, snapshot.Packets + 1, sent); // every datagram kept or counted, none twice
        Assert.Contains($"{snapshot.Packets} packets seen, {snapshot.PacketsDroppedByKernel} dropped by the kernel", exit.Stderr, StringComparison.Ordinal);
    }

    /// <summary>A recording with a 20-RSTs-in-1s trigger and the given cooldown: 30 refusals, its snapshot, a pause, 30 more.</summary>
    private async Task<(RecordingRun Run, SnapshotManifest First)> TwoStormsAsync(string cooldown, TimeSpan pause, params string[] options)
    {
        var run = await RecordingRun.StartAsync(fixture.Server, TcpFilter,
            ["--window", "1s", "--after", "0s", "--cooldown", cooldown, "--duration", "5m", "--trigger-filter", RstFilter, "--trigger-count", "20/1s", .. options]);
        (await RecorderTraffic.RefuseAsync(fixture, 30)).EnsureSuccess();
        var first = (await run.WaitForSnapshotsAsync(1))[0];
        await Task.Delay(pause);
        (await RecorderTraffic.RefuseAsync(fixture, 30)).EnsureSuccess();
        return (run, first);
    }

    private static async Task WaitForStderrAsync(RecordingRun run, string text)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (!run.Agent.Stderr.Contains(text, StringComparison.Ordinal))
        {
            if (waited.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"the agent never said '{text}': {run.Agent.Stderr}");
            }

            await Task.Delay(100);
        }
    }
}
