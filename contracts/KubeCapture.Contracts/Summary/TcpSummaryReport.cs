namespace KubeCapture.Contracts.Summary;

/// <summary>
/// What the TCP packets of a capture show, in counts and in plain words. Counts of connections are
/// per connection (a 4-tuple from its SYN); counts of segments and resets are per packet.
/// </summary>
public sealed record TcpSummaryReport
{
    /// <summary>What of the input was read and analysed: every packet, or where and why reading stopped.</summary>
    public SummaryInput Input { get; init; } = new();

    /// <summary>TCP packets whose headers were decoded.</summary>
    public long TcpPackets { get; init; }

    /// <summary>Packets that were not TCP (UDP, ICMP, ARP, ...).</summary>
    public long OtherPackets { get; init; }

    /// <summary>Packets too short or malformed to decode (the capture keeps them anyway).</summary>
    public long UndecodablePackets { get; init; }

    /// <summary>Distinct connections seen (one per SYN, or per 4-tuple already open when capture began).</summary>
    public long Connections { get; init; }

    /// <summary>Connections not tracked because the tracking table was full (their packets still count).</summary>
    public long ConnectionsNotTracked { get; init; }

    /// <summary>SYN packets (without ACK), retransmitted SYNs included.</summary>
    public long Syns { get; init; }

    /// <summary>SYN-ACK packets, repeats included.</summary>
    public long SynAcks { get; init; }

    /// <summary>Connections whose handshake completed: SYN, SYN-ACK, then the client's ACK.</summary>
    public long HandshakesCompleted { get; init; }

    /// <summary>SYN answered by SYN-ACK, but the client's final ACK never came: look at the return path.</summary>
    public long HandshakesWithoutFinalAck { get; init; }

    /// <summary>SYN with no answer at all in the capture: dropped on the way, or never arrived.</summary>
    public long SynsUnanswered { get; init; }

    /// <summary>Connections refused: the SYN was answered by RST (nothing listening).</summary>
    public long Refused { get; init; }

    public ResetCounts ResetsFromClient { get; init; } = new();

    public ResetCounts ResetsFromServer { get; init; } = new();

    /// <summary>
    /// Resets that claim to come from the client or the server but were likely made by a device in
    /// between (TTL/hop limit unlike the side's other packets, or a sequence number outside the
    /// window): counted here, not in <see cref="ResetsFromClient"/> or <see cref="ResetsFromServer"/>.
    /// </summary>
    public ResetCounts ResetsSuspectedForged { get; init; } = new();

    /// <summary>Data segments whose sequence range was sent again (not the copies the network made, not reordered ones).</summary>
    public long Retransmissions { get; init; }

    /// <summary>Of <see cref="Retransmissions"/>: those whose first copy had arrived (seen at the receiver, acknowledged, reported twice by D-SACK, or its timestamp echoed).</summary>
    public long SpuriousRetransmissions { get; init; }

    /// <summary>Identical copies of a segment seen again (the same IP identification or TCP timestamps): made by the network, not sent twice.</summary>
    public long DuplicateSegments { get; init; }

    /// <summary>Segments that filled a gap and were sent before the segment that opened it: reordered on the way, not sent again.</summary>
    public long OutOfOrderSegments { get; init; }

    /// <summary>SYN and SYN-ACK packets sent again for the same connection.</summary>
    public long HandshakeRetransmissions { get; init; }

    /// <summary>Packets advertising a receive window of zero (the receiver is not keeping up).</summary>
    public long ZeroWindowAdvertisements { get; init; }

    /// <summary>ICMP and ICMPv6 errors (destination unreachable, packet too big, time exceeded); counted in <see cref="OtherPackets"/> too.</summary>
    public long IcmpErrors { get; init; }

    /// <summary>Connection attempts whose SYN was answered by an ICMP error instead of the server: rejected, not dropped silently.</summary>
    public long SynsAnsweredByIcmp { get; init; }

    /// <summary>Network round trips and response times as measured here; null when nothing was measured.</summary>
    public LatencyReport? Latency { get; init; }

    /// <summary>Largest TCP payload that the other side acknowledged.</summary>
    public long? LargestAcknowledgedSegment { get; init; }

    /// <summary>Smallest TCP payload that was retransmitted and never acknowledged.</summary>
    public long? SmallestUnacknowledgedRetransmittedSegment { get; init; }

    /// <summary>The capture host's addresses the findings were told with (which end the capture is); empty: unknown.</summary>
    public IReadOnlyList<string> LocalAddresses { get; init; } = [];

    /// <summary>What the packets show, most serious first (none for healthy traffic).</summary>
    public IReadOnlyList<Finding> Findings { get; init; } = [];

    /// <summary>Findings left out to keep the summary small (the most serious are kept).</summary>
    public int FindingsOmitted { get; init; }

    /// <summary>The connections behind the findings (at most <see cref="ConnectionRecord.Max"/>), for comparing with a capture at the other end.</summary>
    public IReadOnlyList<ConnectionRecord> ConnectionsWithFindings { get; init; } = [];

    /// <summary>Connections with findings left out of <see cref="ConnectionsWithFindings"/>.</summary>
    public long ConnectionsWithFindingsOmitted { get; init; }

    /// <summary>The first connections without a finding (at most <see cref="ConnectionRecord.Max"/>), for the other end's comparison.</summary>
    public IReadOnlyList<ConnectionRecord> ConnectionsWithoutFindings { get; init; } = [];
}

/// <summary>
/// How much of its input a summary covers. A file cut short, a corrupt record, a live capture that
/// libpcap stopped reading, or packets of a link type the summary does not decode: each is said here,
/// so a summary never reads as covering what it did not see.
/// </summary>
public sealed record SummaryInput
{
    /// <summary>Packets read, every one numbered (Wireshark's frame.number).</summary>
    public long Packets { get; init; }

    /// <summary>libpcap's name for the input's link type (EN10MB, LINUX_SLL, IEEE802_11_RADIO...).</summary>
    public string? LinkType { get; init; }

    /// <summary>The link type's DLT_ number.</summary>
    public int LinkTypeValue { get; init; }

    /// <summary>Packets of a link type the summary does not decode: counted, never analysed.</summary>
    public long PacketsNotAnalysed { get; init; }

    /// <summary>Reading stopped before the input's end: a file that ends early or holds a corrupt record, or a live capture libpcap stopped reading.</summary>
    public bool Incomplete { get; init; }

    /// <summary>Why reading stopped early, in libpcap's words.</summary>
    public string? Error { get; init; }

    /// <summary>For a file: how far into it libpcap read, and its size.</summary>
    public long? BytesRead { get; init; }

    public long? FileBytes { get; init; }

    /// <summary>The summary covers all of its input: read to the end, every packet of a link type it decodes.</summary>
    public bool Covered => !Incomplete && PacketsNotAnalysed == 0;
}

/// <summary>
/// Latency as measured at the capture point, in microseconds: the network round trip of each handshake
/// (the last SYN to the ACK that completes it), and the time from each request's last segment to the
/// response's first (at the client a round trip is included; at the server it is the application's own).
/// </summary>
public sealed record LatencyReport
{
    public long RoundTrips { get; init; }

    public long? RoundTripMinMicroseconds { get; init; }

    public long? RoundTripMaxMicroseconds { get; init; }

    public long Responses { get; init; }

    public long? ResponseMinMicroseconds { get; init; }

    public long? ResponseMeanMicroseconds { get; init; }

    public long? ResponseMaxMicroseconds { get; init; }
}

/// <summary>Resets split by kind: a bare [R] versus [R.] (RST with ACK).</summary>
public sealed record ResetCounts
{
    public long Bare { get; init; }

    public long WithAck { get; init; }
}
