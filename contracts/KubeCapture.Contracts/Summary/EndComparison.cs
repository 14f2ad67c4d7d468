namespace KubeCapture.Contracts.Summary;

/// <summary>
/// Two captures of the same conversations, one at each end, compared: what only both ends can
/// tell. Connections are matched by the client's initial sequence number, which survives the path
/// (addresses and ports may be translated on the way; clocks differ between hosts and are not used).
/// Which end a capture is comes from its summary's local addresses. Data lost on the way, or sent
/// again needlessly, is judged only when both captures saw the connection from its SYN to its end and
/// neither capture missed packets itself (kernel drops, a capture cut short): otherwise the capture,
/// not the path, could have lost them.
/// </summary>
public static class EndComparison
{
    public static IReadOnlyList<Finding> Compare(TcpSummaryReport first, TcpSummaryReport second, bool capturesMissedPackets = false)
    {
        capturesMissedPackets |= first.Input.Incomplete || second.Input.Incomplete;
        var groups = new Dictionary<(string Type, string Subject), List<(ConnectionRecord Record, long Frame, IReadOnlyList<string> Indicators, string Message)>>();
        foreach (var (here, there) in new[] { (first, second), (second, first) })
        {
            var local = new HashSet<string>(here.LocalAddresses, StringComparer.Ordinal);
            var theirs = there.ConnectionsWithFindings.Concat(there.ConnectionsWithoutFindings).Where(r => r.ClientIsn != 0).GroupBy(r => r.ClientIsn).ToDictionary(g => g.Key, g => g.First());
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
                foreach (var (type, frame, indicators, message) in Judge(r, other, clientHere, complete, !capturesMissedPackets))
                {
                    // Loss is told per direction: the leg from this end.
                    var key = (type, type is FindingTypes.LossOnOneLeg or FindingTypes.SpuriousRetransmissions ? $"{r.Server}|{clientHere}" : r.Server);
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

    private static IEnumerable<(string Type, long Frame, IReadOnlyList<string> Indicators, string Message)> Judge(ConnectionRecord r, ConnectionRecord? other, bool clientHere, bool otherComplete, bool judgeLoss)
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

        if (clientHere && otherComplete && other is null && r.Syns > 0 && r.SynAcks == 0 && !r.Refused && r.Reset is null && r.Icmp is null)
        {
            yield return (FindingTypes.SilentlyDropped, r.FirstSynFrame, [],
                $"{r.Syns} SYNs left the client (its capture) and none reached the server (its capture shows no packet of this connection): dropped silently in between. Look at firewalls, security groups and routing on the way to the server.");
        }

        // This end sent, the other received: what left here and never arrived there, retransmissions included.
        var (sentBytes, arrivedBytes) = clientHere ? (r.ClientWireBytes, other?.ClientWireBytes) : (r.ServerWireBytes, other?.ServerWireBytes);
        var sentAgain = clientHere ? r.ClientRetransmissions : r.ServerRetransmissions;
        if (judgeLoss && other is not null && r.Closed && other.Closed && sentAgain > 0 && arrivedBytes >= sentBytes)
        {
            var (from, to) = clientHere ? ("client", "server") : ("server", "client");
            yield return (FindingTypes.SpuriousRetransmissions, 0, [$"{from}-to-{to}"],
                $"the {from} sent {sentAgain} segments again (its capture), and the {to}'s capture shows every one of the {sentBytes} payload bytes the {from} sent arriving ({arrivedBytes} arrived, copies included): the first copies had arrived, so the retransmissions were spurious, not loss. The {from}'s retransmission timer fired before the ACKs got back: delay, jitter or reordering on the path, or late ACKs.");
        }

        if (judgeLoss && other is not null && r.Closed && other.Closed && arrivedBytes < sentBytes)
        {
            var (from, to) = clientHere ? ("client", "server") : ("server", "client");
            var lost = sentBytes - arrivedBytes.Value;
            var (back, backArrived) = clientHere ? (r.ServerWireBytes, other.ServerWireBytes) : (r.ClientWireBytes, other.ClientWireBytes);
            var otherLeg = back == 0 ? "" : backArrived >= back ? $" The {to} -> {from} leg lost nothing ({back} bytes sent, all arrived)." : "";
            yield return (FindingTypes.LossOnOneLeg, 0, [$"{from}-to-{to}"],
                $"{lost} of the {sentBytes} payload bytes the {from} sent toward the {to} (retransmissions included, its capture) never reached the {to} ({arrivedBytes} arrived, its capture): lost on the {from} -> {to} leg.{otherLeg} Loss in one direction only points at that direction's path: a congested or faulty link, a policer or rate limit, or an MTU or offload problem on the way to the {to}.");
        }
    }

    private static Finding ToFinding(string type, List<(ConnectionRecord Record, long Frame, IReadOnlyList<string> Indicators, string Message)> list)
    {
        var (first, _, _, message) = list[0];
        var connections = list.Count == 1 ? "1 connection" : $"{list.Count} connections";
        var flows = list.Select(x => $"{x.Record.Client} -> {x.Record.Server}").Distinct().ToList();
        var more = list.Count > 1 ? $" and {list.Count - 1} more" : "";
        var capture = type == FindingTypes.ReturnPath ? "the server's" : type == FindingTypes.SilentlyDropped ? "the client's" : "the receiving end's";
        var byBytes = type is FindingTypes.LossOnOneLeg or FindingTypes.SpuriousRetransmissions;
        return new Finding
        {
            Type = type,
            // Some loss on a leg is what TCP recovers from; it explains slowness, not a failure. Spurious retransmissions are no loss at all.
            Severity = type switch
            {
                FindingTypes.LossOnOneLeg => FindingSeverity.Warning,
                FindingTypes.SpuriousRetransmissions => FindingSeverity.Info,
                _ => FindingSeverity.Error,
            },
            Message = $"{connections} to {first.Server} ({flows[0]}{more}): {message}" + (byBytes ? "" : $" (Packet numbers: {capture} pcap.)"),
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
