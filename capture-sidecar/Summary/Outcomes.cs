using System.Globalization;

namespace KubeCapture.Agent.Summary;

/// <summary>
/// How connections ended up, added together, and the findings they support. Findings are grouped
/// by what happened and to whom, so a hundred refused retries read as one finding, with a few
/// sample flows and packet numbers. Which end the capture was taken at (the local addresses) decides
/// what can be said: from the client alone a lost SYN and a lost SYN-ACK look the same.
/// </summary>
internal sealed class Outcomes(IReadOnlySet<string> localAddresses)
{
    /// <summary>Data unacknowledged (or a gap unfilled) this long, with the connection still open, is a stall.</summary>
    public const long StallMicroseconds = 1_000_000;

    /// <summary>An application time this long, and ten times the network's round trip, is the application's delay (<see cref="FindingTypes.ApplicationLatency"/>).</summary>
    public const long SlowApplicationMicroseconds = 200_000;

    /// <summary>ICMP errors that quote no tracked connection are grouped by what they say and about whom; past this many groups, by what they say only.</summary>
    private const int MaxIcmpSubjects = 256;

    private readonly Dictionary<(string Type, string Subject), Group> _groups = new();
    private readonly List<ConnectionRecord> _records = [];
    private readonly List<ConnectionRecord> _cleanRecords = [];
    private long _notes;

    /// <summary>Connections with a finding (at most <see cref="ConnectionRecord.Max"/>), for comparing with the other end.</summary>
    public IReadOnlyList<ConnectionRecord> Records => _records;

    public long RecordsOmitted { get; private set; }

    /// <summary>
    /// The first connections without a finding (at most <see cref="ConnectionRecord.Max"/>): what a
    /// connection that is in trouble at the other end looked like here (e.g. data the sender had to
    /// send again that arrived here in order).
    /// </summary>
    public IReadOnlyList<ConnectionRecord> CleanRecords => _cleanRecords;

    public long Connections { get; private set; }

    public long Completed { get; private set; }

    public long WithoutFinalAck { get; private set; }

    public long Unanswered { get; private set; }

    public long Refused { get; private set; }

    /// <summary>Resets suspected forged, by the side they claim to come from and their kind: [R] or [R.].</summary>
    public long ForgedClientBare { get; private set; }

    public long ForgedClientAck { get; private set; }

    public long ForgedServerBare { get; private set; }

    public long ForgedServerAck { get; private set; }

    public long? LargestAcknowledged { get; private set; }

    public long? SmallestLostRetransmitted { get; private set; }

    /// <summary>Connections whose SYN was answered by an ICMP error (unreachable, time exceeded) instead of the server.</summary>
    public long AnsweredByIcmp { get; private set; }

    /// <summary>Data segments sent again, and of those the spurious ones; copies the network made; segments that arrived out of order; SYNs and SYN-ACKs sent again.</summary>
    public long Retransmissions { get; private set; }

    public long SpuriousRetransmissions { get; private set; }

    public long DuplicateSegments { get; private set; }

    public long OutOfOrder { get; private set; }

    public long HandshakeRetransmissions { get; private set; }

    /// <summary>Round trips (handshakes) and response times, as measured here.</summary>
    public LatencyTally Latency { get; } = new();

    private int _icmpSubjects;

    public void Add(TcpConnection c, long now)
    {
        var notes = _notes;
        AddOutcome(c, now);
        if (_notes != notes)
        {
            Keep(c.ToRecord());
        }
        else if (_cleanRecords.Count < ConnectionRecord.Max && c.SawSyn)
        {
            _cleanRecords.Add(c.ToRecord());
        }
    }

    private void Keep(ConnectionRecord record)
    {
        if (_records.Count < ConnectionRecord.Max)
        {
            _records.Add(record);
        }
        else
        {
            RecordsOmitted++;
        }
    }

    private void AddOutcome(TcpConnection c, long now)
    {
        Connections++;
        HandshakeRetransmissions += c.HandshakeRetransmissions;
        var clientLocal = c.Local is LocalEnd.Client or LocalEnd.Both;
        var serverLocal = c.Local is LocalEnd.Server or LocalEnd.Both;
        var flow = $"{c.Client} -> {c.Server}";
        var icmpAnswered = c.Icmp is { Kind: not IcmpErrorKind.PacketTooBig } && c.SawSyn && !c.SawSynAck && !c.Refused && c.Reset is null;
        if (c.Completed)
        {
            Completed++;
        }
        else if (icmpAnswered)
        {
            // Not a silent drop: something on the path, or the server's host, said why.
            AnsweredByIcmp++;
            NoteIcmp(c, c.Icmp!.Value, flow, attempt: true);
        }
        else if (c.Refused)
        {
            Refused++;
            Note(FindingTypes.ConnectionRefused, FindingSeverity.Warning, c.Server, c, flow, c.SynCount + 1, [c.FirstSynFrame, c.RefusalFrame],
                g => $"{Plural(g.Connections, "connection")} to {c.Server} refused: the SYN from {g.Flows[0].Split(" -> ")[0]} was answered with a RST ({Plural(g.Connections, "RST")}, {Plural(g.Packets - g.Connections, "SYN")}): nothing listening on that port.");
        }
        else if (c.SawSyn && c.SawSynAck)
        {
            WithoutFinalAck++;
            Note(FindingTypes.HandshakeIncomplete, FindingSeverity.Error, $"{c.Server}|{clientLocal}", c, flow, c.SynCount + c.SynAckCount,
                [c.FirstSynFrame, c.FirstSynAckFrame, c.LastSynFrame, c.LastSynAckFrame],
                g => DescribeIncomplete(g, c.Server, clientLocal));
        }
        else if (c.SawSyn && c.Reset is null)
        {
            Unanswered++;
            var end = clientLocal ? "client" : serverLocal ? "server" : "between";
            Note(FindingTypes.SynUnanswered, FindingSeverity.Error, $"{c.Server}|{end}", c, flow, c.SynCount, [c.FirstSynFrame, c.LastSynFrame],
                g => DescribeUnanswered(g, c.Server, end));
        }

        if (c.Icmp is { } error && !icmpAnswered)
        {
            NoteIcmp(c, error, flow, attempt: false);
        }

        if (c.Reset is { } reset)
        {
            AddReset(c, reset, flow, clientLocal, serverLocal);
        }

        AddLatency(c, flow);
        var open = (c.Completed || !c.SawSyn) && !c.IsClosed;
        var established = (c.Completed || !c.SawSyn) && c.Reset is null && !c.Refused;
        var closing = c.FromClient.SawFin || c.FromServer.SawFin;
        AddDirection(c, c.FromServer, c.FromClient, c.Server, c.Client, established, closing, now);
        AddDirection(c, c.FromClient, c.FromServer, c.Client, c.Server, established, closing, now);
        if (c.Completed && open && !closing && c.FromClient.Bytes == 0 && c.FromServer.Bytes == 0)
        {
            Note(FindingTypes.NoDataAfterHandshake, FindingSeverity.Warning, c.Server, c, flow, 0, [c.FirstSynFrame, c.CompletionFrame],
                g => $"{Plural(g.Connections, "connection")} to {c.Server} ({g.Flows[0]}{More(g)}) completed the handshake, then carried no data either way and {(g.Connections == 1 ? "was" : "were")} not closed before the capture ended: the {(clientLocal ? "request was never sent, or the server never answered" : "request never arrived here")}. A device in between may have dropped it or reset the connection; capture at the other end to compare.");
        }
    }

    public void Add(Outcomes other)
    {
        Connections += other.Connections;
        Completed += other.Completed;
        WithoutFinalAck += other.WithoutFinalAck;
        Unanswered += other.Unanswered;
        Refused += other.Refused;
        ForgedClientBare += other.ForgedClientBare;
        ForgedClientAck += other.ForgedClientAck;
        ForgedServerBare += other.ForgedServerBare;
        ForgedServerAck += other.ForgedServerAck;
        LargestAcknowledged = Max(LargestAcknowledged, other.LargestAcknowledged);
        SmallestLostRetransmitted = Min(SmallestLostRetransmitted, other.SmallestLostRetransmitted);
        AnsweredByIcmp += other.AnsweredByIcmp;
        Retransmissions += other.Retransmissions;
        SpuriousRetransmissions += other.SpuriousRetransmissions;
        DuplicateSegments += other.DuplicateSegments;
        OutOfOrder += other.OutOfOrder;
        HandshakeRetransmissions += other.HandshakeRetransmissions;
        Latency.Add(other.Latency);
        _icmpSubjects += other._icmpSubjects;
        RecordsOmitted += other.RecordsOmitted;
        foreach (var record in other._records)
        {
            Keep(record);
        }

        _cleanRecords.AddRange(other._cleanRecords.Take(ConnectionRecord.Max - _cleanRecords.Count));

        foreach (var (key, group) in other._groups)
        {
            if (_groups.TryGetValue(key, out var existing))
            {
                existing.Merge(group);
            }
            else
            {
                _groups[key] = group.Copy();
            }
        }
    }

    /// <summary>The findings, most serious first, at most <paramref name="max"/> (the rest counted in <paramref name="omitted"/>).</summary>
    /// <param name="first">What the summary could not read or analyse (<see cref="FindingTypes.CaptureIncomplete"/>, <see cref="FindingTypes.LinkTypeNotAnalysed"/>): ahead of the rest.</param>
    public IReadOnlyList<Finding> Findings(IReadOnlyList<Finding> first, long notTracked, int max, out int omitted)
    {
        var groups = _groups.Values.ToList();
        if (Latency.Responses + Latency.RoundTrips > 0 && !groups.Any(g => g.Type == FindingTypes.ApplicationLatency))
        {
            var describe = Latency.Describe();
            var g = new Group(FindingTypes.Latency, FindingSeverity.Info, _ => describe);
            g.Packets = Latency.Responses;
            if (Latency.Slowest is { } slow)
            {
                g.Frames.AddRange(new[] { slow.RequestFrame, slow.AckFrame, slow.ResponseFrame }.Where(f => f > 0));
            }

            groups.Add(g);
        }

        if (notTracked > 0)
        {
            var g = new Group(FindingTypes.ConnectionsNotTracked, FindingSeverity.Info, _ => $"{Plural(notTracked, "connection")} beyond the {TcpSummary.MaxTrackedConnections} tracked at once were counted but not analysed.");
            g.Connections = notTracked;
            groups.Add(g);
        }

        var findings = first.Concat(groups
            .OrderBy(g => FindingSeverity.Rank(g.Severity))
            .ThenBy(g => Order(g.Type))
            .ThenByDescending(g => g.Connections)
            .ThenByDescending(g => g.Packets)
            .Select(g => g.ToFinding()))
            .ToList();
        omitted = Math.Max(0, findings.Count - max);
        return findings.Count > max ? findings.Take(max).ToList() : findings;
    }

    private static int Order(string type)
    {
        for (var i = 0; i < FindingTypes.All.Count; i++)
        {
            if (FindingTypes.All[i] == type)
            {
                return i;
            }
        }

        return int.MaxValue;
    }

    private void AddReset(TcpConnection c, TcpReset reset, string flow, bool clientLocal, bool serverLocal)
    {
        var side = reset.FromClient ? "client" : "server";
        var senderLocal = reset.FromClient ? clientLocal : serverLocal;
        var ttl = c.IsIPv6 ? "hop limit" : "TTL";
        if (senderLocal)
        {
            // This host's own stack sent it: the capture saw it leave.
            Note(FindingTypes.ResetByEndpoint, FindingSeverity.Warning, $"{flow}|{side}|{reset.Bare}|local", c, flow, 1, [reset.Frame],
                g => $"{Plural(g.Connections, "connection")} {flow} reset by the {side} (this host) with {(reset.Bare ? "a bare [R] (no ACK): it had no connection for a segment it received" : "[R.]: the application aborted it, or closed it with data unread")}.");
            return;
        }

        if (reset.SuspectedForged)
        {
            (ForgedClientBare, ForgedClientAck, ForgedServerBare, ForgedServerAck) = (reset.FromClient, reset.Bare) switch
            {
                (true, true) => (ForgedClientBare + 1, ForgedClientAck, ForgedServerBare, ForgedServerAck),
                (true, false) => (ForgedClientBare, ForgedClientAck + 1, ForgedServerBare, ForgedServerAck),
                (false, true) => (ForgedClientBare, ForgedClientAck, ForgedServerBare + 1, ForgedServerAck),
                _ => (ForgedClientBare, ForgedClientAck, ForgedServerBare, ForgedServerAck + 1),
            };
            var signs = new List<string>();
            var indicators = new List<string>();
            if (reset.Bare)
            {
                signs.Add("a bare [R] with no ACK where a stack answering this connection would send [R.]");
                indicators.Add("bare-rst");
            }

            if (reset.HopLimitMismatch)
            {
                signs.Add($"{ttl} {reset.HopLimit} where the {side}'s other packets had {reset.SideHopLimit}");
                indicators.Add(c.IsIPv6 ? "hop-limit-mismatch" : "ttl-mismatch");
            }

            if (reset.OutsideWindow)
            {
                signs.Add("a sequence number outside the receiver's window");
                indicators.Add("sequence-outside-window");
            }

            Note(FindingTypes.ResetSuspectedForged, FindingSeverity.Error, $"{flow}|{side}|{string.Join(',', signs)}", c, flow, 1, [reset.Frame],
                g => $"{Plural(g.Connections, "connection")} {flow} reset by a RST that claims to come from the {side} but was likely made by a device in between (firewall, NAT, load balancer): {string.Join("; ", signs)}. Capture at the {side} to confirm it never sent it.",
                indicators);
            return;
        }

        if (reset.Bare)
        {
            Note(FindingTypes.ResetBare, FindingSeverity.Warning, $"{flow}|{side}", c, flow, 1, [reset.Frame],
                g => $"{Plural(g.Connections, "connection")} {flow} ended by a bare [R] (no ACK) from the {side}'s address, its {ttl} the same as the {side}'s other packets. A stack sends a bare [R] for a segment it has no connection for (it lost the connection: a restart, a timeout), and a middlebox forging one can copy the {ttl}: from this end the two cannot be told apart; capture at the {side} to see whether it sent it.",
                ["bare-rst"]);
            return;
        }

        Note(FindingTypes.ResetByEndpoint, FindingSeverity.Warning, $"{flow}|{side}|ack", c, flow, 1, [reset.Frame],
            g => $"{Plural(g.Connections, "connection")} {flow} reset by the {side} with [R.]: the application aborted it, or closed it with data unread.");
    }

    private void AddDirection(TcpConnection c, TcpDirection direction, TcpDirection receiverSide, string sender, string receiver, bool established, bool closing, long now)
    {
        LargestAcknowledged = Max(LargestAcknowledged, direction.LargestAcknowledged);
        var (lost, lostFrame) = direction.SmallestUnacknowledgedRetransmitted();
        SmallestLostRetransmitted = Min(SmallestLostRetransmitted, lost);
        Retransmissions += direction.Retransmissions;
        SpuriousRetransmissions += direction.Spurious;
        DuplicateSegments += direction.Duplicates;
        OutOfOrder += direction.OutOfOrder;
        var subject = $"{sender} -> {receiver}";
        AddFlowControl(c, direction, receiverSide, sender, receiver, now);
        var icmp = c.IsIPv6 ? "ICMPv6 'packet too big'" : "ICMP 'fragmentation needed'";
        if (lost is not null && direction.LargestAcknowledged is { } acked && acked < lost)
        {
            var told = c.Icmp is { Kind: IcmpErrorKind.PacketTooBig } ptb && ptb.QuotedSource.StartsWith(c.Key.Address(direction == c.FromClient ? c.ClientIsA : !c.ClientIsA), StringComparison.Ordinal)
                ? $" The {icmp} did come back (packet {c.IcmpFrame}, from {ptb.Sender}, MTU {ptb.Mtu}), yet {sender} kept sending big segments: it is dropped after this capture point (a firewall on {sender}'s host) or ignored."
                : $" A link on the path has a smaller MTU and the {icmp} is not getting back to {sender}.";
            Note(FindingTypes.MtuBlackhole, FindingSeverity.Error, subject, c, subject, direction.Retransmissions, [lostFrame, .. direction.RetransmissionFrames],
                g => $"MTU blackhole suspected on {subject}: segments up to {g.Acked} bytes were acknowledged, segments of {g.Lost} bytes were retransmitted and never acknowledged.{told}",
                acked: acked, lost: lost.Value);
            return;
        }

        // A closed window explains data that waits: flow control (ZeroWindow), not a stall.
        var flowControlled = receiverSide.WindowClosed;
        var gap = established && !flowControlled && direction.HasUnfilledGap && direction.Unacknowledged > 0 && (closing || now - direction.GapTime >= StallMicroseconds);
        var waiting = established && !flowControlled && direction.Unacknowledged > 0 && now - direction.OutstandingSince >= StallMicroseconds;
        if (gap || waiting)
        {
            var bytes = direction.Unacknowledged;
            var seconds = ((now - direction.OutstandingSince) / 1e6).ToString("0.#", CultureInfo.InvariantCulture);
            var retransmissions = direction.Retransmissions;
            var largest = direction.LargestSegment;
            Note(FindingTypes.DataStalled, FindingSeverity.Error, $"{subject}|{gap}", c, subject, retransmissions,
                [direction.LastAcknowledgmentFrame, direction.HighestFrame, .. direction.RetransmissionFrames],
                g => gap
                    ? $"{Plural(bytes, "byte")} that {sender} sent to {receiver} never arrived here{More(g)}: {sender}'s sequence numbers ran {bytes} bytes past the last byte received, and the gap was never filled (largest segment that did arrive: {largest} bytes). Lost on the way; if small segments pass and big ones are lost, suspect an MTU blackhole ({icmp} not getting back to {sender}); a capture at {sender} shows the retransmissions."
                    : $"{Plural(bytes, "byte")} sent by {sender} to {receiver} were never acknowledged{More(g)}: the transfer stalled for {seconds} s with the connection open ({Plural(retransmissions, "retransmission")}). Lost on the way to {receiver}, or its ACKs lost on the way back.");
            return;
        }

        AddResendings(c, direction, sender, receiver, subject);
    }

    /// <summary>
    /// What was sent again, arrived twice or out of order, each named for what it is, as far as this
    /// capture point can tell: only a first copy that never came by is loss.
    /// </summary>
    private void AddResendings(TcpConnection c, TcpDirection direction, string sender, string receiver, string subject)
    {
        var point = direction.Point;
        var (gapFilled, unresolved, undated) = (direction.LostBefore, direction.Unresolved, direction.Ambiguous);
        if (gapFilled + unresolved + undated > 0)
        {
            // Each kind in its own words; counted when more than one is there.
            var several = (gapFilled > 0 ? 1 : 0) + (unresolved > 0 ? 1 : 0) + (undated > 0 ? 1 : 0) > 1;
            string Of(long n, string one, string many) => several ? $"{n} of them" : n == 1 ? one : many;
            var parts = new List<string>();
            if (gapFilled > 0)
            {
                parts.Add(point == CapturePoint.Receiver
                    ? $"{Of(gapFilled, "it", "they")} filled a gap: the first copy never arrived here, lost on the way from {sender}"
                    : $"{Of(gapFilled, "it", "they")} filled a gap: the first copy never came by this point, lost on the way to it");
            }

            if (unresolved > 0)
            {
                parts.Add(point switch
                {
                    CapturePoint.Sender => $"this end cannot tell whether the first {(unresolved == 1 ? "copy was" : "copies were")} lost or only late{(several ? $" (for {unresolved} of them)" : "")}: a capture at {receiver} tells (kubecapture-agent compare)",
                    CapturePoint.Receiver => $"{Of(unresolved, "it", "they")} came by here twice",
                    _ => $"{Of(unresolved, "it", "they")} came by here twice: the first copy was lost after this point, or only late; captures at both ends tell",
                });
            }

            if (undated > 0)
            {
                parts.Add($"{Of(undated, "it", "they")} filled a gap more than a round trip after it opened, and nothing here dates {(undated == 1 ? "it" : "them")} against the segment that opened it (no IP identification on IPv6, the same TCP timestamp): the first copy, late, or a retransmission of a lost one; a capture at {sender} tells (kubecapture-agent compare)");
            }

            var evidence = gapFilled > 0 ? direction.LostFrames : unresolved > 0 ? direction.RetransmissionFrames : direction.AmbiguousFrames;
            var what = unresolved + undated == 0 ? "lost and sent again" : undated == 0 ? "sent again" : "sent again or late";
            Note(FindingTypes.Retransmissions, FindingSeverity.Warning, subject, c, subject, gapFilled + unresolved + undated, evidence,
                g => $"{Plural(g.Packets, "segment")} on {subject} {what}{More(g)}: {string.Join("; ", parts)}.");
        }

        if (direction.Spurious > 0)
        {
            Note(FindingTypes.SpuriousRetransmissions, FindingSeverity.Info, subject, c, subject, direction.Spurious, direction.SpuriousFrames,
                g => point switch
                {
                    CapturePoint.Receiver => $"{Plural(g.Packets, "segment")} on {subject} arrived twice{More(g)}: the first copy had already arrived here and {sender} sent it again anyway: its retransmission timer fired before the ACK got back (delay, jitter or reordering on the path, or late ACKs from {receiver}). Not loss.",
                    CapturePoint.Sender => $"{Plural(g.Packets, "segment")} on {subject} sent again needlessly{More(g)}: {receiver} reported getting them twice (D-SACK), or its ACK echoed the first copy's timestamp: the first copies had arrived. The retransmission timer fired before the ACK got back (delay, jitter or reordering on the path, or late ACKs); not loss.",
                    _ => $"{Plural(g.Packets, "segment")} on {subject} sent again after their first copy had arrived{More(g)}: {receiver} had acknowledged it, or reported getting it twice (D-SACK), or its ACK echoed the first copy's timestamp. Not loss.",
                });
        }

        if (direction.Duplicates > 0)
        {
            Note(FindingTypes.DuplicateSegments, FindingSeverity.Info, subject, c, subject, direction.Duplicates, direction.DuplicateFrames,
                g => point == CapturePoint.Sender
                    ? $"{receiver} reported getting {Plural(g.Packets, "segment")} on {subject} twice that {sender} sent once (D-SACK){More(g)}: the network duplicated them. Not loss."
                    : $"{Plural(g.Packets, "segment")} on {subject} came by twice as identical copies{More(g)} (the same IP identification, or the same TCP timestamps, a moment apart): the network duplicated them; {sender} sent each once. Not loss.");
        }

        if (direction.OutOfOrder > 0)
        {
            Note(FindingTypes.OutOfOrder, FindingSeverity.Info, subject, c, subject, direction.OutOfOrder, direction.OutOfOrderFrames,
                g => $"{Plural(g.Packets, "segment")} on {subject} arrived out of order{More(g)}: each was sent before the segments that came ahead of it (its IP identification or TCP timestamp is the older), so the network reordered them (jitter, several paths). Not loss, not retransmissions.");
        }
    }

    /// <summary>A receiver whose window closed (it stopped reading) or filled: flow control, named with the end that stopped reading and for how long.</summary>
    private void AddFlowControl(TcpConnection c, TcpDirection direction, TcpDirection receiverSide, string sender, string receiver, long now)
    {
        var closings = receiverSide.WindowClosings;
        var resent = direction.FlowControl;
        if (closings == 0 && resent == 0)
        {
            return;
        }

        var closed = receiverSide.WindowClosedMicroseconds + receiverSide.ClosedFor(now);
        var longest = Math.Max(receiverSide.LongestWindowClosedMicroseconds, receiverSide.ClosedFor(now));
        var still = receiverSide.WindowClosed ? ", still closed when the capture ended" : "";
        var probes = receiverSide.ProbesWhileClosed;
        var again = resent > 0 ? $"; {sender} sent {Plural(resent, "segment")} again while the window was closed or full, waiting for {receiver}'s late ACKs" : "";
        var who = receiverSide.Point == CapturePoint.Sender ? $"{receiver} (this host)" : receiver;
        Note(FindingTypes.ZeroWindow, closings > 0 ? FindingSeverity.Warning : FindingSeverity.Info, receiver, c, $"{sender} -> {receiver}", receiverSide.ZeroWindowAdvertisements,
            [receiverSide.FirstZeroWindowFrame, receiverSide.FirstReopenFrame, .. direction.RetransmissionFrames.Take(2)],
            g => closings > 0
                ? $"{who} stopped reading{More(g)}: it closed its receive window to {sender} {Times(closings)}, {Durations.Format(closed)} in all (the longest {Durations.Format(longest)}{still}); {sender} sent {Plural(probes, "window probe")} meanwhile{again}. Flow control, not loss: the application at {receiver} reads slower than {sender} sends, or stopped reading."
                : $"{who}'s receive window filled up{More(g)}{again}. Flow control, not loss: the application at {receiver} reads slower than {sender} sends.");
    }

    /// <summary>
    /// An ICMP error about a connection: what it says, who sent it (the destination's host, or a device
    /// on the path), and, where it answered the SYN, that the attempt was not dropped silently.
    /// </summary>
    private void NoteIcmp(TcpConnection c, IcmpError error, string flow, bool attempt)
    {
        var (type, severity) = IcmpWords.Finding(error);
        var what = IcmpWords.What(error);
        var meaning = IcmpWords.Meaning(error);
        var by = IcmpWords.By(error, localAddresses);
        var count = c.IcmpCount;
        var server = c.Server;
        var quotes = attempt && c.IcmpQuotesSyn ? ", quoting its SYN" : "";
        Note(type, severity, $"{server}|{error.Sender}|{error.Type}|{error.Code}|{attempt}", c, flow, count, [attempt ? c.FirstSynFrame : 0, c.IcmpFrame],
            g => attempt
                ? $"{Plural(g.Connections, "connection attempt")} to {server} ({g.Flows[0]}{More(g)}) answered with ICMP {what} {by}{quotes}: {meaning}. Not dropped silently: the answer came from {(error.FromDestination ? $"{server}'s host" : "the path")}."
                : $"{Plural(g.Connections, "connection")} {flow}{More(g)}: ICMP {what} {by}, about its packets ({Plural(count, "time")}): {meaning}.");
    }

    /// <summary>An ICMP error that quotes no connection tracked here (UDP, or a TCP flow not seen): grouped by what it says and about whom.</summary>
    public void AddIcmp(in IcmpError error, long frame, long time)
    {
        var (type, severity) = IcmpWords.Finding(error);
        var what = IcmpWords.What(error);
        var meaning = IcmpWords.Meaning(error);
        var by = IcmpWords.By(error, localAddresses);
        var protocol = error.QuotedProtocol switch { 6 => "TCP", 17 => "UDP", _ => "IP" };
        var flow = $"{error.QuotedSource} -> {error.QuotedDestination}";
        var destination = error.QuotedDestination;
        var subject = $"{destination}|{error.Sender}|{error.Type}|{error.Code}";
        if (!_groups.ContainsKey((type, subject)) && ++_icmpSubjects > MaxIcmpSubjects)
        {
            subject = $"*|{error.Type}|{error.Code}";
        }

        Note(type, severity, subject, flow, 1, [frame], time, time,
            g => $"{Plural(g.Packets, $"{protocol} packet")} to {destination} ({g.Flows[0]}{More(g)}) answered with ICMP {what} {by}: {meaning}.");
    }

    /// <summary>Round trip and response times; a finding when the application's time dwarfs the network's.</summary>
    private void AddLatency(TcpConnection c, string flow)
    {
        var rtt = c.RoundTripMicroseconds;
        Latency.Add(c);
        if (c.Slowest is not { } slow || !c.HasRoundTrip)
        {
            return;
        }

        // At the server the response's wait is the application's alone; elsewhere it includes up to one round trip.
        var application = slow.Microseconds - (c.Local == LocalEnd.Server ? 0 : rtt);
        if (application < SlowApplicationMicroseconds || application < 10 * rtt)
        {
            return;
        }

        var (server, client, local) = (c.Server, c.Client, c.Local);
        var slowest = c.Responses == 1 ? "" : $" (the slowest of {c.Responses} responses)";
        var acknowledged = slow.AckFrame != 0;
        Note(FindingTypes.ApplicationLatency, FindingSeverity.Warning, server, c, flow, c.Responses, [slow.RequestFrame, slow.AckFrame, slow.ResponseFrame],
            g => local switch
            {
                LocalEnd.Server => $"This host ({server}) answered a request from {client} {Durations.Format(slow.Microseconds)} after it arrived{More(g)}{slowest}{(acknowledged ? $"; its TCP acknowledged the request after {Durations.Format(slow.AckMicroseconds)}" : "")}. The network round trip to {client} is {Durations.Format(rtt)} (the handshake): the delay is in the application here, not the network.",
                _ => $"{server} {(acknowledged ? $"acknowledged a request from {client} in {Durations.Format(slow.AckMicroseconds)} and " : "")}answered {(acknowledged ? "it" : $"a request from {client}")} {Durations.Format(slow.Microseconds)} after it {(local == LocalEnd.Client ? "was sent" : "passed here")}{More(g)}{slowest}, while the network round trip is {Durations.Format(rtt)} (the handshake): the delay is in the application at {server}, not the network.",
            });
    }

    private static string DescribeUnanswered(Group g, string server, string end) => end switch
    {
        "client" =>
            $"{Plural(g.Connections, "connection attempt")} from here to {server} ({g.Flows[0]}{More(g)}): {Plural(g.Packets, "SYN")} sent, no SYN-ACK and no RST came back. From this end a SYN lost on the way and a SYN-ACK lost on the way back look the same: a capture at {server} tells them apart (SYNs answered there: the return path; no SYNs there: dropped before it).",
        "server" =>
            $"{Plural(g.Connections, "connection attempt")} to {server} ({g.Flows[0]}{More(g)}) reached this host ({Plural(g.Packets, "SYN")}) and none was answered, not even with a RST: dropped here after the capture point (this host's own firewall: the capture sees packets before netfilter), or the listener's queue is full.",
        _ =>
            $"{Plural(g.Connections, "connection attempt")} to {server} ({g.Flows[0]}{More(g)}) got no answer seen here ({Plural(g.Packets, "SYN")}, no SYN-ACK, no RST): dropped before reaching {server}, or its answer lost on the way back; captures at both ends tell which.",
    };

    private static string DescribeIncomplete(Group g, string server, bool clientLocal) => clientLocal
        ? $"{Plural(g.Connections, "handshake")} with {server} never completed ({g.Flows[0]}{More(g)}): the SYN-ACK arrived here but this host never sent the final ACK (a firewall on this host, after the capture point?)."
        : $"{Plural(g.Connections, "handshake")} with {server} never completed ({g.Flows[0]}{More(g)}): it answered the SYN with SYN-ACK but the final ACK never came, and the client kept sending its SYN ({Plural(g.Packets, "SYN and SYN-ACK")} in all): the SYN-ACK is not reaching the client. Look at the return path: asymmetric routing, NAT, a stateful firewall.";

    private static string More(Group g) => g.Connections > 1 ? $" and {g.Connections - 1} more" : "";

    private void Note(string type, string severity, string subject, TcpConnection c, string flow, long packets, IReadOnlyList<long> frames,
        Func<Group, string> describe, IReadOnlyList<string>? indicators = null, long acked = 0, long lost = 0) =>
        Note(type, severity, subject, flow, packets, frames, c.FirstTime, c.LastTime, describe, indicators, acked, lost);

    private void Note(string type, string severity, string subject, string flow, long packets, IReadOnlyList<long> frames, long first, long last,
        Func<Group, string> describe, IReadOnlyList<string>? indicators = null, long acked = 0, long lost = 0)
    {
        _notes++;
        if (!_groups.TryGetValue((type, subject), out var group))
        {
            group = new Group(type, severity, describe);
            _groups[(type, subject)] = group;
        }

        group.Add(flow, packets, frames, first, last, indicators ?? [], acked, lost);
    }

    internal static string Plural(long count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";

    private static string Times(long count) => count switch { 1 => "once", 2 => "twice", _ => $"{count} times" };

    private static long? Max(long? a, long? b) => a is null ? b : b is null ? a : Math.Max(a.Value, b.Value);

    private static long? Min(long? a, long? b) => a is null ? b : b is null ? a : Math.Min(a.Value, b.Value);

    /// <summary>Connections with one finding, counted, with a few samples kept (bounded whatever the traffic).</summary>
    private sealed class Group(string type, string severity, Func<Group, string> describe)
    {
        public string Type { get; } = type;

        public string Severity { get; } = severity;

        public long Connections { get; set; }

        public long Packets { get; set; }

        public List<string> Flows { get; } = [];

        public List<long> Frames { get; } = [];

        public List<string> Indicators { get; } = [];

        public long First { get; private set; }

        public long Last { get; private set; }

        public long Acked { get; private set; }

        public long Lost { get; private set; }

        public void Add(string flow, long packets, IReadOnlyList<long> frames, long first, long last, IReadOnlyList<string> indicators, long acked, long lost)
        {
            Connections++;
            Packets += packets;
            if (Flows.Count < FindingEvidence.MaxFlows && !Flows.Contains(flow))
            {
                Flows.Add(flow);
            }

            foreach (var frame in frames)
            {
                if (frame > 0 && Frames.Count < FindingEvidence.MaxPackets && !Frames.Contains(frame))
                {
                    Frames.Add(frame);
                }
            }

            foreach (var indicator in indicators)
            {
                if (!Indicators.Contains(indicator))
                {
                    Indicators.Add(indicator);
                }
            }

            First = First == 0 || (first != 0 && first < First) ? first : First;
            Last = Math.Max(Last, last);
            Acked = Math.Max(Acked, acked);
            Lost = Lost == 0 ? lost : lost == 0 ? Lost : Math.Min(Lost, lost);
        }

        public void Merge(Group other)
        {
            var connections = Connections + other.Connections;
            Add(other.Flows.FirstOrDefault() ?? "", 0, other.Frames, other.First, other.Last, other.Indicators, other.Acked, other.Lost);
            foreach (var flow in other.Flows.Skip(1))
            {
                if (Flows.Count < FindingEvidence.MaxFlows && !Flows.Contains(flow))
                {
                    Flows.Add(flow);
                }
            }

            Connections = connections;
            Packets += other.Packets;
        }

        public Group Copy()
        {
            var copy = new Group(Type, Severity, describe);
            copy.Merge(this);
            return copy;
        }

        public Finding ToFinding() => new()
        {
            Type = Type,
            Severity = Severity,
            Message = describe(this),
            Evidence = new FindingEvidence
            {
                Connections = Connections,
                Packets = Packets,
                Flows = Flows.Where(f => f.Length > 0).ToList(),
                PacketNumbers = Frames.Order().ToList(),
                FirstSeen = First == 0 ? null : Timestamp(First),
                LastSeen = Last == 0 ? null : Timestamp(Last),
                Indicators = Indicators.ToList(),
            },
        };

        private static string Timestamp(long microseconds) =>
            DateTime.UnixEpoch.AddTicks(microseconds * TimeSpan.TicksPerMicrosecond).ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
    }
}
