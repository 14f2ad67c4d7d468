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
        var clientLocal = c.Key.HasAddress(c.ClientIsA, localAddresses);
        var serverLocal = c.Key.HasAddress(!c.ClientIsA, localAddresses);
        var flow = $"{c.Client} -> {c.Server}";
        if (c.Completed)
        {
            Completed++;
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

        if (c.Reset is { } reset)
        {
            AddReset(c, reset, flow, clientLocal, serverLocal);
        }

        var open = (c.Completed || !c.SawSyn) && !c.IsClosed;
        var established = (c.Completed || !c.SawSyn) && c.Reset is null && !c.Refused;
        var closing = c.FromClient.SawFin || c.FromServer.SawFin;
        AddDirection(c, c.FromServer, c.Server, c.Client, established, closing, now);
        AddDirection(c, c.FromClient, c.Client, c.Server, established, closing, now);
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
    public IReadOnlyList<Finding> Findings(IReadOnlyList<Finding> first, long zeroWindows, IReadOnlyList<long> zeroWindowFrames, long notTracked, int max, out int omitted)
    {
        var groups = _groups.Values.ToList();
        if (zeroWindows > 0)
        {
            var g = new Group(FindingTypes.ZeroWindow, FindingSeverity.Warning, g => $"{Plural(g.Packets, "zero-window advertisement")}: a receiver stopped reading and told its peer to wait.");
            g.Packets = zeroWindows;
            g.Frames.AddRange(zeroWindowFrames);
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

    private void AddDirection(TcpConnection c, TcpDirection direction, string sender, string receiver, bool established, bool closing, long now)
    {
        LargestAcknowledged = Max(LargestAcknowledged, direction.LargestAcknowledged);
        var (lost, lostFrame) = direction.SmallestUnacknowledgedRetransmitted();
        SmallestLostRetransmitted = Min(SmallestLostRetransmitted, lost);
        var subject = $"{sender} -> {receiver}";
        var icmp = c.IsIPv6 ? "ICMPv6 'packet too big'" : "ICMP 'fragmentation needed'";
        if (lost is not null && direction.LargestAcknowledged is { } acked && acked < lost)
        {
            Note(FindingTypes.MtuBlackhole, FindingSeverity.Error, subject, c, subject, direction.Retransmissions, [lostFrame, .. direction.RetransmissionFrames],
                g => $"MTU blackhole suspected on {subject}: segments up to {g.Acked} bytes were acknowledged, segments of {g.Lost} bytes were retransmitted and never acknowledged. A link on the path has a smaller MTU and the {icmp} is not getting back to {sender}.",
                acked: acked, lost: lost.Value);
            return;
        }

        var gap = established && direction.HasUnfilledGap && direction.Unacknowledged > 0 && (closing || now - direction.GapTime >= StallMicroseconds);
        var waiting = established && direction.Unacknowledged > 0 && now - direction.OutstandingSince >= StallMicroseconds;
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

        if (direction.Retransmissions > 0)
        {
            Note(FindingTypes.Retransmissions, FindingSeverity.Warning, subject, c, subject, direction.Retransmissions, direction.RetransmissionFrames,
                g => $"{Plural(g.Packets, "retransmitted segment")} on {subject}: packets lost on that leg, or their ACKs lost on the way back.");
        }

        if (direction.OutOfOrder > 0)
        {
            Note(FindingTypes.OutOfOrder, FindingSeverity.Info, subject, c, subject, direction.OutOfOrder, direction.OutOfOrderFrames,
                g => $"{Plural(g.Packets, "segment")} on {subject} arrived out of order (each filled a gap within one round trip of the segment after it): reordered on the path, or lost before this point and sent again at once. Not counted as retransmissions.");
        }
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
        Func<Group, string> describe, IReadOnlyList<string>? indicators = null, long acked = 0, long lost = 0)
    {
        _notes++;
        if (!_groups.TryGetValue((type, subject), out var group))
        {
            group = new Group(type, severity, describe);
            _groups[(type, subject)] = group;
        }

        group.Add(flow, packets, frames, c.FirstTime, c.LastTime, indicators ?? [], acked, lost);
    }

    private static string Plural(long count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";

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
