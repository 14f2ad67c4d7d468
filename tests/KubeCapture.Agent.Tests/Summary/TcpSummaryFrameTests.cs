using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;
using PacketDotNet;
using static KubeCapture.Agent.Tests.Summary.TcpFrames;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>TcpSummary fed crafted frames (Ethernet, VLAN, Linux cooked; IPv4 and IPv6), one pattern at a time.</summary>
public sealed class TcpSummaryFrameTests
{
    private static readonly Endpoint Client4 = new("169.254.9.2", 40000);
    private static readonly Endpoint Server4 = new("169.254.9.1", 80);
    private static readonly Endpoint Client6 = new("fd09::2", 40000);
    private static readonly Endpoint Server6 = new("fd09::1", 443);

    /// <summary>
    /// Feeds one connection's packets, client and server side, with fixed ISNs. Each side numbers its
    /// IPv4 packets by one per packet, as Linux does, unless a test gives the identification.
    /// </summary>
    private sealed class Conversation(TcpSummary summary, LinkLayers link, Endpoint client, Endpoint server, bool vlan = false)
    {
        public const uint ClientIsn = 1000;
        public const uint ServerIsn = 0xffff_ff00; // the server's data wraps past 2^32

        private ushort _clientId = 100;
        private ushort _serverId = 5000;

        /// <summary>The capture time of the next packet, in microseconds since the epoch.</summary>
        public long Time { get; set; }

        public void C(uint sequence, uint acknowledgment, byte flags, int payload = 0, ushort window = 64240, byte ttl = 64, ushort? ipId = null, (uint, uint)? timestamps = null, (uint, uint)? sack = null) =>
            summary.Observe(Tcp(link, client, server, sequence, acknowledgment, flags, payload, window, ttl, vlan, ipId: ipId ?? _clientId++, timestamps: timestamps, sack: sack), Time);

        public void S(uint sequence, uint acknowledgment, byte flags, int payload = 0, ushort window = 64240, byte ttl = 64, ushort? ipId = null, (uint, uint)? timestamps = null, (uint, uint)? sack = null) =>
            summary.Observe(Tcp(link, server, client, sequence, acknowledgment, flags, payload, window, ttl, vlan, ipId: ipId ?? _serverId++, timestamps: timestamps, sack: sack), Time);

        public void Handshake()
        {
            C(ClientIsn, 0, Syn);
            S(ServerIsn, ClientIsn + 1, Syn | Ack);
            C(ClientIsn + 1, ServerIsn + 1, Ack);
        }
    }

    [Theory]
    [InlineData(LinkLayers.Ethernet, false, false)]
    [InlineData(LinkLayers.Ethernet, true, false)]
    [InlineData(LinkLayers.LinuxSll, false, false)]
    [InlineData(LinkLayers.LinuxSll, true, false)]
    [InlineData(LinkLayers.Ethernet, false, true)]
    [InlineData(LinkLayers.Ethernet, true, true)]
    public void RequestAndResponseOverACompletedHandshakeAreReportedClean(LinkLayers link, bool ipv6, bool vlan)
    {
        var summary = new TcpSummary(link);
        var talk = new Conversation(summary, link, ipv6 ? Client6 : Client4, ipv6 ? Server6 : Server4, vlan);
        talk.Handshake();
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.C(c, s, Psh | Ack, payload: 80);
        talk.S(s, c + 80, Ack);
        talk.S(s, c + 80, Ack, payload: 1000); // crosses 2^32: not a retransmission
        talk.S(s + 1000, c + 80, Psh | Ack, payload: 300);
        talk.C(c + 80, s + 1300, Ack);
        talk.C(c + 80, s + 1300, Fin | Ack);
        talk.S(s + 1300, c + 81, Fin | Ack);
        talk.C(c + 81, s + 1301, Ack);

        var report = summary.Report();
        Assert.Equal(11, report.TcpPackets);
        Assert.Equal(1, report.Connections);
        Assert.Equal(1, report.Syns);
        Assert.Equal(1, report.SynAcks);
        Assert.Equal(1, report.HandshakesCompleted);
        Assert.Equal(0, report.Retransmissions);
        Assert.Equal(1000, report.LargestAcknowledgedSegment);
        Assert.Null(report.SmallestUnacknowledgedRetransmittedSegment);
        Assert.Equal(0, report.UndecodablePackets);
        Assert.Empty(report.BesideLatency());
        Assert.Equal("1 connection, every handshake completed and all data acknowledged; no refusals, resets, retransmissions or stalls.", HumanReport.AllClear(report));
    }

    [Theory]
    [InlineData(LinkLayers.Ethernet, false, false)]
    [InlineData(LinkLayers.LinuxSll, false, false)]
    [InlineData(LinkLayers.Ethernet, true, true)]
    [InlineData(LinkLayers.LinuxSll, true, false)]
    public void BigTcpSegmentsAreDecodedWithTheirLengthOnTheWireAndCountedInTheConnectionsBytes(LinkLayers link, bool ipv6, bool jumboOption)
    {
        // 100,000 bytes in one packet, headers-only snaplen: the IP header cannot say the length
        // (IPv4 total length 0, IPv6 payload length 0 with or without a jumbo payload option).
        var summary = new TcpSummary(link);
        var (client, server) = ipv6 ? (Client6, Server6) : (Client4, Server4);
        var talk = new Conversation(summary, link, client, server);
        talk.Handshake();
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.C(c, s, Psh | Ack, payload: 80);
        foreach (var (sequence, payload) in new[] { (s, 100_000), (s + 100_000, 70_000) })
        {
            var frame = Tcp(link, server, client, sequence, c + 80, Psh | Ack, payload, hopByHop: jumboOption, bigTcp: true);
            summary.Observe(frame.AsSpan(0, 128), frame.Length, 0);
        }

        talk.C(c + 80, s + 170_000, Ack);

        var report = summary.Report();
        Assert.Equal(0, report.UndecodablePackets);
        Assert.Equal(7, report.TcpPackets);
        Assert.Equal(0, report.Retransmissions);
        Assert.Equal(100_000, report.LargestAcknowledgedSegment);
        Assert.Empty(report.BesideLatency());
        var record = Assert.Single(report.ConnectionsWithoutFindings);
        Assert.Equal((80, 170_000), (record.ClientWireBytes, record.ServerWireBytes));
    }

    [Theory]
    [InlineData(LinkLayers.Ethernet, false)]
    [InlineData(LinkLayers.LinuxSll, true)]
    public void SynAnsweredByResetIsARefusalNotAReset(LinkLayers link, bool ipv6)
    {
        var summary = new TcpSummary(link);
        var talk = new Conversation(summary, link, ipv6 ? Client6 : Client4, ipv6 ? Server6 : Server4);
        talk.C(Conversation.ClientIsn, 0, Syn);
        talk.S(0, Conversation.ClientIsn + 1, Rst | Ack);

        var report = summary.Report();
        Assert.Equal(1, report.Refused);
        Assert.Equal(0, report.HandshakesCompleted);
        Assert.Equal(new ResetCounts { WithAck = 1 }, report.ResetsFromServer);
        var server = ipv6 ? "[fd09::1]:443" : "169.254.9.1:80";
        var client = ipv6 ? "[fd09::2]:40000" : "169.254.9.2:40000";
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal((FindingTypes.ConnectionRefused, FindingSeverity.Warning), (finding.Type, finding.Severity));
        Assert.Equal($"1 connection to {server} refused: the SYN from {client} was answered with a RST (1 RST, 1 SYN): nothing listening on that port.", finding.Message);
        Assert.Equal([1L, 2L], finding.Evidence.PacketNumbers);
        Assert.Equal([$"{client} -> {server}"], finding.Evidence.Flows);
        Assert.Null(HumanReport.AllClear(report));
    }

    [Fact]
    public void SynAckWithoutTheFinalAckIsAHandshakeThatNeverCompleted()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
        talk.C(Conversation.ClientIsn, 0, Syn);
        talk.S(Conversation.ServerIsn, Conversation.ClientIsn + 1, Syn | Ack);
        talk.S(Conversation.ServerIsn, Conversation.ClientIsn + 1, Syn | Ack); // the server tries again

        var report = summary.Report();
        Assert.Equal(1, report.HandshakesWithoutFinalAck);
        Assert.Equal(0, report.HandshakesCompleted);
        Assert.Equal(2, report.SynAcks);
        Assert.Equal(1, report.HandshakeRetransmissions);
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal(FindingTypes.HandshakeIncomplete, finding.Type);
        Assert.StartsWith("1 handshake with 169.254.9.1:80 never completed (169.254.9.2:40000 -> 169.254.9.1:80): it answered the SYN with SYN-ACK but the final ACK never came", finding.Message);
        Assert.Contains("Look at the return path", finding.Message);
        Assert.Equal([1L, 2L, 3L], finding.Evidence.PacketNumbers);
    }

    [Fact]
    public void SynsWithoutAnyAnswerAreUnanswered()
    {
        var summary = new TcpSummary(LinkLayers.LinuxSll);
        var talk = new Conversation(summary, LinkLayers.LinuxSll, Client6, Server6);
        talk.C(Conversation.ClientIsn, 0, Syn);
        talk.C(Conversation.ClientIsn, 0, Syn);
        talk.C(Conversation.ClientIsn, 0, Syn);

        var report = summary.Report();
        Assert.Equal(1, report.Connections);
        Assert.Equal(1, report.SynsUnanswered);
        Assert.Equal(3, report.Syns);
        Assert.Equal(2, report.HandshakeRetransmissions);
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal((FindingTypes.SynUnanswered, FindingSeverity.Error), (finding.Type, finding.Severity));
        Assert.StartsWith("1 connection attempt to [fd09::1]:443 ([fd09::2]:40000 -> [fd09::1]:443) got no answer seen here (3 SYNs, no SYN-ACK, no RST)", finding.Message);
        Assert.Equal([1L, 3L], finding.Evidence.PacketNumbers);
        Assert.Equal(3, finding.Evidence.Packets);
    }

    [Fact]
    public void SegmentSentAgainAndThenAcknowledgedIsARetransmissionButNoBlackhole()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client6, Server6);
        talk.Handshake();
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.S(s, c, Ack, payload: 1428); // lost
        talk.S(s + 1428, c, Ack, payload: 1428);
        talk.C(c, s, Ack); // duplicate ACK
        talk.S(s, c, Ack, payload: 1428); // sent again
        talk.C(c, s + 2856, Ack);

        var report = summary.Report();
        Assert.Equal(1, report.Retransmissions);
        Assert.Equal(1428, report.LargestAcknowledgedSegment);
        Assert.Null(report.SmallestUnacknowledgedRetransmittedSegment);
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal(FindingTypes.Retransmissions, finding.Type);
        // Without the local addresses this capture could be anywhere: the first copy came by, then was lost, or was only late.
        Assert.Equal("1 segment on [fd09::1]:443 -> [fd09::2]:40000 sent again: it came by here twice: the first copy was lost after this point, or only late; captures at both ends tell.", finding.Message);
        Assert.Equal([7L], finding.Evidence.PacketNumbers);
    }

    [Fact]
    public void SmallSegmentsAcknowledgedAndLargeOnesRetransmittedUnacknowledgedIsAnMtuBlackhole()
    {
        var summary = new TcpSummary(LinkLayers.LinuxSll);
        var talk = new Conversation(summary, LinkLayers.LinuxSll, Client4, Server4);
        talk.Handshake();
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.C(c, s, Psh | Ack, payload: 90);
        talk.S(s, c + 90, Psh | Ack, payload: 200);
        talk.C(c + 90, s + 200, Ack);
        for (var attempt = 0; attempt < 3; attempt++)
        {
            talk.S(s + 200, c + 90, Ack, payload: 1448);
            talk.S(s + 1648, c + 90, Ack, payload: 1448);
        }

        var report = summary.Report();
        Assert.Equal(200, report.LargestAcknowledgedSegment);
        Assert.Equal(1448, report.SmallestUnacknowledgedRetransmittedSegment);
        Assert.Equal(4, report.Retransmissions);
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal((FindingTypes.MtuBlackhole, FindingSeverity.Error), (finding.Type, finding.Severity));
        Assert.Equal(
            "MTU blackhole suspected on 169.254.9.1:80 -> 169.254.9.2:40000: segments up to 200 bytes were acknowledged, segments of 1448 bytes were retransmitted and never acknowledged. A link on the path has a smaller MTU and the ICMP 'fragmentation needed' is not getting back to 169.254.9.1:80.",
            finding.Message);
        Assert.Equal([7L, 9L, 10L, 11L, 12L], finding.Evidence.PacketNumbers); // first sent, then the first four retransmissions
    }

    [Fact]
    public void KeepAliveProbesAreNotRetransmissions()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
        talk.Handshake();
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.C(c, s, Psh | Ack, payload: 10);
        talk.S(s, c + 10, Ack);
        talk.C(c + 9, s, Ack, payload: 1); // keep-alive: one old byte
        talk.C(c + 9, s, Ack, payload: 1);

        Assert.Equal(0, summary.Report().Retransmissions);
    }

    [Fact]
    public void ResetsAreCountedByDirectionAndKind()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var first = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
        first.Handshake();
        first.C(Conversation.ClientIsn + 1, 0, Rst); // bare [R] from the client
        var second = new Conversation(summary, LinkLayers.Ethernet, Client4 with { Port = 40001 }, Server4);
        second.Handshake();
        second.S(Conversation.ServerIsn + 1, Conversation.ClientIsn + 1, Rst | Ack); // [R.] from the server

        var report = summary.Report();
        Assert.Equal(new ResetCounts { Bare = 1 }, report.ResetsFromClient);
        Assert.Equal(new ResetCounts { WithAck = 1 }, report.ResetsFromServer);
        Assert.Equal(0, report.Refused);
        Assert.Equal(2, report.HandshakesCompleted);
        Assert.Contains(report.Findings, f => f.Type == FindingTypes.ResetBare && f.Message.StartsWith("1 connection 169.254.9.2:40000 -> 169.254.9.1:80 ended by a bare [R] (no ACK) from the client's address, its TTL the same as the client's other packets.", StringComparison.Ordinal));
        Assert.Contains(report.Findings, f => f.Type == FindingTypes.ResetByEndpoint && f.Message.StartsWith("1 connection 169.254.9.2:40001 -> 169.254.9.1:80 reset by the server with [R.]", StringComparison.Ordinal));
        Assert.Equal(new ResetCounts(), report.ResetsSuspectedForged);
    }

    [Fact]
    public void ResetWithAnotherTtlThanTheServersPacketsIsFlaggedAsForged()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
        talk.Handshake();
        talk.S(Conversation.ServerIsn + 1, Conversation.ClientIsn + 1, Rst | Ack, ttl: 250);

        var report = summary.Report();
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal((FindingTypes.ResetSuspectedForged, FindingSeverity.Error), (finding.Type, finding.Severity));
        Assert.Contains("TTL 250 where the server's other packets had 64", finding.Message);
        Assert.Contains("claims to come from the server but was likely made by a device in between", finding.Message);
        Assert.DoesNotContain("reset by the server", finding.Message);
        Assert.Equal(["ttl-mismatch"], finding.Evidence.Indicators);
        Assert.Equal([4L], finding.Evidence.PacketNumbers);

        // The counters agree with the finding: not a reset from the server.
        Assert.Equal(new ResetCounts(), report.ResetsFromServer);
        Assert.Equal(new ResetCounts { WithAck = 1 }, report.ResetsSuspectedForged);
    }

    [Fact]
    public void AZeroWindowNamesTheEndThatStoppedReadingAndHowLongItsWindowStayedClosed()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4) { Time = 1_000_000 };
        talk.Handshake();
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.S(s, c, Ack, payload: 1000);
        talk.C(c, s + 1000, Ack, window: 0); // the client stops reading
        talk.Time += 200_000;
        talk.S(s + 999, c, Ack); // a window probe (Linux: one byte before the acknowledged point, empty)
        talk.C(c, s + 1000, Ack, window: 0);
        talk.Time += 2_300_000;
        talk.C(c, s + 1000, Ack, window: 500); // and reads again 2.5 s later

        var report = summary.Report();
        Assert.Equal(2, report.ZeroWindowAdvertisements);
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal((FindingTypes.ZeroWindow, FindingSeverity.Warning), (finding.Type, finding.Severity));
        Assert.Equal("169.254.9.2:40000 stopped reading: it closed its receive window to 169.254.9.1:80 once, 2.5 s in all (the longest 2.5 s); 169.254.9.1:80 sent 1 window probe meanwhile. Flow control, not loss: the application at 169.254.9.2:40000 reads slower than 169.254.9.1:80 sends, or stopped reading.", finding.Message);
        Assert.Equal([5L, 8L], finding.Evidence.PacketNumbers);
    }

    [Fact]
    public void ConnectionAlreadyOpenWhenTheCaptureBeganIsCountedButNotCompleted()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
        talk.S(5000, 100, Ack, payload: 500);
        talk.C(100, 5500, Ack);

        var report = summary.Report();
        Assert.Equal(1, report.Connections);
        Assert.Equal(0, report.HandshakesCompleted);
        Assert.Equal(500, report.LargestAcknowledgedSegment);
        Assert.Empty(report.BesideLatency());
        Assert.Contains("already open when the capture began", HumanReport.AllClear(report));
    }

    [Fact]
    public void ASegmentThatFillsAGapWithinOneRoundTripIsOutOfOrderNotARetransmission()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4) { Time = 1_000_000 };
        talk.Handshake(); // SYN to final ACK in 0 us here: the 3 ms default window applies
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.S(s + 1000, c, Ack, payload: 1000, ipId: 7001); // the second segment first
        talk.Time += 500;
        talk.S(s, c, Ack, payload: 1000, ipId: 7000); // then the first, 0.5 ms later
        talk.C(c, s + 2000, Ack);

        var report = summary.Report();
        Assert.Equal(1, report.OutOfOrderSegments);
        Assert.Equal(0, report.Retransmissions);
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal((FindingTypes.OutOfOrder, FindingSeverity.Info), (finding.Type, finding.Severity));
        Assert.Equal([5L], finding.Evidence.PacketNumbers);
    }

    [Fact]
    public void ASegmentThatFillsAGapSentAfterTheSegmentsAheadOfItIsARetransmissionOfALostOne()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4) { Time = 1_000_000 };
        talk.C(Conversation.ClientIsn, 0, Syn);
        talk.Time += 2000;
        talk.S(Conversation.ServerIsn, Conversation.ClientIsn + 1, Syn | Ack);
        talk.C(Conversation.ClientIsn + 1, Conversation.ServerIsn + 1, Ack); // a 2 ms round trip
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.S(s + 1000, c, Ack, payload: 1000); // the first segment was lost before this point
        talk.S(s + 2000, c, Ack, payload: 1000);
        talk.S(s + 3000, c, Ack, payload: 1000);
        talk.C(c, s, Ack); // duplicate ACKs
        talk.C(c, s, Ack);
        talk.Time += 200_000;
        talk.S(s, c, Ack, payload: 1000); // sent again after the sender's timeout: its IP identification is the newest
        talk.C(c, s + 4000, Ack);

        var report = summary.Report();
        Assert.Equal(0, report.OutOfOrderSegments);
        Assert.Equal(1, report.Retransmissions);
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal("1 segment on 169.254.9.1:80 -> 169.254.9.2:40000 lost and sent again: it filled a gap: the first copy never came by this point, lost on the way to it.", finding.Message);
        Assert.Equal([9L], finding.Evidence.PacketNumbers);
    }

    [Fact]
    public void AtTheReceiverTheOldestOfSeventeenGapsOpenAtOnceIsStillAGapWhenItsRetransmissionFillsIt()
    {
        // Every second server segment lost: 17 holes open at once (MiddleboxTrafficTests' loss on the
        // server-to-client leg, where the oldest hole's retransmission was lost too and 17 were open).
        var summary = new TcpSummary(LinkLayers.Ethernet, [Client4.Address]);
        var (talk, c, s) = FirstServerSegmentLost(summary);
        for (var i = 2u; i <= 17; i++)
        {
            talk.S(s + (2000 * i) + 1000, c, Ack, payload: 1000, ipId: (ushort)(5004 + i));
        }

        talk.S(s, c, Ack, payload: 1000, ipId: 5100); // the oldest hole filled by its retransmission
        talk.C(c, s + 4000, Ack);

        var report = summary.Report();
        Assert.Equal((1, 0, 0), (report.Retransmissions, report.SpuriousRetransmissions, report.OutOfOrderSegments));
        var lost = Assert.Single(report.Findings, f => f.Type == FindingTypes.Retransmissions);
        Assert.Equal(1, lost.Evidence.Packets);
        Assert.Contains("filled a gap: the first copy never arrived here", lost.Message);
    }

    /// <summary>
    /// A handshake with a 2 ms round trip, then the server's first data segment (IP identification 5001)
    /// lost before this point: the three after it (5002 to 5004) and the client's duplicate ACKs came
    /// by, 200 ms ago. Frames 1 to 8.
    /// </summary>
    private static (Conversation Talk, uint Client, uint Server) FirstServerSegmentLost(TcpSummary summary)
    {
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4) { Time = 1_000_000 };
        talk.C(Conversation.ClientIsn, 0, Syn);
        talk.Time += 2000;
        talk.S(Conversation.ServerIsn, Conversation.ClientIsn + 1, Syn | Ack);
        talk.C(Conversation.ClientIsn + 1, Conversation.ServerIsn + 1, Ack);
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.S(s + 1000, c, Ack, payload: 1000, ipId: 5002);
        talk.S(s + 2000, c, Ack, payload: 1000, ipId: 5003);
        talk.S(s + 3000, c, Ack, payload: 1000, ipId: 5004);
        talk.C(c, s, Ack); // duplicate ACKs
        talk.C(c, s, Ack);
        talk.Time += 200_000;
        return (talk, c, s);
    }

    [Fact]
    public void AGapFilledLateByASegmentNothingDatesIsNeitherCalledLostNorReordered()
    {
        // IPv6 has no identification, and these carry no timestamps: the late copy may be the first, or a retransmission.
        var summary = new TcpSummary(LinkLayers.Ethernet, [Client6.Address]);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client6, Server6) { Time = 1_000_000 };
        talk.Handshake();
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.S(s + 1000, c, Ack, payload: 1000);
        talk.Time += 50_000;
        talk.S(s, c, Ack, payload: 1000);
        talk.C(c, s + 2000, Ack);

        var report = summary.Report();
        Assert.Equal((0, 0), (report.Retransmissions, report.OutOfOrderSegments));
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal(FindingTypes.Retransmissions, finding.Type);
        Assert.Equal("1 segment on [fd09::1]:443 -> [fd09::2]:40000 sent again or late: it filled a gap more than a round trip after it opened, and nothing here dates it against the segment that opened it (no IP identification on IPv6, the same TCP timestamp): the first copy, late, or a retransmission of a lost one; a capture at [fd09::1]:443 tells (kubecapture-agent compare).", finding.Message);
        Assert.DoesNotContain("lost on the way", finding.Message);
        Assert.Equal([5L], finding.Evidence.PacketNumbers);
    }

    [Fact]
    public void FromTheClientEndUnansweredSynsSayThatALostSynAndALostSynAckLookTheSame()
    {
        var client = new TcpSummary(LinkLayers.Ethernet, [Client4.Address]);
        var server = new TcpSummary(LinkLayers.Ethernet, [Server4.Address]);
        foreach (var summary in (TcpSummary[])[client, server])
        {
            var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
            talk.C(Conversation.ClientIsn, 0, Syn);
            talk.C(Conversation.ClientIsn, 0, Syn);
        }

        var fromClient = Assert.Single(client.Report().BesideLatency());
        var fromServer = Assert.Single(server.Report().BesideLatency());
        Assert.Equal(FindingTypes.SynUnanswered, fromClient.Type);
        Assert.Equal(FindingTypes.SynUnanswered, fromServer.Type);
        Assert.Contains("2 SYNs sent, no SYN-ACK and no RST came back", fromClient.Message);
        Assert.Contains("a SYN lost on the way and a SYN-ACK lost on the way back look the same", fromClient.Message);
        Assert.Contains("reached this host (2 SYNs) and none was answered", fromServer.Message);
        Assert.Equal([Client4.Address], client.Report().LocalAddresses);
    }

    [Fact]
    public void AResetWithAnotherHopLimitSpeaksOfHopLimitForIPv6AndAResetThisHostSentIsItsOwn()
    {
        var remote = new TcpSummary(LinkLayers.Ethernet, [Client6.Address]);
        var local = new TcpSummary(LinkLayers.Ethernet, [Server6.Address]);
        foreach (var summary in (TcpSummary[])[remote, local])
        {
            var talk = new Conversation(summary, LinkLayers.Ethernet, Client6, Server6);
            talk.C(Conversation.ClientIsn, 0, Syn);
            talk.S(Conversation.ServerIsn, Conversation.ClientIsn + 1, Syn | Ack, ttl: 63);
            talk.C(Conversation.ClientIsn + 1, Conversation.ServerIsn + 1, Ack);
            talk.S(Conversation.ServerIsn + 1, Conversation.ClientIsn + 1, Rst, ttl: 64);
        }

        var forged = Assert.Single(remote.Report().BesideLatency());
        Assert.Equal(FindingTypes.ResetSuspectedForged, forged.Type);
        Assert.Contains("hop limit 64 where the server's other packets had 63", forged.Message);
        Assert.Contains("a bare [R] with no ACK", forged.Message);
        Assert.DoesNotContain("TTL", forged.Message);
        Assert.Equal(["bare-rst", "hop-limit-mismatch"], forged.Evidence.Indicators);
        var own = Assert.Single(local.Report().BesideLatency());
        Assert.Equal(FindingTypes.ResetByEndpoint, own.Type);
        Assert.Contains("reset by the server (this host)", own.Message);
    }

    [Fact]
    public void AResetWithASequenceNumberOutsideTheWindowIsSuspected()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
        talk.Handshake();
        talk.C(Conversation.ClientIsn + 1, Conversation.ServerIsn + 1, Psh | Ack, payload: 100);
        talk.S(Conversation.ServerIsn + 1, Conversation.ClientIsn + 101, Ack, window: 1000);
        talk.C(Conversation.ClientIsn + 1_000_000, 0, Rst); // far beyond what the server would accept

        var finding = Assert.Single(summary.Report().BesideLatency());
        Assert.Equal(FindingTypes.ResetSuspectedForged, finding.Type);
        Assert.Contains("a sequence number outside the receiver's window", finding.Message);
        Assert.Contains("sequence-outside-window", finding.Evidence.Indicators);
    }

    [Fact]
    public void ABareResetWithASequenceNumberBeforeTheWindowIsAStacksAnswerToALateSegmentNotSuspected()
    {
        // The client closed; a late segment of the server's, carrying an old ACK, gets a bare [R] with that ACK as its sequence number.
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
        talk.Handshake();
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.C(c, s, Psh | Ack, payload: 100);
        talk.S(s, c + 100, Ack, window: 1000);
        talk.C(c + 100, s, Psh | Ack, payload: 100);
        talk.S(s, c + 200, Ack, window: 1000);
        talk.C(c + 100, 0, Rst); // before the acknowledged point (c + 200)

        var finding = Assert.Single(summary.Report().BesideLatency());
        Assert.Equal(FindingTypes.ResetBare, finding.Type);
        Assert.Equal(new ResetCounts(), summary.Report().ResetsSuspectedForged);
    }

    [Fact]
    public void DataUnacknowledgedForMoreThanASecondIsAStallNeverAnAllClear()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4) { Time = 5_000_000 };
        talk.Handshake();
        uint c = Conversation.ClientIsn + 1, s = Conversation.ServerIsn + 1;
        talk.C(c, s, Psh | Ack, payload: 100);
        talk.Time += 1_500_000;
        talk.C(c + 100, s, Ack); // still nothing acknowledged 1.5 s later

        var report = summary.Report();
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal((FindingTypes.DataStalled, FindingSeverity.Error), (finding.Type, finding.Severity));
        Assert.StartsWith("100 bytes sent by 169.254.9.2:40000 to 169.254.9.1:80 were never acknowledged: the transfer stalled for 1.5 s", finding.Message);
        Assert.Null(HumanReport.AllClear(report));
    }

    [Fact]
    public void AHandshakeFollowedByNothingIsNotHealthy()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        new Conversation(summary, LinkLayers.Ethernet, Client4, Server4).Handshake();

        var finding = Assert.Single(summary.Report().BesideLatency());
        Assert.Equal(FindingTypes.NoDataAfterHandshake, finding.Type);
        Assert.Contains("request never arrived here", finding.Message);
        Assert.Equal([1L, 3L], finding.Evidence.PacketNumbers);
    }

    [Fact]
    public void AThousandRefusalsAreOneFindingWithAFewSamples()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        for (var port = 0; port < 1000; port++)
        {
            var talk = new Conversation(summary, LinkLayers.Ethernet, Client4 with { Port = (ushort)(20000 + port) }, Server4);
            talk.C(Conversation.ClientIsn, 0, Syn);
            talk.S(0, Conversation.ClientIsn + 1, Rst | Ack);
        }

        var finding = Assert.Single(summary.Report().BesideLatency());
        Assert.Equal(1000, finding.Evidence.Connections);
        Assert.Equal(2000, finding.Evidence.Packets);
        Assert.Equal(FindingEvidence.MaxFlows, finding.Evidence.Flows.Count);
        Assert.Equal(FindingEvidence.MaxPackets, finding.Evidence.PacketNumbers.Count);
        Assert.StartsWith("1000 connections to 169.254.9.1:80 refused", finding.Message);
        // The connections kept for comparing with the other end are bounded too, the rest counted.
        Assert.Equal(ConnectionRecord.Max, summary.Report().ConnectionsWithFindings.Count);
        Assert.Equal(1000 - ConnectionRecord.Max, summary.Report().ConnectionsWithFindingsOmitted);
    }

    [Fact]
    public void NonTcpFramesAreCountedAsOtherPackets()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        summary.Observe(Udp(LinkLayers.Ethernet, Client4, Server4, 100));
        summary.Observe(Arp(LinkLayers.Ethernet));

        var report = summary.Report();
        Assert.Equal(2, report.OtherPackets);
        Assert.Equal(0, report.TcpPackets);
        Assert.Equal(0, report.Connections);
        Assert.Empty(report.BesideLatency());
    }

    [Fact]
    public void IPv6ExtensionHeadersAreWalkedToTheTcpHeader()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        summary.Observe(Tcp(LinkLayers.Ethernet, Client6, Server6, 7, 0, Syn, hopByHop: true));
        summary.Observe(Tcp(LinkLayers.Ethernet, Server6, Client6, 0, 8, Rst | Ack, hopByHop: true));

        var report = summary.Report();
        Assert.Equal(2, report.TcpPackets);
        Assert.Equal(1, report.Refused);
    }

    [Theory]
    [InlineData(LinkLayers.Ethernet, false, false)]
    [InlineData(LinkLayers.Ethernet, true, false)]
    [InlineData(LinkLayers.Ethernet, false, true)]
    [InlineData(LinkLayers.LinuxSll, false, false)]
    [InlineData(LinkLayers.LinuxSll, true, false)]
    public void FramesCutAtAnyLengthNeverThrowAndAreMeasuredFromTheirHeaders(LinkLayers link, bool ipv6, bool hopByHop)
    {
        var client = ipv6 ? Client6 : Client4;
        var server = ipv6 ? Server6 : Server4;
        var data = Tcp(link, server, client, 5001, 1001, Psh | Ack, payload: 1400, hopByHop: hopByHop);
        var headers = data.Length - 1400;
        for (var cut = 0; cut <= data.Length; cut++)
        {
            var summary = new TcpSummary(link);
            summary.Observe(data.AsSpan(0, cut));
            summary.Observe(Tcp(link, client, server, 1001, 6401, Ack, hopByHop: hopByHop));
            var report = summary.Report();
            if (cut >= headers - 4)
            {
                // The ports, sequence, ack, offset and flags are there: the segment counts at its full length.
                Assert.Equal(0, report.UndecodablePackets);
                Assert.Equal(2, report.TcpPackets);
                Assert.Equal(1400, report.LargestAcknowledgedSegment);
            }
            else
            {
                Assert.Equal(1, report.TcpPackets);
                Assert.Equal(1, report.UndecodablePackets + report.OtherPackets);
                Assert.Null(report.LargestAcknowledgedSegment);
            }
        }
    }

    [Fact]
    public void GarbageFramesNeverThrow()
    {
        var random = new Random(20261126);
        foreach (var link in new[] { LinkLayers.Ethernet, LinkLayers.LinuxSll, LinkLayers.Raw, LinkLayers.Null })
        {
            var summary = new TcpSummary(link);
            for (var i = 0; i < 2000; i++)
            {
                var frame = new byte[random.Next(0, 200)];
                random.NextBytes(frame);
                if (frame.Length > 20 && i % 2 == 0)
                {
                    // Mostly IPv4 and IPv6 ethertypes, so the IP and TCP readers get garbage too.
                    var at = link == LinkLayers.LinuxSll ? 14 : 12;
                    frame[at] = (byte)(i % 4 == 0 ? 0x08 : 0x86);
                    frame[at + 1] = (byte)(i % 4 == 0 ? 0x00 : 0xdd);
                    frame[at + 2] = (byte)(i % 4 == 0 ? 0x45 : 0x60);
                }

                summary.Observe(frame);
            }

            var report = summary.Report();
            Assert.Equal(2000, report.TcpPackets + report.OtherPackets + report.UndecodablePackets);
        }
    }
}
