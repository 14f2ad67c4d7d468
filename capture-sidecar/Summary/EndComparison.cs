namespace KubeCapture.Agent.Summary;

/// <summary>
/// Two captures of the same conversations, one at each end, compared: what only both ends can
/// tell. Connections are matched by the client's initial sequence number, which survives the path
/// (addresses and ports may be translated on the way; clocks differ between hosts and are not used).
/// Which end a capture is comes from its summary's local addresses.
/// </summary>
public static class EndComparison
{
    public static IReadOnlyList<Finding> Compare(TcpSummaryReport first, TcpSummaryReport second)
    {
        var groups = new Dictionary<(string Type, string Subject), List<(ConnectionRecord Record, long Frame, IReadOnlyList<string> Indicators, string Message)>>();
        foreach (var (here, there) in new[] { (first, second), (second, first) })
        {
            var local = new HashSet<string>(here.LocalAddresses, StringComparer.Ordinal);
            var theirs = there.ConnectionsWithFindings.Where(r => r.ClientIsn != 0).GroupBy(r => r.ClientIsn).ToDictionary(g => g.Key, g => g.First());
            var complete = there.ConnectionsWithFindingsOmitted == 0;
            foreach (var r in here.ConnectionsWithFindings.Where(r => r.ClientIsn != 0))
            {
                var clientHere = local.Contains(r.ClientAddress);
                var serverHere = local.Contains(r.ServerAddress);
                if (clientHere == serverHere)
                {
                    continue; // not one end of this connection, or both
                }

                theirs.TryGetValue(r.ClientIsn, out var other);
                foreach (var (type, frame, indicators, message) in Judge(r, other, clientHere, complete))
                {
                    var key = (type, r.Server);
                    if (!groups.TryGetValue(key, out var list))
                    {
                        groups[key] = list = [];
                    }

                    list.Add((r, frame, indicators, message));
                }
            }
        }

        return groups.Select(g => ToFinding(g.Key.Type, g.Value)).OrderBy(f => f.Type, StringComparer.Ordinal).ToList();
    }

    private static IEnumerable<(string Type, long Frame, IReadOnlyList<string> Indicators, string Message)> Judge(ConnectionRecord r, ConnectionRecord? other, bool clientHere, bool otherComplete)
    {
        var side = clientHere ? "server" : "client";
        if (r.Reset is { } reset && reset.FromClient != clientHere && other is not null && !(other.Reset is { } sent && sent.FromClient == reset.FromClient))
        {
            // A RST that reached this end in the other end's name, which the other end's capture never saw leave.
            var signs = new List<string>();
            var indicators = new List<string>();
            if (reset.Bare)
            {
                signs.Add("a bare [R] without ACK");
                indicators.Add("bare-rst");
            }

            var ttl = r.ClientAddress.Contains(':', StringComparison.Ordinal) ? "hop limit" : "TTL";
            if (reset.SideHopLimit != 0 && reset.SideHopLimit != reset.HopLimit)
            {
                signs.Add($"{ttl} {reset.HopLimit} where the {side}'s other packets had {reset.SideHopLimit}");
                indicators.Add(ttl == "TTL" ? "ttl-mismatch" : "hop-limit-mismatch");
            }

            var giveaways = (signs.Count > 0 ? $" What gives it away here: {string.Join("; ", signs)}." : "") +
                (reset.SideHopLimit == reset.HopLimit ? $" Its {ttl} matches the {side}'s own packets: this end alone could not tell." : "");
            yield return (FindingTypes.ResetFromMiddlebox, reset.Frame, indicators,
                $"a RST claiming to come from the {side} reached the {(clientHere ? "client" : "server")}, but the {side}'s own capture shows it never sent one: a device in between made it (a firewall, NAT or load balancer clearing a connection it considers dead).{giveaways} Look at idle timeouts on the path; TCP keepalives below them keep such connections alive.");
        }

        if (!clientHere && r.SynAcks > 0 && !r.Completed && other is { SynAcks: 0 })
        {
            yield return (FindingTypes.ReturnPath, r.FirstSynAckFrame, [],
                $"the server answered with SYN-ACK ({r.SynAcks} sent, its capture) and none reached the client ({other.Syns} SYNs sent, no SYN-ACK in its capture): the return path drops them. Look at asymmetric routing, NAT, a stateful firewall that saw only half the conversation.");
        }

        if (clientHere && otherComplete && other is null && r.Syns > 0 && r.SynAcks == 0 && !r.Refused && r.Reset is null)
        {
            yield return (FindingTypes.SilentlyDropped, r.FirstSynFrame, [],
                $"{r.Syns} SYNs left the client (its capture) and none reached the server (its capture shows no packet of this connection): dropped silently in between. Look at firewalls, security groups and routing on the way to the server.");
        }
    }

    private static Finding ToFinding(string type, List<(ConnectionRecord Record, long Frame, IReadOnlyList<string> Indicators, string Message)> list)
    {
        var (first, _, _, message) = list[0];
        var connections = list.Count == 1 ? "1 connection" : $"{list.Count} connections";
        var flows = list.Select(x => $"{x.Record.Client} -> {x.Record.Server}").Distinct().ToList();
        var more = list.Count > 1 ? $" and {list.Count - 1} more" : "";
        var capture = type == FindingTypes.ReturnPath ? "the server's" : type == FindingTypes.SilentlyDropped ? "the client's" : "the receiving end's";
        return new Finding
        {
            Type = type,
            Severity = FindingSeverity.Error,
            Message = $"{connections} to {first.Server} ({flows[0]}{more}): {message} (Packet numbers: {capture} pcap.)",
            Evidence = new FindingEvidence
            {
                Connections = list.Count,
                Packets = list.Count,
                Flows = flows.Take(FindingEvidence.MaxFlows).ToList(),
                PacketNumbers = list.Select(x => x.Frame).Where(f => f > 0).Distinct().Order().Take(FindingEvidence.MaxPackets).ToList(),
                Indicators = list.SelectMany(x => x.Indicators).Distinct().ToList(),
            },
        };
    }
}
