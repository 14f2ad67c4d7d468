using System.Globalization;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>
/// What each data segment one side sent turned out to be, read by tshark from the pcaps at both ends
/// of an IPv4 path: the sender's capture says which segments it sent again (a range that starts before
/// the highest byte it had sent: tshark's retransmission, fast and spurious retransmission, and the
/// "out of order" it calls some of them, not knowing this is the sending end), and each copy keeps
/// its IP identification across the middlebox, so the receiver's capture says which copies arrived,
/// in what order, and which came twice. The ground truth the summary's words are held to.
/// A first copy that never arrived is visible as loss at the receiver only when later bytes came
/// before the copy that replaced it (a gap): the last segment lost and sent again by a tail loss
/// probe arrives in order, and no capture at the receiver can tell it from a first copy.
/// </summary>
internal sealed record SegmentTruth(
    int SentAgain,
    IReadOnlySet<long> RetransmissionFramesAtReceiver,
    IReadOnlySet<long> OriginalFramesAtReceiver,
    int DuplicatesAtReceiver,
    int FirstCopiesNeverArrived,
    int FirstCopiesNeverArrivedSeenAsGaps,
    IReadOnlySet<long> GapFillingRetransmissionFramesAtReceiver,
    int LateFirstCopies)
{
    /// <summary>
    /// Reads the data segments of one direction, <paramref name="direction"/> (a display filter such as
    /// <c>tcp.srcport == 8000</c>), each connection told by <paramref name="connectionPort"/> (the
    /// other end's port field). IPv4 only: the identification is the copy's name.
    /// </summary>
    public static async Task<SegmentTruth> OfAsync(string senderPcap, string receiverPcap, string direction, string connectionPort)
    {
        var filter = $"ip && ({direction}) && tcp.len > 0";
        var sent = await SegmentsAsync(senderPcap, filter, connectionPort);
        var resent = new HashSet<(int Port, int Id)>();
        var firstCopies = new Dictionary<(int Port, long Sequence), int>();
        var highest = new Dictionary<int, long>();
        foreach (var s in sent)
        {
            if (highest.TryGetValue(s.Port, out var high) && s.Sequence < high)
            {
                resent.Add((s.Port, s.Id));
            }
            else
            {
                firstCopies.TryAdd((s.Port, s.Sequence), s.Id);
            }

            highest[s.Port] = Math.Max(high, s.Sequence + s.Length);
        }

        var arrived = new HashSet<(int Port, int Id)>();
        var (retransmissions, originals, duplicates) = (new HashSet<long>(), new HashSet<long>(), 0);
        var firstArrival = new Dictionary<(int Port, long Sequence), bool>(); // per range: was the first copy to arrive a retransmission?
        var filledGap = new Dictionary<(int Port, long Sequence), bool>(); // per range: had later bytes arrived before its first copy?
        var arrivedUpTo = new Dictionary<int, long>();
        var gapFillingRetransmissions = new HashSet<long>();
        foreach (var r in await SegmentsAsync(receiverPcap, filter, connectionPort))
        {
            if (!arrived.Add((r.Port, r.Id)))
            {
                duplicates++;
                continue;
            }

            var again = resent.Contains((r.Port, r.Id));
            (again ? retransmissions : originals).Add(r.Frame);
            firstArrival.TryAdd((r.Port, r.Sequence), again);
            var beyond = arrivedUpTo.TryGetValue(r.Port, out var upTo) && upTo > r.Sequence;
            if (filledGap.TryAdd((r.Port, r.Sequence), beyond) && again && beyond)
            {
                gapFillingRetransmissions.Add(r.Frame);
            }

            arrivedUpTo[r.Port] = Math.Max(upTo, r.Sequence + r.Length);
        }

        var neverArrived = firstCopies.Count(f => !arrived.Contains((f.Key.Port, f.Value)));
        var seenAsGaps = firstCopies.Count(f => !arrived.Contains((f.Key.Port, f.Value)) && filledGap.GetValueOrDefault(f.Key));
        var late = firstCopies.Count(f => firstArrival.TryGetValue(f.Key, out var retransmissionFirst) && retransmissionFirst && arrived.Contains((f.Key.Port, f.Value)));
        return new SegmentTruth(resent.Count, retransmissions, originals, duplicates, neverArrived, seenAsGaps, gapFillingRetransmissions, late);
    }

    private sealed record Segment(long Frame, int Port, int Id, long Sequence, long Length);

    private static async Task<List<Segment>> SegmentsAsync(string pcap, string filter, string connectionPort) =>
    [
        .. (await Tshark.FieldsAsync(pcap, ["frame.number", connectionPort, "ip.id", "tcp.seq", "tcp.len"], filter)).Select(f => new Segment(
            long.Parse(f[0], CultureInfo.InvariantCulture),
            int.Parse(f[1], CultureInfo.InvariantCulture),
            Convert.ToInt32(f[2], 16),
            long.Parse(f[3], CultureInfo.InvariantCulture),
            long.Parse(f[4], CultureInfo.InvariantCulture))),
    ];
}
