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

    /// <summary>Feeds one connection's packets, client and server side, with fixed ISNs.</summary>
    private sealed class Conversation(TcpSummary summary, LinkLayers link, Endpoint client, Endpoint server, bool vlan = false)
    {
        public const uint ClientIsn = 1000;
        public const uint ServerIsn = 0xffff_ff00; // the server's data wraps past 2^32

        public void C(uint sequence, uint acknowledgment, byte flags, int payload = 0, ushort window = 64240, byte ttl = 64) =>
            summary.Observe(Tcp(link, client, server, sequence, acknowledgment, flags, payload, window, ttl, vlan));

        public void S(uint sequence, uint acknowledgment, byte flags, int payload = 0, ushort window = 64240, byte ttl = 64) =>
            summary.Observe(Tcp(link, server, client, sequence, acknowledgment, flags, payload, window, ttl, vlan));

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
        Assert.Equal("1 connection, every handshake completed; no refusals, resets or retransmissions.", Assert.Single(report.Findings));
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
        Assert.Equal($"1 connection to {server} refused: the SYN from {client} was answered with a RST (nothing listening on that port).", Assert.Single(report.Findings));
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
        Assert.StartsWith("1 handshake with 169.254.9.1:80 never completed: it answered the SYN with SYN-ACK but the final ACK from 169.254.9.2:40000 never came (1 SYN sent).", Assert.Single(report.Findings));
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
        Assert.StartsWith("1 connection attempt to [fd09::1]:443 got no answer (3 SYNs from [fd09::2]:40000", Assert.Single(report.Findings));
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
        Assert.Equal("1 retransmitted segment on [fd09::1]:443 -> [fd09::2]:40000: packets lost on that leg, or their ACKs lost on the way back.", Assert.Single(report.Findings));
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
        Assert.Equal(
            "MTU blackhole suspected on 169.254.9.1:80 -> 169.254.9.2:40000: segments up to 200 bytes were acknowledged, segments of 1448 bytes were retransmitted and never acknowledged. A link on the path has a smaller MTU and the ICMP 'fragmentation needed' is not getting back.",
            Assert.Single(report.Findings));
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
        Assert.Contains(report.Findings, f => f.StartsWith("1 connection 169.254.9.2:40000 -> 169.254.9.1:80 reset by the client with a bare [R] (no ACK).", StringComparison.Ordinal));
        Assert.Contains(report.Findings, f => f.StartsWith("1 connection 169.254.9.2:40001 -> 169.254.9.1:80 reset by the server with [R.].", StringComparison.Ordinal));
    }

    [Fact]
    public void ResetWithAnotherTtlThanTheServersPacketsIsFlaggedAsForged()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
        talk.Handshake();
        talk.S(Conversation.ServerIsn + 1, Conversation.ClientIsn + 1, Rst | Ack, ttl: 250);

        var finding = Assert.Single(summary.Report().Findings);
        Assert.Contains("TTL 250 vs 64", finding);
        Assert.Contains("likely forged by a device in between", finding);
    }

    [Fact]
    public void ZeroWindowAdvertisementsAreCounted()
    {
        var summary = new TcpSummary(LinkLayers.Ethernet);
        var talk = new Conversation(summary, LinkLayers.Ethernet, Client4, Server4);
        talk.Handshake();
        talk.C(Conversation.ClientIsn + 1, Conversation.ServerIsn + 1, Ack, window: 0);
        talk.C(Conversation.ClientIsn + 1, Conversation.ServerIsn + 1, Ack, window: 0);

        var report = summary.Report();
        Assert.Equal(2, report.ZeroWindowAdvertisements);
        Assert.Contains("2 zero-window advertisements: a receiver stopped reading and told its peer to wait.", report.Findings);
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
        Assert.Contains("already open when the capture began", Assert.Single(report.Findings));
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
        Assert.Empty(report.Findings);
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
