namespace KubeCapture.Agent.Summary;

/// <summary>
/// One thing the packets show, as data: a stable <see cref="Type"/> (the list is
/// <see cref="FindingTypes"/>, documented in docs/findings.md), how serious it is, one sentence for
/// people, and the evidence to check it in Wireshark. Bounded whatever the traffic: connections with
/// the same finding are grouped, counted, and only a few samples are kept.
/// </summary>
public sealed record Finding
{
    /// <summary>One of <see cref="FindingTypes"/>; never changes meaning.</summary>
    public required string Type { get; init; }

    /// <summary>Error, Warning or Info (see <see cref="FindingSeverity"/>).</summary>
    public required string Severity { get; init; }

    /// <summary>What the packets show, in one plain sentence (or two: the fact, then where to look).</summary>
    public required string Message { get; init; }

    public required FindingEvidence Evidence { get; init; }
}

/// <summary>What a finding stands on: the flows, and packets to find with <c>frame.number == N</c>.</summary>
public sealed record FindingEvidence
{
    public const int MaxFlows = 5;
    public const int MaxPackets = 10;

    /// <summary>Connections this finding groups (0 for capture-wide findings).</summary>
    public long Connections { get; init; }

    /// <summary>Packets this finding counts (SYNs sent, retransmissions, resets, zero windows...).</summary>
    public long Packets { get; init; }

    /// <summary>Up to <see cref="MaxFlows"/> sample flows, "client -> server" (or "sender -> receiver" for one direction's data).</summary>
    public IReadOnlyList<string> Flows { get; init; } = [];

    /// <summary>Up to <see cref="MaxPackets"/> packet numbers in the pcap (1-based, Wireshark's frame.number).</summary>
    public IReadOnlyList<long> PacketNumbers { get; init; } = [];

    /// <summary>First and last time the connections concerned were seen (UTC, microseconds).</summary>
    public string? FirstSeen { get; init; }

    public string? LastSeen { get; init; }

    /// <summary>What gives it away, as stable words: bare-rst, ttl-mismatch, hop-limit-mismatch, sequence-outside-window.</summary>
    public IReadOnlyList<string> Indicators { get; init; } = [];
}

public static class FindingSeverity
{
    public const string Error = "Error";
    public const string Warning = "Warning";
    public const string Info = "Info";

    public static int Rank(string severity) => severity switch
    {
        Error => 0,
        Warning => 1,
        _ => 2,
    };
}

/// <summary>The finding types, stable: tools may match on them. Documented in docs/findings.md.</summary>
public static class FindingTypes
{
    /// <summary>The input ended before its end (a file cut short or with a corrupt record, a live capture libpcap stopped reading): the findings cover what came before.</summary>
    public const string CaptureIncomplete = "CaptureIncomplete";

    /// <summary>Packets of a link type the summary does not decode: counted, not analysed.</summary>
    public const string LinkTypeNotAnalysed = "LinkTypeNotAnalysed";

    /// <summary>The SYN was answered with a RST: nothing listening on that port.</summary>
    public const string ConnectionRefused = "ConnectionRefused";

    /// <summary>SYNs without any answer seen here (no SYN-ACK, no RST).</summary>
    public const string SynUnanswered = "SynUnanswered";

    /// <summary>SYN-ACK sent, the client's final ACK never came: the return path.</summary>
    public const string HandshakeIncomplete = "HandshakeIncomplete";

    /// <summary>A RST that a device in between likely made: its TTL/hop limit or sequence number gives it away.</summary>
    public const string ResetSuspectedForged = "ResetSuspectedForged";

    /// <summary>A bare [R] (no ACK) on a connection: a stack that lost the connection, or a middlebox; one end cannot tell.</summary>
    public const string ResetBare = "ResetBare";

    /// <summary>An endpoint aborted the connection with [R.].</summary>
    public const string ResetByEndpoint = "ResetByEndpoint";

    /// <summary>Segments up to some size acknowledged, bigger ones retransmitted and never acknowledged.</summary>
    public const string MtuBlackhole = "MtuBlackhole";

    /// <summary>Data sent that never arrived, or was never acknowledged, while the connection stayed open or was closed around it.</summary>
    public const string DataStalled = "DataStalled";

    /// <summary>The handshake completed, then no data either way and no close: the request never arrived.</summary>
    public const string NoDataAfterHandshake = "NoDataAfterHandshake";

    /// <summary>Data segments sent again (lost on that leg, or their ACKs lost on the way back).</summary>
    public const string Retransmissions = "Retransmissions";

    /// <summary>Segments that filled a gap within one round trip: reordered on the path (or lost before this point and sent again at once); not counted as retransmissions.</summary>
    public const string OutOfOrder = "OutOfOrder";

    /// <summary>A receiver advertised a zero window: it stopped reading.</summary>
    public const string ZeroWindow = "ZeroWindow";

    /// <summary>An ICMP or ICMPv6 destination unreachable about a flow (a SYN rejected by a firewall on the path, a UDP port nothing listens on), named with who sent it.</summary>
    public const string IcmpDestinationUnreachable = "IcmpDestinationUnreachable";

    /// <summary>An ICMP or ICMPv6 time exceeded about a flow: its TTL or hop limit ran out on the way (a routing loop).</summary>
    public const string IcmpTimeExceeded = "IcmpTimeExceeded";

    /// <summary>ICMP "fragmentation needed" or ICMPv6 "packet too big" about a flow: the path's MTU, told to the sender.</summary>
    public const string IcmpPacketTooBig = "IcmpPacketTooBig";

    /// <summary>Data sent again whose first copy had arrived: the retransmission timer fired early (delay, jitter, reordering, late ACKs); not loss.</summary>
    public const string SpuriousRetransmissions = "SpuriousRetransmissions";

    /// <summary>Identical copies of a segment that the network made; not loss.</summary>
    public const string DuplicateSegments = "DuplicateSegments";

    /// <summary>A server whose response took far longer than the network's round trip: the delay is the application's.</summary>
    public const string ApplicationLatency = "ApplicationLatency";

    /// <summary>The network round trip and response times, where nothing was slow.</summary>
    public const string Latency = "Latency";

    /// <summary>More connections than the summary tracks at once: some were counted, not analysed.</summary>
    public const string ConnectionsNotTracked = "ConnectionsNotTracked";

    /// <summary>Comparing both ends: a RST reached one end in the other's name, and the other end's capture never saw it leave.</summary>
    public const string ResetFromMiddlebox = "ResetFromMiddlebox";

    /// <summary>Comparing both ends: the server sent SYN-ACKs (its capture) and none reached the client (its capture).</summary>
    public const string ReturnPath = "ReturnPath";

    /// <summary>Comparing both ends: SYNs left the client and never reached the server.</summary>
    public const string SilentlyDropped = "SilentlyDropped";

    /// <summary>Comparing both ends: data one side sent (its capture) that never reached the other (its capture), by direction.</summary>
    public const string LossOnOneLeg = "LossOnOneLeg";

    public static IReadOnlyList<string> All { get; } =
    [
        CaptureIncomplete, LinkTypeNotAnalysed, ConnectionRefused, IcmpDestinationUnreachable, IcmpTimeExceeded, SynUnanswered, HandshakeIncomplete,
        ResetSuspectedForged, ResetBare, ResetByEndpoint, MtuBlackhole, IcmpPacketTooBig, DataStalled, NoDataAfterHandshake, ApplicationLatency,
        ZeroWindow, Retransmissions, SpuriousRetransmissions, DuplicateSegments, OutOfOrder, Latency, ConnectionsNotTracked,
        ResetFromMiddlebox, ReturnPath, SilentlyDropped, LossOnOneLeg,
    ];
}
