using KubeCapture.Contracts.Capture;

namespace KubeCapture.Contracts.Summary;

/// <summary>The end-of-capture report for people: tcpdump's counters, the file, and what the packets show.</summary>
public static class HumanReport
{
    public static void Write(TextWriter output, CaptureManifest manifest)
    {
        var stop = Enum.GetValues<StopReason>().First(r => r.ToWire() == manifest.StopReason);
        output.WriteLine($"capture on {manifest.Interface} ({manifest.LinkType}), filter '{manifest.Filter}', snaplen {manifest.Snaplen}");
        if (manifest.CaptureFilter is not null)
        {
            output.WriteLine($"kept {manifest.PacketsAdded} ICMP errors and IPv6 jumbograms about the filter's flows that it does not match itself ({manifest.PacketsDiscarded} about other flows discarded; --exact-filter for the filter alone)");
        }

        output.WriteLine($"stopped: {stop.Describe()} after {Elapsed(manifest)}");
        output.WriteLine($"{manifest.PacketsWritten} packets captured");
        output.WriteLine($"{manifest.PacketsReceived} packets received by filter");
        output.WriteLine($"{manifest.PacketsDroppedByKernel} packets dropped by kernel");
        output.WriteLine($"{manifest.PacketsDroppedByInterface} packets dropped by interface");
        if (manifest.PacketsDroppedByKernel > 0)
        {
            output.WriteLine("WARNING: the kernel dropped packets: this capture is evidence with pages missing (narrow the filter, raise -B, or lower -s).");
        }

        output.WriteLine($"wrote {manifest.Output} ({Quantities.FormatBytes(manifest.BytesWritten)}), sha256 {manifest.Sha256}");
        if (manifest.Summary is { } summary)
        {
            WriteSummary(output, summary);
        }
    }

    public static void WriteSummary(TextWriter output, TcpSummaryReport s)
    {
        output.WriteLine();
        if (Coverage(s.Input) is { } coverage)
        {
            output.WriteLine(coverage);
        }

        if (s.Input.Packets > 0 && s.Input.PacketsNotAnalysed == s.Input.Packets)
        {
            output.WriteLine($"TCP: not analysed (link type {s.Input.LinkType})");
        }
        else
        {
            WriteCounts(output, s);
        }

        if (AllClear(s) is { } clear)
        {
            output.WriteLine($"What the packets show: {clear}");
        }
        else if (s.Findings.Count > 0)
        {
            output.WriteLine("What the packets show:");
        }

        if (s.Findings.Count > 0)
        {
            foreach (var finding in s.Findings)
            {
                output.WriteLine($"  - {finding.Severity} {finding.Type}: {finding.Message}");
                if (finding.Evidence.PacketNumbers.Count > 0)
                {
                    output.WriteLine($"    packets (Wireshark frame.number): {string.Join(", ", finding.Evidence.PacketNumbers)}");
                }
            }

            if (s.FindingsOmitted > 0)
            {
                output.WriteLine($"  ... and {s.FindingsOmitted} more findings.");
            }
        }
    }

    /// <summary>
    /// What of the input the summary read, when that is not simply all of it: where and why reading
    /// stopped, what was not analysed. Null when the summary covers every packet (or says nothing of
    /// its input: a manifest written before the summary recorded it).
    /// </summary>
    public static string? Coverage(SummaryInput input)
    {
        var lines = new List<string>();
        if (input.Incomplete)
        {
            var where = input.FileBytes is > 0 and var size && input.BytesRead is { } read
                ? read < size ? $"; the file's last {size - read} bytes (of {size}) were not read" : $" at the end of the file ({size} bytes): it was cut short"
                : "";
            lines.Add($"INCOMPLETE: reading stopped after packet {input.Packets}: {input.Error}{where}. The summary covers the {input.Packets} packets before.");
        }

        if (input.PacketsNotAnalysed > 0)
        {
            lines.Add($"NOT ANALYSED: {(input.PacketsNotAnalysed == 1 ? "1 packet" : $"{input.PacketsNotAnalysed} packets")} of link type {input.LinkType}, which the summary does not decode.");
        }

        return lines.Count == 0 ? null : string.Join(Environment.NewLine, lines);
    }

    private static void WriteCounts(TextWriter output, TcpSummaryReport s)
    {
        output.WriteLine($"TCP: {s.TcpPackets} packets, {s.Connections} connections; {s.Syns} SYN, {s.SynAcks} SYN-ACK, {s.HandshakesCompleted} handshakes completed");
        output.WriteLine($"  handshakes never completed: {s.HandshakesWithoutFinalAck} without the final ACK, {s.SynsUnanswered} SYNs unanswered; refused: {s.Refused}");
        output.WriteLine($"  resets: from client {s.ResetsFromClient.Bare} [R] + {s.ResetsFromClient.WithAck} [R.], from server {s.ResetsFromServer.Bare} [R] + {s.ResetsFromServer.WithAck} [R.], suspected forged by a device in between {s.ResetsSuspectedForged.Bare} [R] + {s.ResetsSuspectedForged.WithAck} [R.]");
        output.WriteLine($"  retransmitted segments: {s.Retransmissions} (spurious: {s.SpuriousRetransmissions}; handshake: {s.HandshakeRetransmissions}); duplicated by the network: {s.DuplicateSegments}; out of order: {s.OutOfOrderSegments}; zero-window advertisements: {s.ZeroWindowAdvertisements}");
        if (s.IcmpErrors > 0)
        {
            output.WriteLine($"  ICMP errors: {s.IcmpErrors} (connection attempts answered by one: {s.SynsAnsweredByIcmp})");
        }
        output.WriteLine($"  largest segment acknowledged: {Bytes(s.LargestAcknowledgedSegment)}; smallest retransmitted and never acknowledged: {Bytes(s.SmallestUnacknowledgedRetransmittedSegment)}");
        if (s.UndecodablePackets > 0)
        {
            output.WriteLine($"  {s.UndecodablePackets} packets too short to decode (kept in the pcap)");
        }
    }

    /// <summary>
    /// The all-clear sentence: only when nothing was found but the latency figures (the Info finding
    /// <see cref="FindingTypes.Latency"/>), in an input read whole and analysed whole. A capture in
    /// which data stalls or never arrives has a finding (DataStalled, NoDataAfterHandshake...), one in
    /// which segments were sent again, copied or reordered says so too, and one cut short or not
    /// analysed says so, so none reads as healthy; packets too short to decode are said to be outside it.
    /// </summary>
    public static string? AllClear(TcpSummaryReport s)
    {
        if (!s.Input.Covered || s.Findings.Any(f => f.Type != FindingTypes.Latency) || s.FindingsOmitted > 0 || s.Connections == 0)
        {
            return null;
        }

        var connections = s.Connections == 1 ? "1 connection" : $"{s.Connections} connections";
        var clear = s.HandshakesCompleted == s.Connections
            ? $"{connections}, every handshake completed and all data acknowledged; no refusals, resets, retransmissions or stalls."
            : $"{connections} ({s.HandshakesCompleted} handshakes seen completing, the rest already open when the capture began), all data acknowledged; no refusals, resets, retransmissions or stalls.";
        return s.UndecodablePackets > 0
            ? $"{clear} ({s.UndecodablePackets} packets too short to decode are not covered.)"
            : clear;
    }

    private static string Bytes(long? value) => value is null ? "-" : $"{value} bytes";

    private static string Elapsed(CaptureManifest manifest)
    {
        var start = DateTime.Parse(manifest.Start, null, System.Globalization.DateTimeStyles.RoundtripKind);
        var end = DateTime.Parse(manifest.End, null, System.Globalization.DateTimeStyles.RoundtripKind);
        return Quantities.FormatDuration(end - start);
    }
}
