using System.Text.Json;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>
/// One test per pattern a tcpdump user diagnoses by hand, made with real traffic between two pods
/// (nftables in the client pod plays the broken network) and captured by the agent in the server
/// pod: the agent's TCP summary must name each pattern correctly.
/// </summary>
public sealed class TcpSummaryTrafficTests : IAsyncLifetime
{
    private const int Port = 8000;
    private const int ClosedPort = 8001;
    private NetnsLab _lab = null!;
    private HttpFileServer _http = null!;
    private readonly CaptureFiles _files = new();

    private NetnsPod Server => _lab.Server;

    private NetnsPod Client => _lab.Client;

    public async Task InitializeAsync()
    {
        _lab = await NetnsLab.CreateAsync("kcAT");
        _http = await _lab.Server.StartHttpServerAsync(Port, new Dictionary<string, int> { ["small.txt"] = 1000, ["30k.bin"] = 30_000 });
    }

    public async Task DisposeAsync()
    {
        await _http.DisposeAsync();
        await _lab.DisposeAsync();
        _files.Dispose();
    }

    [Fact]
    public async Task CompletedHandshakeIsReportedCompletedWithNothingWrong()
    {
        var (summary, _) = await CaptureAsync(async () =>
        {
            Assert.Equal("200", (await Client.CurlAsync(_http.Url("small.txt"))).Stdout);
            Assert.Equal("200", (await Client.CurlAsync(_http.Url("small.txt", ipv6: true))).Stdout);
        });

        Assert.Equal(2, summary.Connections);
        Assert.Equal(2, summary.Syns);
        Assert.Equal(2, summary.SynAcks);
        Assert.Equal(2, summary.HandshakesCompleted);
        Assert.Equal(0, summary.HandshakesWithoutFinalAck);
        Assert.Equal(0, summary.SynsUnanswered);
        Assert.Equal(0, summary.Refused);
        Assert.Equal(0, summary.Retransmissions);
        Assert.Equal(0, summary.HandshakeRetransmissions);
        Assert.Equal(new ResetCounts(), summary.ResetsFromClient);
        Assert.Equal(new ResetCounts(), summary.ResetsFromServer);
        Assert.Null(summary.SmallestUnacknowledgedRetransmittedSegment);
        Assert.Equal(1000, summary.LargestAcknowledgedSegment);
        Assert.Empty(summary.BesideLatency());
        Assert.Equal("2 connections, every handshake completed and all data acknowledged; no refusals, resets, retransmissions or stalls.", HumanReport.AllClear(summary));
    }

    [Fact]
    public async Task SynAnsweredByResetIsReportedAsRefused()
    {
        var (summary, _) = await CaptureAsync(async () =>
        {
            Assert.Equal(7, (await Client.CurlAsync($"http://{Server.UrlHost(false)}:{ClosedPort}/")).ExitCode);
            Assert.Equal(7, (await Client.CurlAsync($"http://{Server.UrlHost(true)}:{ClosedPort}/")).ExitCode);
        });

        Assert.Equal(2, summary.Connections);
        Assert.Equal(2, summary.Refused);
        Assert.Equal(2, summary.Syns);
        Assert.Equal(0, summary.SynAcks);
        Assert.Equal(0, summary.HandshakesCompleted);
        Assert.Equal(0, summary.SynsUnanswered);
        Assert.Equal(new ResetCounts { WithAck = 2 }, summary.ResetsFromServer);
        Assert.Equal(new ResetCounts(), summary.ResetsFromClient);
        Assert.Contains(summary.Findings, f => f.Type == FindingTypes.ConnectionRefused && f.Message.Contains($"{Server.IPv4}:{ClosedPort} refused", StringComparison.Ordinal));
        Assert.Contains(summary.Findings, f => f.Type == FindingTypes.ConnectionRefused && f.Message.Contains($"[{Server.IPv6}]:{ClosedPort} refused", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SynAckWhoseFinalAckIsLostIsReportedAsHandshakeWithoutFinalAck()
    {
        // The client pod lets only its SYNs out: the SYN-ACK arrives, the final ACK never leaves.
        await Client.AddNftablesAsync($$"""
            table inet kcat {
              chain out { type filter hook output priority 0; tcp dport {{Port}} tcp flags != syn drop; }
            }
            """);
        var (summary, pcap) = await CaptureAsync(async () =>
            Assert.Equal(28, (await Client.CurlAsync(_http.Url("small.txt"), TimeSpan.FromSeconds(1.5))).ExitCode));

        var dump = await Tcpdump.ReadAsync(pcap);
        Assert.DoesNotContain(dump.Tcp, l => l.DestinationPort == Port && l.Flags != "S"); // ground truth: no ACK arrived
        Assert.Contains(dump.Tcp, l => l.SourcePort == Port && l.Flags == "S.");
        Assert.Equal(1, summary.Connections);
        Assert.Equal(1, summary.HandshakesWithoutFinalAck);
        Assert.Equal(0, summary.HandshakesCompleted);
        Assert.Equal(0, summary.Refused);
        Assert.Equal(0, summary.SynsUnanswered);
        Assert.Equal(1, summary.Syns);
        Assert.Equal(dump.Tcp.Count(l => l.Flags == "S."), summary.SynAcks);
        Assert.Equal(summary.SynAcks - 1, summary.HandshakeRetransmissions);
        Assert.Contains(summary.Findings, f => f.Type == FindingTypes.HandshakeIncomplete &&
            f.Message.StartsWith($"1 handshake with {Server.IPv4}:{Port} never completed", StringComparison.Ordinal) && f.Message.Contains("final ACK", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SynDroppedSilentlyIsReportedAsUnanswered()
    {
        // The server pod's firewall drops SYNs after the capture point (taps see packets before netfilter).
        await Server.AddNftablesAsync($$"""
            table inet kcat {
              chain in { type filter hook prerouting priority -300; tcp dport {{Port}} tcp flags syn drop; }
            }
            """);
        var (summary, pcap) = await CaptureAsync(async () =>
            Assert.Equal(28, (await Client.CurlAsync(_http.Url("small.txt", ipv6: true), TimeSpan.FromSeconds(1.5))).ExitCode));

        var syns = (await Tcpdump.ReadAsync(pcap)).Tcp.Count(l => l.Flags == "S");
        Assert.True(syns >= 2, $"{syns} SYNs"); // the first and its retransmission after 1 s
        Assert.Equal(1, summary.Connections);
        Assert.Equal(1, summary.SynsUnanswered);
        Assert.Equal(syns, summary.Syns);
        Assert.Equal(syns - 1, summary.HandshakeRetransmissions);
        Assert.Equal(0, summary.SynAcks);
        Assert.Equal(0, summary.Refused);
        // Captured at the server: the SYNs reached this host, and this host did not answer them.
        Assert.Contains(summary.Findings, f => f.Type == FindingTypes.SynUnanswered &&
            f.Message.StartsWith($"1 connection attempt to [{Server.IPv6}]:{Port}", StringComparison.Ordinal) && f.Message.Contains($"reached this host ({syns} SYNs) and none was answered", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DataSegmentLostOnceIsReportedAsOneRetransmission()
    {
        // The client pod drops the server's first full-size data segment, exactly once: the quota
        // lets the rule match while under 2000 bytes, and one ~1500-byte packet uses it up.
        await Client.AddNftablesAsync($$"""
            table inet kcat {
              chain pre { type filter hook prerouting priority -300; tcp sport {{Port}} meta length > 1000 quota until 2000 bytes counter drop; }
            }
            """);
        var (summary, pcap) = await CaptureAsync(async () =>
            Assert.Equal("200", (await Client.CurlAsync(_http.Url("30k.bin"))).Stdout));

        var dropped = (await Client.ExecAsync("nft", "list", "ruleset")).EnsureSuccess().Stdout;
        Assert.Contains("counter packets 1 ", dropped);
        var dump = (await Tcpdump.ReadAsync(pcap)).Tcp;
        var firstData = dump.First(l => l.SourcePort == Port && l.Length == 1448);
        Assert.Equal(2, dump.Count(l => l.SourcePort == Port && l.Sequence == firstData.Sequence && l.Length == 1448)); // ground truth: sent twice

        // Wireshark's count of retransmissions is the agent's (normally exactly the one dropped segment).
        var tshark = await Tshark.FieldsAsync(pcap, ["tcp.seq"], "tcp.len > 0 && (tcp.analysis.retransmission || tcp.analysis.fast_retransmission)");
        Assert.NotEmpty(tshark);
        Assert.Equal(tshark.Count, summary.Retransmissions);
        Assert.Equal(0, summary.HandshakeRetransmissions);
        Assert.Equal(1, summary.HandshakesCompleted);
        Assert.Equal(1448, summary.LargestAcknowledgedSegment);
        Assert.Null(summary.SmallestUnacknowledgedRetransmittedSegment); // it got through the second time
        var finding = Assert.Single(summary.BesideLatency());
        Assert.Equal(FindingTypes.Retransmissions, finding.Type);
        // Captured at the sender: it sent the segment again, and cannot tell whether the first copy was lost (it was, after the capture point) or late.
        Assert.StartsWith($"{summary.Retransmissions} segment on {Server.IPv4}:{Port} -> {Client.IPv4}:", finding.Message);
        Assert.Contains(" sent again: this end cannot tell whether the first copy was lost or only late: a capture at ", finding.Message);
    }

    [Fact]
    public async Task ReceiverThatStopsReadingAdvertisesZeroWindowsAndItsAbortIsAResetFromTheClient()
    {
        // A client with a 4 KiB receive buffer asks for 30 kB, never reads, then closes with data
        // unread: the kernel answers with [R.] from the client.
        var client = $$"""
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(('{{Server.IPv4}}', {{Port}}))
            s.sendall(b'GET /30k.bin HTTP/1.0\r\n\r\n')
            time.sleep(1.2)
            s.close()
            """;
        var (summary, pcap) = await CaptureAsync(async () => (await Client.ExecAsync("python3", "-c", client)).EnsureSuccess());

        var zeroWindows = await Tshark.FieldsAsync(pcap, ["frame.number"], "tcp.window_size_value == 0 && tcp.flags.syn == 0 && tcp.flags.reset == 0");
        Assert.NotEmpty(zeroWindows);
        Assert.Equal(zeroWindows.Count, summary.ZeroWindowAdvertisements);
        var resets = (await Tcpdump.ReadAsync(pcap)).Tcp.Where(l => l.Flags.Contains('R', StringComparison.Ordinal)).ToList();
        var reset = Assert.Single(resets);
        Assert.Equal(("R.", Client.IPv4.ToString()), (reset.Flags, reset.Source));
        Assert.Equal(new ResetCounts { WithAck = 1 }, summary.ResetsFromClient);
        Assert.Equal(new ResetCounts(), summary.ResetsFromServer);
        Assert.Equal(1, summary.HandshakesCompleted);
        Assert.Contains(summary.Findings, f => f.Type == FindingTypes.ResetByEndpoint && f.Message.StartsWith($"1 connection {Client.IPv4}:{reset.SourcePort} -> {Server.IPv4}:{Port} reset by the client with [R.]", StringComparison.Ordinal));
        // The end that stopped reading is named, with how long its window stayed closed.
        var zeroWindow = Assert.Single(summary.Findings, f => f.Type == FindingTypes.ZeroWindow);
        Assert.StartsWith($"{Client.IPv4}:{reset.SourcePort} stopped reading: it closed its receive window to {Server.IPv4}:{Port} once, ", zeroWindow.Message);
        Assert.Contains("still closed when the capture ended", zeroWindow.Message);
        Assert.Contains(zeroWindows.Select(z => long.Parse(z[0], System.Globalization.CultureInfo.InvariantCulture)).First(), zeroWindow.Evidence.PacketNumbers);
        Assert.DoesNotContain(summary.Findings, f => f.Type == FindingTypes.Retransmissions); // whatever was sent again waited for the window
    }

    [Theory]
    [InlineData(false, false, 1448)]
    [InlineData(true, false, 1428)]
    [InlineData(false, true, 1448)]
    [InlineData(true, true, 1428)]
    public async Task LargeSegmentsLostWhileSmallOnesGetThroughIsReportedAsAnMtuBlackhole(bool ipv6, bool smallerMtu, int fullSegment)
    {
        // A hop that silently drops packets over 1000 (or 1280) bytes and sends no ICMP back: the server's
        // small segments (the response headers) are acknowledged, its full-size ones retransmitted
        // and never acknowledged.
        if (smallerMtu)
        {
            // The far end's link has an MTU of 1280 (the veth drops larger frames without a word),
            // yet the client advertises the MSS of a 1500-byte link, as a broken MSS clamp would.
            await Client.SetMtuAsync(1280);
            await Client.AdvertiseMssAsync(1460);
        }
        else
        {
            await Client.AddNftablesAsync("""
                table inet kcat {
                  chain pre { type filter hook prerouting priority -300; meta length > 1000 drop; }
                }
                """);
        }

        var (summary, pcap) = await CaptureAsync(async () =>
            Assert.Equal(28, (await Client.CurlAsync(_http.Url("30k.bin", ipv6), TimeSpan.FromSeconds(2))).ExitCode));

        var fromServer = (await Tcpdump.ReadAsync(pcap)).Tcp.Where(l => l.SourcePort == Port && l.Length > 0).ToList();
        var headers = fromServer.First();
        Assert.True(headers.Length < 1000, headers.Text);
        Assert.Equal(headers.Length, summary.LargestAcknowledgedSegment);
        Assert.Equal(fullSegment, summary.SmallestUnacknowledgedRetransmittedSegment);
        Assert.True(summary.LargestAcknowledgedSegment < summary.SmallestUnacknowledgedRetransmittedSegment);
        Assert.True(summary.Retransmissions >= 2, $"{summary.Retransmissions} retransmissions");
        Assert.Equal(1, summary.HandshakesCompleted);
        var server = ipv6 ? $"[{Server.IPv6}]:{Port}" : $"{Server.IPv4}:{Port}";
        Assert.Contains(summary.Findings, f => f.Type == FindingTypes.MtuBlackhole &&
            f.Message.StartsWith($"MTU blackhole suspected on {server} -> ", StringComparison.Ordinal) &&
            f.Message.Contains($"segments up to {headers.Length} bytes were acknowledged, segments of {fullSegment} bytes were retransmitted and never acknowledged", StringComparison.Ordinal));
    }

    private async Task<(TcpSummaryReport Summary, string Pcap)> CaptureAsync(Func<Task> traffic)
    {
        var pcap = _files.Pcap();
        await using var agent = AgentProcess.Start(Server, ["capture", "-i", Server.Interface, "--json", "--duration", "30s", "-w", pcap, $"tcp port {Port} or tcp port {ClosedPort}"]);
        await agent.WaitUntilListeningAsync();
        await traffic();
        await Task.Delay(300);
        var exit = await agent.StopAsync();
        Assert.Equal(0, exit.ExitCode);
        var manifest = CaptureManifest.FromJson(exit.Stdout);
        Assert.Equal("signal", manifest.StopReason);
        var summary = manifest.Summary ?? throw new InvalidOperationException("no summary in the manifest");

        // The same pcap read back by 'summarize' tells the same story as the live capture.
        // The agent knows which end it is by its pod's addresses; summarize is told them.
        Assert.Contains(Server.IPv4.ToString(), summary.LocalAddresses);
        Assert.Contains(Server.IPv6.ToString(), summary.LocalAddresses);
        var offline = await AgentProcess.RunAsync(null, ["summarize", "--json", "--local-address", string.Join(',', summary.LocalAddresses), pcap]);
        Assert.Equal(0, offline.ExitCode);
        var read = JsonSerializer.Deserialize(offline.Stdout, SummaryJsonContext.Default.TcpSummaryReport)!;
        Assert.Equal(new FileInfo(pcap).Length, read.Input.FileBytes); // read to its end
        Assert.Equal(read.Input.FileBytes, read.Input.BytesRead);
        Assert.Equal(
            JsonSerializer.Serialize(summary, SummaryJsonContext.Default.TcpSummaryReport),
            JsonSerializer.Serialize(read with { Input = read.Input with { BytesRead = null, FileBytes = null } }, SummaryJsonContext.Default.TcpSummaryReport));
        return (summary, pcap);
    }
}
