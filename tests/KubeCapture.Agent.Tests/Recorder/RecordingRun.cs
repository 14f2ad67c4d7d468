using System.Diagnostics;
using System.Globalization;
using KubeCapture.Agent.Recorder;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Agent.Tests.Recorder;

/// <summary>
/// One recording in the lab's server pod: the agent's <c>record</c> and, beside it on the same
/// interface with the same filter, tcpdump writing everything to a file (the ground truth a snapshot
/// is held to). Snapshots are read from the agent's JSON lines; packets are compared by their tshark
/// fields, times in microseconds since the epoch as both captures stamp them (the kernel's).
/// </summary>
internal sealed class RecordingRun : IAsyncDisposable
{
    /// <summary>
    /// What identifies a packet in both captures: its source, IP id, TCP port, sequence and acknowledgement numbers
    /// and flags, the first bytes of its payload. Not its time: each capture socket stamps a packet the
    /// kernel did not stamp itself (veth) with its own reading of the clock, a microsecond or two apart.
    /// </summary>
    public static readonly string[] Fields = ["frame.time_epoch", "ip.src", "ip.id", "tcp.srcport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "data.data"];

    /// <summary>How far apart two capture sockets may stamp the same packet (see <see cref="Fields"/>): measured at 1 µs here.</summary>
    public const long ClockSkewMicroseconds = 1000;

    private const int SigUsr1 = 10;
    private readonly CaptureFiles _files;
    private readonly TcpdumpCapture _tcpdump;

    private RecordingRun(CaptureFiles files, TcpdumpCapture tcpdump, AgentProcess agent)
    {
        _files = files;
        _tcpdump = tcpdump;
        Agent = agent;
    }

    public AgentProcess Agent { get; }

    public string TcpdumpPath => _tcpdump.Path;

    public static async Task<RecordingRun> StartAsync(NetnsPod pod, string filter, params string[] recordOptions)
    {
        var files = new CaptureFiles();
        var snapshots = Path.Combine(files.Directory, "snapshots");
        Directory.CreateDirectory(snapshots);
        var tcpdump = await TcpdumpCapture.StartAsync(pod, pod.Interface, files.Pcap("tcpdump.pcap"), filter);
        var agent = AgentProcess.Start(pod, ["record", "-i", pod.Interface, "--exact-filter", "--snapshot-dir", snapshots, .. recordOptions, filter]);
        await agent.WaitUntilListeningAsync();
        return new RecordingRun(files, tcpdump, agent);
    }

    /// <summary>The snapshots the agent has printed so far, one JSON line each.</summary>
    public IReadOnlyList<SnapshotManifest> Snapshots =>
        [.. Agent.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(SnapshotManifest.FromJson)];

    public void RequestSnapshot() => HostCommand.Signal(Agent.Pid, SigUsr1);

    /// <summary>Waits until the agent has printed <paramref name="count"/> snapshots (it prints one when it is finished).</summary>
    public async Task<IReadOnlyList<SnapshotManifest>> WaitForSnapshotsAsync(int count)
    {
        var deadline = Stopwatch.StartNew();
        while (Snapshots.Count < count)
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"{Snapshots.Count} of {count} snapshots after 60 s: {Agent.Stderr}");
            }

            await Task.Delay(100);
        }

        return Snapshots;
    }

    /// <summary>Waits until tcpdump's file holds at least <paramref name="bytes"/> bytes: that much traffic went by.</summary>
    public async Task WaitForTrafficAsync(long bytes)
    {
        var deadline = Stopwatch.StartNew();
        while (!File.Exists(TcpdumpPath) || new FileInfo(TcpdumpPath).Length < bytes)
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(120))
            {
                throw new TimeoutException($"tcpdump's file did not reach {bytes} bytes in 120 s");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>Stops the agent (SIGTERM) and tcpdump; returns how the agent ended.</summary>
    public async Task<AgentExit> StopAsync()
    {
        var exit = await Agent.StopAsync();
        await _tcpdump.StopAsync();
        return exit;
    }

    /// <summary>Waits for the agent to end by itself, then stops tcpdump; returns how the agent ended.</summary>
    public async Task<AgentExit> WaitForEndAsync()
    {
        var exit = await Agent.WaitForExitAsync(TimeSpan.FromSeconds(60));
        await _tcpdump.StopAsync();
        return exit;
    }

    /// <summary>The packets of a pcap as tshark reads them, with their time in microseconds.</summary>
    public static async Task<IReadOnlyList<(long Time, string Key)>> PacketsAsync(string pcap, string? displayFilter = null) =>
        [.. (await Tshark.FieldsAsync(pcap, Fields, displayFilter)).Select(f => (Microseconds(f[0]), string.Join('|', f.Skip(1))))];

    /// <summary>
    /// Holds a snapshot to tcpdump's capture: its packets are a run of tcpdump's, in the same order, with no
    /// gap and no duplicate; every one within the window by the agent's time; and tcpdump's packets just
    /// before and just after the run fall outside the window (by tcpdump's time, to the clock skew), so
    /// nothing of the window is missing at either end. With <paramref name="cutAtStart"/> (the ring was too
    /// small) the packet before may be inside the window. Returns the snapshot's packets.
    /// </summary>
    public async Task<IReadOnlyList<(long Time, string Key)>> AssertHoldsExactlyItsWindowAsync(SnapshotManifest snapshot, bool cutAtStart = false)
    {
        var all = await PacketsAsync(TcpdumpPath);
        var got = await PacketsAsync(snapshot.File);
        var start = ManifestMicroseconds(snapshot.WindowStart);
        var end = ManifestMicroseconds(snapshot.WindowEnd);
        Assert.NotEmpty(got);
        Assert.Equal(all.Count, all.Select(p => p.Key).Distinct().Count()); // the keys identify packets
        var first = all.ToList().FindIndex(p => p.Key == got[0].Key);
        Assert.True(first >= 0, $"the snapshot's first packet {got[0].Key} is not in tcpdump's capture");
        Assert.Equal(all.Skip(first).Take(got.Count).Select(p => p.Key), got.Select(p => p.Key));
        Assert.All(got, p => Assert.InRange(p.Time, start, end));
        if (first > 0 && !cutAtStart)
        {
            Assert.True(all[first - 1].Time < start + ClockSkewMicroseconds, $"tcpdump's packet before the snapshot, at {all[first - 1].Time}, is inside the window from {start}");
        }

        var next = first + got.Count;
        if (next < all.Count)
        {
            Assert.True(all[next].Time > end - ClockSkewMicroseconds, $"tcpdump's packet after the snapshot, at {all[next].Time}, is inside the window to {end}");
        }

        Assert.Equal(snapshot.Packets, got.Count);
        Assert.Equal(ManifestMicroseconds(snapshot.FirstPacket!), got[0].Time);
        Assert.Equal(ManifestMicroseconds(snapshot.LastPacket!), got[^1].Time);
        return got;
    }

    /// <summary>"1765017000.123456000" (tshark) to microseconds since the epoch.</summary>
    public static long Microseconds(string epoch)
    {
        var dot = epoch.IndexOf('.', StringComparison.Ordinal);
        var fraction = (epoch[(dot + 1)..] + "000000")[..6];
        return (long.Parse(epoch[..dot], CultureInfo.InvariantCulture) * 1_000_000) + long.Parse(fraction, CultureInfo.InvariantCulture);
    }

    /// <summary>A manifest's UTC time (2026-12-06T10:48:58.848955Z) to microseconds since the epoch.</summary>
    public static long Microseconds(DateTimeOffset time) => (time.UtcTicks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    public static long ManifestMicroseconds(string time) =>
        Microseconds(DateTimeOffset.ParseExact(time, "yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal));

    public async ValueTask DisposeAsync()
    {
        await Agent.DisposeAsync();
        _tcpdump.Dispose();
        _files.Dispose();
    }
}

/// <summary>Traffic from the lab's client pod, as python scripts.</summary>
internal static class RecorderTraffic
{
    /// <summary>
    /// UDP datagrams to HOST:PORT, each numbered in its first 4 bytes, 10 at a time then a 2 ms sleep
    /// (at most 5,000 a second whatever the machine's speed), COUNT of them; then one datagram to
    /// TRIGGER_PORT when given.
    /// </summary>
    public const string PacedUdp = """
        import socket, struct, sys, time
        host, port, count, trigger = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(count):
            s.sendto(struct.pack('!I', i) + b'x' * 96, (host, port))
            if i % 10 == 9:
                time.sleep(0.002)
        if trigger:
            s.sendto(b'trigger', (host, trigger))
        """;

    /// <summary>COUNT connections to HOST:PORT where nothing listens: each SYN answered by a RST.</summary>
    public const string Refusals = """
        import socket, sys
        host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        for _ in range(count):
            s = socket.socket()
            try:
                s.connect((host, port))
            except OSError:
                pass
            s.close()
        """;

    public static Task<CommandResult> RefuseAsync(LabFixture lab, int count) =>
        lab.Client.ExecAsync("python3", "-c", Refusals, lab.Server.IPv4.ToString(), LabFixture.ClosedPort.ToString(CultureInfo.InvariantCulture), count.ToString(CultureInfo.InvariantCulture));

    public static Task<CommandResult> UdpAsync(LabFixture lab, int port, int count, int triggerPort = 0) =>
        lab.Client.ExecAsync(["python3", "-c", PacedUdp, lab.Server.IPv4.ToString(), port.ToString(CultureInfo.InvariantCulture), count.ToString(CultureInfo.InvariantCulture), triggerPort.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(5));

    /// <summary>COUNT datagrams of 200 bytes to port 9 as fast as the client can send them.</summary>
    public static Task<CommandResult> UdpBurstAsync(LabFixture lab, int count) =>
        lab.Client.ExecAsync("python3", "-c", $"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range({count}): s.sendto(b'x' * 200, ('{lab.Server.IPv4}', 9))");

    /// <summary>Starts an endless paced UDP stream; the caller kills it.</summary>
    public static Process StartUdp(LabFixture lab, int port) =>
        lab.Client.Start(["python3", "-c", PacedUdp, lab.Server.IPv4.ToString(), port.ToString(CultureInfo.InvariantCulture), "1000000000", "0"]);
}
