namespace KubeCapture.Agent.Summary;

/// <summary>
/// How connections ended up, added together, and the plain-language findings they support. Findings
/// are grouped by what happened and to whom, so a hundred refused retries read as one sentence.
/// </summary>
internal sealed class Outcomes
{
    private readonly Dictionary<(FindingKind Kind, string Subject), FindingGroup> _groups = new();

    public long Connections { get; private set; }

    public long Completed { get; private set; }

    public long WithoutFinalAck { get; private set; }

    public long Unanswered { get; private set; }

    public long Refused { get; private set; }

    public long? LargestAcknowledged { get; private set; }

    public long? SmallestLostRetransmitted { get; private set; }

    public void Add(TcpConnection connection)
    {
        Connections++;
        if (connection.Completed)
        {
            Completed++;
        }
        else if (connection.Refused)
        {
            Refused++;
            Note(FindingKind.Refused, connection.Server, connection.Client, connection.SynCount);
        }
        else if (connection.SawSyn && connection.SawSynAck)
        {
            WithoutFinalAck++;
            Note(FindingKind.NoFinalAck, connection.Server, connection.Client, connection.SynCount);
        }
        else if (connection.SawSyn && connection.Reset is null)
        {
            Unanswered++;
            Note(FindingKind.Unanswered, connection.Server, connection.Client, connection.SynCount);
        }

        if (connection.Reset is { } reset)
        {
            var kind = reset.FromClient ? FindingKind.ResetByClient : FindingKind.ResetByServer;
            var subject = $"{connection.Client} -> {connection.Server}|{(reset.Bare ? "bare" : "ack")}|{(reset.HopLimitMismatch ? $"ttl {reset.HopLimit} vs {reset.SideHopLimit}" : "")}";
            Note(kind, subject, connection.Client, 1);
        }

        AddDirection(connection.FromServer, connection.Server, connection.Client);
        AddDirection(connection.FromClient, connection.Client, connection.Server);
    }

    public void Add(Outcomes other)
    {
        Connections += other.Connections;
        Completed += other.Completed;
        WithoutFinalAck += other.WithoutFinalAck;
        Unanswered += other.Unanswered;
        Refused += other.Refused;
        LargestAcknowledged = Max(LargestAcknowledged, other.LargestAcknowledged);
        SmallestLostRetransmitted = Min(SmallestLostRetransmitted, other.SmallestLostRetransmitted);
        foreach (var (key, group) in other._groups)
        {
            Merge(key, group);
        }
    }

    public IReadOnlyList<string> Findings(long zeroWindows, long notTracked, int max)
    {
        var findings = _groups
            .OrderBy(g => g.Key.Kind)
            .ThenByDescending(g => g.Value.Count)
            .Select(g => Describe(g.Key.Kind, g.Key.Subject, g.Value))
            .ToList();
        if (zeroWindows > 0)
        {
            findings.Add($"{Plural(zeroWindows, "zero-window advertisement")}: a receiver stopped reading and told its peer to wait.");
        }

        if (notTracked > 0)
        {
            findings.Add($"{Plural(notTracked, "connection")} beyond the {TcpSummary.MaxTrackedConnections} tracked at once were counted but not analysed.");
        }

        if (findings.Count == 0 && Connections > 0)
        {
            findings.Add(Completed == Connections
                ? $"{Plural(Connections, "connection")}, every handshake completed; no refusals, resets or retransmissions."
                : $"{Plural(Connections, "connection")} ({Completed} handshakes seen completing, the rest already open when the capture began); no refusals, resets or retransmissions.");
        }

        if (findings.Count > max)
        {
            var more = findings.Count - max + 1;
            findings = [.. findings.Take(max - 1), $"... and {more} more findings."];
        }

        return findings;
    }

    private void AddDirection(TcpDirection direction, string sender, string receiver)
    {
        LargestAcknowledged = Max(LargestAcknowledged, direction.LargestAcknowledged);
        var lost = direction.SmallestUnacknowledgedRetransmitted;
        SmallestLostRetransmitted = Min(SmallestLostRetransmitted, lost);
        var subject = $"{sender} -> {receiver}";
        if (lost is not null && direction.LargestAcknowledged is { } acked && acked < lost)
        {
            Note(FindingKind.MtuBlackhole, subject, sender, 1, acked, lost.Value);
        }
        else if (direction.Retransmissions > 0)
        {
            Note(FindingKind.Retransmissions, subject, sender, direction.Retransmissions);
        }
    }

    private void Note(FindingKind kind, string subject, string sample, long attempts, long acked = 0, long lost = 0) =>
        Merge((kind, subject), new FindingGroup(1, sample, attempts, acked, lost));

    private void Merge((FindingKind, string) key, FindingGroup group)
    {
        _groups[key] = _groups.TryGetValue(key, out var existing)
            ? new FindingGroup(
                existing.Count + group.Count,
                existing.Sample,
                existing.Attempts + group.Attempts,
                Math.Max(existing.Acked, group.Acked),
                existing.Lost == 0 ? group.Lost : Math.Min(existing.Lost, group.Lost))
            : group;
    }

    private static string Describe(FindingKind kind, string subject, FindingGroup g) => kind switch
    {
        FindingKind.Refused =>
            $"{Plural(g.Count, "connection")} to {subject} refused: the SYN from {g.Sample} was answered with a RST (nothing listening on that port).",
        FindingKind.NoFinalAck =>
            $"{Plural(g.Count, "handshake")} with {subject} never completed: it answered the SYN with SYN-ACK but the final ACK from {g.Sample} never came ({Plural(g.Attempts, "SYN")} sent). Look at the return path: asymmetric routing, NAT, a stateful firewall.",
        FindingKind.Unanswered =>
            $"{Plural(g.Count, "connection attempt")} to {subject} got no answer ({Plural(g.Attempts, "SYN")} from {g.Sample}, no SYN-ACK, no RST): dropped silently on the way, or never reached {subject}.",
        FindingKind.MtuBlackhole =>
            $"MTU blackhole suspected on {subject}: segments up to {g.Acked} bytes were acknowledged, segments of {g.Lost} bytes were retransmitted and never acknowledged. A link on the path has a smaller MTU and the ICMP 'fragmentation needed' is not getting back.",
        FindingKind.ResetByClient or FindingKind.ResetByServer => DescribeReset(kind, subject, g),
        FindingKind.Retransmissions =>
            $"{Plural(g.Attempts, "retransmitted segment")} on {subject}: packets lost on that leg, or their ACKs lost on the way back.",
        _ => subject,
    };

    private static string DescribeReset(FindingKind kind, string subject, FindingGroup g)
    {
        var parts = subject.Split('|');
        var who = kind == FindingKind.ResetByClient ? "the client" : "the server";
        var text = $"{Plural(g.Count, "connection")} {parts[0]} reset by {who} with {(parts[1] == "bare" ? "a bare [R] (no ACK)" : "[R.]")}.";
        if (parts[2].Length > 0)
        {
            text += $" The RST's {parts[2].Replace("ttl", "TTL", StringComparison.Ordinal)} on that side's other packets: likely forged by a device in between (firewall, NAT, load balancer); capture at the other end to confirm.";
        }
        else if (parts[1] == "bare")
        {
            text += " A stack answering a segment it has no connection for, or a middlebox: capture at the other end to see who really sent it.";
        }

        return text;
    }

    private static string Plural(long count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";

    private static long? Max(long? a, long? b) => a is null ? b : b is null ? a : Math.Max(a.Value, b.Value);

    private static long? Min(long? a, long? b) => a is null ? b : b is null ? a : Math.Min(a.Value, b.Value);

    private enum FindingKind
    {
        Refused,
        NoFinalAck,
        Unanswered,
        MtuBlackhole,
        ResetByClient,
        ResetByServer,
        Retransmissions,
    }

    private sealed record FindingGroup(long Count, string Sample, long Attempts, long Acked, long Lost);
}
