using System.Text.Json;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>
/// The field guide's production scenarios with real traffic: client — middlebox — server, nftables
/// in the middlebox making the trouble, the agent capturing at both ends. Each end's summary must say
/// what that end can see, and never read as healthy when something went wrong; tcpdump and tshark
/// reading the same pcaps are the ground truth.
/// </summary>
public sealed class MiddleboxTrafficTests : IAsyncLifetime
{
    private const int Port = 8000;
    private const int ClosedPort = 8001;
    private MiddleboxLab _lab = null!;
    private HttpFileServer _http = null!;
    private readonly CaptureFiles _files = new();

    private NetnsPod Client => _lab.Client;

    private NetnsPod Server => _lab.Server;

    public async Task InitializeAsync()
    {
        _lab = await MiddleboxLab.CreateAsync("kcMB");
        _http = await Server.StartHttpServerAsync(Port, new Dictionary<string, int> { ["small.txt"] = 1000, ["200k.bin"] = 204_800 });
    }

    public async Task DisposeAsync()
    {
        await _http.DisposeAsync();
        await _lab.DisposeAsync();
        _files.Dispose();
    }

    private string ServerEndpoint(bool ipv6, int port = Port) => ipv6 ? $"[{Server.IPv6}]:{port}" : $"{Server.IPv4}:{port}";

    [Fact]
    public async Task HealthyTrafficThroughTheMiddleboxHasNoFindingAtEitherEnd()
    {
        var (client, server) = await CaptureBothEndsAsync(async () =>
        {
            Assert.Equal("200", (await Client.CurlAsync(_http.Url("200k.bin"))).Stdout);
            Assert.Equal("200", (await Client.CurlAsync(_http.Url("small.txt", ipv6: true))).Stdout);
        });

        foreach (var end in (TcpSummaryReport[])[client.Summary, server.Summary])
        {
            Assert.Empty(end.BesideLatency());
            Assert.Equal(2, end.HandshakesCompleted);
            Assert.Equal(0, end.Retransmissions);
            Assert.NotNull(HumanReport.AllClear(end));
        }

        Assert.Empty(EndComparison.Compare(client.Summary, server.Summary));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task SynAckDroppedOnTheWayBackIsTheReturnPathAtTheServerAndUndecidableAtTheClient(bool ipv6)
    {
        await _lab.Middlebox.AddNftablesAsync($$"""
            table inet kcmb {
              chain relay { type filter hook forward priority 0; tcp sport {{Port}} tcp flags & (syn | ack) == syn | ack drop; }
            }
            """);
        var (client, server) = await CaptureBothEndsAsync(async () =>
            Assert.Equal(28, (await Client.CurlAsync(_http.Url("small.txt", ipv6), TimeSpan.FromSeconds(2.5))).ExitCode));

        var serverDump = (await Tcpdump.ReadAsync(server.Pcap)).Tcp;
        Assert.Contains(serverDump, l => l.Flags == "S.");
        Assert.DoesNotContain((await Tcpdump.ReadAsync(client.Pcap)).Tcp, l => l.Flags == "S."); // ground truth: never arrived

        var atServer = Assert.Single(server.Summary.BesideLatency());
        Assert.Equal(FindingTypes.HandshakeIncomplete, atServer.Type);
        Assert.Contains("the SYN-ACK is not reaching the client. Look at the return path", atServer.Message);
        await AssertPacketsAreAsync(server.Pcap, atServer, "tcp.flags.syn == 1");

        var atClient = Assert.Single(client.Summary.BesideLatency());
        Assert.Equal(FindingTypes.SynUnanswered, atClient.Type);
        Assert.StartsWith($"1 connection attempt from here to {ServerEndpoint(ipv6)}", atClient.Message);
        Assert.Contains("From this end a SYN lost on the way and a SYN-ACK lost on the way back look the same", atClient.Message);
        Assert.Equal(client.Summary.Syns, atClient.Evidence.Packets);

        // Both ends compared: the SYN-ACKs left the server and never reached the client.
        var compared = Assert.Single(EndComparison.Compare(client.Summary, server.Summary));
        Assert.Equal(FindingTypes.ReturnPath, compared.Type);
        Assert.Contains("none reached the client", compared.Message);
        await AssertPacketsAreAsync(server.Pcap, compared, "tcp.flags.syn == 1 && tcp.flags.ack == 1");
    }

    [Fact]
    public async Task SynsDroppedSilentlyByTheMiddleboxAreUnansweredAtTheClientAndNeverSeenAtTheServer()
    {
        await _lab.Middlebox.AddNftablesAsync($$"""
            table inet kcmb {
              chain relay { type filter hook forward priority 0; tcp dport {{Port}} tcp flags syn drop; }
            }
            """);
        var (client, server) = await CaptureBothEndsAsync(async () =>
            Assert.Equal(28, (await Client.CurlAsync(_http.Url("small.txt"), TimeSpan.FromSeconds(2.5))).ExitCode));

        Assert.Empty((await Tcpdump.ReadAsync(server.Pcap)).Tcp);
        Assert.Equal(0, server.Summary.Connections);
        Assert.Null(HumanReport.AllClear(server.Summary)); // nothing seen is not healthy either
        var finding = Assert.Single(client.Summary.BesideLatency());
        Assert.Equal(FindingTypes.SynUnanswered, finding.Type);
        Assert.True(client.Summary.Syns >= 2, $"{client.Summary.Syns} SYNs");
        Assert.Equal(client.Summary.Syns, finding.Evidence.Packets);
        await AssertPacketsAreAsync(client.Pcap, finding, "tcp.flags.syn == 1 && tcp.flags.ack == 0");

        var compared = Assert.Single(EndComparison.Compare(server.Summary, client.Summary));
        Assert.Equal(FindingTypes.SilentlyDropped, compared.Type);
        Assert.Contains($"{client.Summary.Syns} SYNs left the client (its capture) and none reached the server", compared.Message);
        await AssertPacketsAreAsync(client.Pcap, compared, "tcp.flags.syn == 1 && tcp.flags.ack == 0");
    }

    [Fact]
    public async Task ARefusedConnectionIsARefusalAtBothEnds()
    {
        var (client, server) = await CaptureBothEndsAsync(async () =>
            Assert.Equal(7, (await Client.CurlAsync($"http://{Server.UrlHost(false)}:{ClosedPort}/")).ExitCode));

        foreach (var end in (CapturedEnd[])[client, server])
        {
            var finding = Assert.Single(end.Summary.BesideLatency());
            Assert.Equal(FindingTypes.ConnectionRefused, finding.Type);
            Assert.StartsWith($"1 connection to {ServerEndpoint(false, ClosedPort)} refused", finding.Message);
            Assert.Equal(1, end.Summary.Refused);
            await AssertPacketsAreAsync(end.Pcap, finding, "tcp.flags.syn == 1 || tcp.flags.reset == 1");
        }

        Assert.Empty(EndComparison.Compare(client.Summary, server.Summary));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AResetTheMiddleboxInjectsIsNamedForgedByItsTtlNotAResetByTheServer(bool ipv6)
    {
        // The middlebox lets the handshake through, then answers the request for the server with
        // 'reject with tcp reset': the server never hears of it.
        await _lab.Middlebox.AddNftablesAsync($$"""
            table inet kcmb {
              chain relay { type filter hook forward priority 0; tcp dport {{Port}} tcp flags & psh == psh reject with tcp reset; }
            }
            """);
        var (client, server) = await CaptureBothEndsAsync(async () =>
            Assert.Equal(56, (await Client.CurlAsync(_http.Url("small.txt", ipv6))).ExitCode));

        var reset = Assert.Single((await Tcpdump.ReadAsync(client.Pcap)).Tcp, l => l.Flags.Contains('R', StringComparison.Ordinal));
        Assert.Equal("R", reset.Flags);
        Assert.DoesNotContain((await Tcpdump.ReadAsync(server.Pcap)).Tcp, l => l.Flags.Contains('R', StringComparison.Ordinal) || l.Length > 0);

        var c = client.Summary;
        Assert.Equal(new ResetCounts(), c.ResetsFromServer);
        Assert.Equal(new ResetCounts { Bare = 1 }, c.ResetsSuspectedForged);
        var forged = Assert.Single(c.Findings, f => f.Type == FindingTypes.ResetSuspectedForged);
        Assert.DoesNotContain(c.Findings, f => f.Type == FindingTypes.ResetByEndpoint || f.Type == FindingTypes.ResetBare);
        var ttl = ipv6 ? "hop limit" : "TTL";
        Assert.Contains($"claims to come from the server but was likely made by a device in between", forged.Message);
        Assert.Contains($"{ttl} 64 where the server's other packets had 63", forged.Message);
        Assert.Contains(ipv6 ? "hop-limit-mismatch" : "ttl-mismatch", forged.Evidence.Indicators);
        Assert.Contains("bare-rst", forged.Evidence.Indicators);
        await AssertPacketsAreAsync(client.Pcap, forged, "tcp.flags.reset == 1");

        // The server end: the handshake, then nothing: never an all-clear.
        var silent = Assert.Single(server.Summary.BesideLatency());
        Assert.Equal(FindingTypes.NoDataAfterHandshake, silent.Type);
        Assert.Contains("the request never arrived here", silent.Message);
        Assert.Null(HumanReport.AllClear(server.Summary));

        // Both ends compared: the server never sent it.
        var compared = Assert.Single(EndComparison.Compare(client.Summary, server.Summary));
        Assert.Equal(FindingTypes.ResetFromMiddlebox, compared.Type);
        Assert.Contains("a RST claiming to come from the server reached the client, but the server's own capture shows it never sent one", compared.Message);
        Assert.Contains($"{ttl} 64 where the server's other packets had 63", compared.Message);
        Assert.DoesNotContain("this end alone could not tell", compared.Message);
        await AssertPacketsAreAsync(client.Pcap, compared, "tcp.flags.reset == 1");
    }

    [Fact]
    public async Task AForgedResetWithTheServersTtlIsABareResetThatThisEndCannotTellFromTheServers()
    {
        // The server's packets leave with TTL 65 and arrive with 64, the TTL of the middlebox's own RST.
        (await Server.ExecAsync("sysctl", "-qw", "net.ipv4.ip_default_ttl=65")).EnsureSuccess();
        await _lab.Middlebox.AddNftablesAsync($$"""
            table inet kcmb {
              chain relay { type filter hook forward priority 0; tcp dport {{Port}} tcp flags & psh == psh reject with tcp reset; }
            }
            """);
        var (client, server) = await CaptureBothEndsAsync(async () =>
            Assert.Equal(56, (await Client.CurlAsync(_http.Url("small.txt"))).ExitCode));

        var finding = Assert.Single(client.Summary.BesideLatency());
        Assert.Equal(FindingTypes.ResetBare, finding.Type);
        Assert.Contains("its TTL the same as the server's other packets", finding.Message);
        Assert.Contains("from this end the two cannot be told apart; capture at the server", finding.Message);
        Assert.DoesNotContain("reset by the server", finding.Message);
        await AssertPacketsAreAsync(client.Pcap, finding, "tcp.flags.reset == 1");

        // Only the comparison settles it, from the manifests the agent wrote beside each pcap.
        var compare = await AgentProcess.RunAsync(null, ["compare", "--json", client.Pcap + ".json", server.Pcap + ".json"]);
        Assert.Equal(0, compare.ExitCode);
        var compared = Assert.Single(JsonSerializer.Deserialize(compare.Stdout, SummaryJsonContext.Default.ListFinding)!);
        Assert.Equal(FindingTypes.ResetFromMiddlebox, compared.Type);
        Assert.Contains("What gives it away here: a bare [R] without ACK. Its TTL matches the server's own packets: this end alone could not tell.", compared.Message);
        Assert.Equal(["bare-rst"], compared.Evidence.Indicators);
        await AssertPacketsAreAsync(client.Pcap, compared, "tcp.flags.reset == 1");
    }

    [Theory]
    [InlineData(false, 1448)]
    [InlineData(true, 1428)]
    public async Task ANarrowMiddleLinkWithItsIcmpDroppedIsAnMtuBlackholeAtTheSenderAndDataThatNeverArrivedAtTheReceiver(bool ipv6, int fullSegment)
    {
        // The middlebox's link toward the client carries 1280 bytes, the client advertises the MSS
        // of its own 1500-byte link, and the middlebox's firewall drops the ICMP that would tell the server.
        await _lab.Middlebox.SetMtuAsync(1280);
        await _lab.Middlebox.AddNftablesAsync("""
            table inet kcmb {
              chain out { type filter hook output priority 0; icmp type destination-unreachable icmp code frag-needed drop; icmpv6 type packet-too-big drop; }
            }
            """);
        var (client, server) = await CaptureBothEndsAsync(async () =>
            Assert.Equal(28, (await Client.CurlAsync(_http.Url("200k.bin", ipv6), TimeSpan.FromSeconds(3))).ExitCode));

        var toClient = (await Tcpdump.ReadAsync(client.Pcap)).Tcp.Where(l => l.SourcePort == Port && l.Length > 0).ToList();
        Assert.All(toClient, l => Assert.True(l.Length < 1000, l.Text)); // ground truth: no full-size segment arrived

        var blackhole = Assert.Single(server.Summary.Findings, f => f.Type == FindingTypes.MtuBlackhole);
        Assert.Contains($"segments of {fullSegment} bytes were retransmitted and never acknowledged", blackhole.Message);
        Assert.Contains(ipv6 ? "ICMPv6 'packet too big'" : "ICMP 'fragmentation needed'", blackhole.Message);
        Assert.DoesNotContain(ipv6 ? "TTL" : "packet too big", blackhole.Message);

        Assert.Null(HumanReport.AllClear(client.Summary));
        var stalled = Assert.Single(client.Summary.Findings, f => f.Type == FindingTypes.DataStalled);
        Assert.Contains($"that {ServerEndpoint(ipv6)} sent to", stalled.Message);
        Assert.Contains("never arrived here", stalled.Message);
        Assert.Empty(EndComparison.Compare(client.Summary, server.Summary));
    }

    [Fact]
    public async Task LossOnTheServerToClientLegIsRetransmissionsOnThatDirectionOnlyAndTheComparisonCountsTheBytesLostOnThatLeg()
    {
        // Every fifth full-size segment toward the client is lost in the middlebox.
        await _lab.Middlebox.AddNftablesAsync($$"""
            table inet kcmb {
              chain relay { type filter hook forward priority 0; tcp sport {{Port}} meta length > 1000 numgen inc mod 5 == 0 counter drop; }
            }
            """);
        var (client, server) = await CaptureBothEndsAsync(async () =>
            Assert.Equal("200", (await Client.CurlAsync(_http.Url("200k.bin"), TimeSpan.FromSeconds(20))).Stdout));

        // Ground truth at the sender: segments whose range starts before the highest byte already sent.
        var serverDump = (await Tcpdump.ReadAsync(server.Pcap)).Tcp;
        Assert.Equal(SentAgain(serverDump), server.Summary.Retransmissions);
        Assert.True(server.Summary.Retransmissions > 0);
        Assert.Equal(0, server.Summary.OutOfOrderSegments); // where they are sent, segments are never out of order

        // At the receiver, each segment behind the highest byte is one or the other.
        var clientDump = (await Tcpdump.ReadAsync(client.Pcap)).Tcp;
        Assert.Equal(SentAgain(clientDump), client.Summary.Retransmissions + client.Summary.OutOfOrderSegments);
        var leg = $"{ServerEndpoint(false)} -> {Client.IPv4}:";
        var finding = Assert.Single(server.Summary.BesideLatency(), f => f.Type == FindingTypes.Retransmissions);
        Assert.Contains($" on {leg}", finding.Message);
        Assert.Contains("this end cannot tell whether the first copies were lost or only late", finding.Message); // the sender's end
        Assert.DoesNotContain(server.Summary.Findings, f => f.Severity == FindingSeverity.Error);
        // tshark calls some of them out of order: it does not know this is the sending end.
        await AssertPacketsAreAsync(server.Pcap, finding, $"tcp.srcport == {Port} && tcp.len > 0 && (tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.out_of_order)");
        Assert.DoesNotContain(client.Summary.Findings, f => f.Severity == FindingSeverity.Error || f.Message.Contains($"on {Client.IPv4}:", StringComparison.Ordinal));

        // At the client (the receiver) the loss is told from its own capture: every first copy that never
        // arrived (by its IP identification in the server's capture) and was replaced after later bytes
        // had come is a gap filled by a later copy. (A lost last segment resent by a tail loss probe
        // arrives in order, as does one resent at a timeout when nothing after it was sent: nothing at
        // the receiver tells those from a first copy.)
        var truth = await SegmentTruth.OfAsync(server.Pcap, client.Pcap, $"tcp.srcport == {Port}", "tcp.dstport");
        Assert.True(truth.FirstCopiesNeverArrivedSeenAsGaps > 0);
        var lost = Assert.Single(client.Summary.Findings, f => f.Type == FindingTypes.Retransmissions);
        Assert.Equal(truth.FirstCopiesNeverArrivedSeenAsGaps, lost.Evidence.Packets);
        Assert.Contains($"lost and sent again: they filled a gap: the first copy never arrived here, lost on the way from {ServerEndpoint(false)}", lost.Message);
        Assert.Subset(truth.GapFillingRetransmissionFramesAtReceiver.ToHashSet(), lost.Evidence.PacketNumbers.ToHashSet());

        // Both ends compared: the bytes that left the server and never reached the client, by tshark's
        // count of payload bytes (tcp.len, retransmissions included) at each end.
        var sent = await PayloadBytesAsync(server.Pcap, $"tcp.srcport == {Port}");
        var arrived = await PayloadBytesAsync(client.Pcap, $"tcp.srcport == {Port}");
        Assert.True(arrived < sent, $"tshark: {sent} bytes sent, {arrived} arrived");
        Assert.True(await _lab.Middlebox.NftablesCounterPacketsAsync("kcmb", "relay") > 0);
        foreach (var (a, b) in new[] { (client.Summary, server.Summary), (server.Summary, client.Summary) })
        {
            var loss = Assert.Single(EndComparison.Compare(a, b));
            Assert.Equal((FindingTypes.LossOnOneLeg, FindingSeverity.Warning), (loss.Type, loss.Severity));
            Assert.Equal(["server-to-client"], loss.Evidence.Indicators);
            Assert.Contains($"{sent - arrived} of the {sent} payload bytes the server sent toward the client", loss.Message);
            Assert.Contains($"({arrived} arrived, its capture): lost on the server -> client leg", loss.Message);
            Assert.Contains("The client -> server leg lost nothing", loss.Message);
        }

        // Kernel drops at either capture: the capture could have lost them, so the path is not blamed.
        Assert.Empty(EndComparison.Compare(client.Summary, server.Summary, capturesMissedPackets: true));
    }

    /// <summary>Data segments from the server whose sequence range starts before the highest byte seen from it before (tcpdump's relative numbers).</summary>
    private static int SentAgain(IReadOnlyList<TcpdumpTcpLine> dump)
    {
        var (highest, again) = (0L, 0);
        foreach (var line in dump.Where(l => l.SourcePort == Port && l.Length > 0 && l.Sequence is not null))
        {
            again += line.Sequence < highest ? 1 : 0;
            highest = Math.Max(highest, line.SequenceEnd ?? 0);
        }

        return again;
    }

    private Task<(CapturedEnd Client, CapturedEnd Server)> CaptureBothEndsAsync(Func<Task> traffic) =>
        BothEndsCapture.CaptureAsync(_lab, _files, $"tcp port {Port} or tcp port {ClosedPort}", traffic);

    private static Task AssertPacketsAreAsync(string pcap, Finding finding, string displayFilter) => BothEndsCapture.AssertPacketsAreAsync(pcap, finding, displayFilter);

    private static Task<long> PayloadBytesAsync(string pcap, string displayFilter) => BothEndsCapture.PayloadBytesAsync(pcap, displayFilter);
}
