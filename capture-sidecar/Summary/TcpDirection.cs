using System.Runtime.CompilerServices;
using static KubeCapture.Agent.Summary.TcpHeaderReader;

namespace KubeCapture.Agent.Summary;

/// <summary>
/// One side of a connection: the data it sends (the highest sequence, segments still waiting for an
/// ACK, gaps in what passed here, what it sent again and why) and the receive window it advertises for
/// the other side's data (closed, for how long, probed how often).
/// </summary>
/// <remarks>
/// A data segment that does not start past everything seen before is one of these, told apart
/// from the segment itself and what came before, never from a guess about the network:
/// <list type="bullet">
/// <item>out of order: it fills a gap, and it was sent before the segment that opened the gap (its
/// IPv4 identification, which Linux and Windows raise by one per packet, or its TCP timestamp, is the
/// older): reordered on the way;</item>
/// <item>a duplicate: the same sequence range with the same identification (or timestamps) as a copy
/// seen a moment before: the network copied it, the sender sent it once;</item>
/// <item>a retransmission that fills a gap: sent after the segment that opened it, so the first copy
/// never came by here: lost before this point;</item>
/// <item>a retransmission of bytes that came by before: spurious where the capture is the receiver's
/// (or the receiver had acknowledged them), flow control when the receiver's window was closed or
/// full; at the sender it is spurious only on the receiver's word, when it reports the copy twice
/// (D-SACK) or its ACK echoes the first copy's timestamp, and otherwise this end cannot tell;</item>
/// <item>the first copy of bytes a retransmission brought before it: late, and that retransmission
/// needless.</item>
/// </list>
/// A gap filled later than a round trip by a segment nothing dates (IPv6 without identification,
/// timestamps in the same millisecond) is said to be either, not called loss.
/// </remarks>
internal sealed class TcpDirection(CapturePoint point)
{
    private const int MaxPending = 64; // a power of two: ring indexes wrap with a mask
    private const int Samples = 4;
    private const int RecentCount = 4; // a power of two, grown to RecentCountInDisorder at the first gap
    private const int RecentCountInDisorder = 256; // a late first copy may come after a hundred others (a slow lane on the path)
    private const int Gaps = 16; // grown, up to MaxGaps, while more are open at once
    private const int MaxGaps = 256; // a lossy path with a wide window: every fifth segment lost leaves 20 holes in 100
    private const int RecentCopies = 32; // a power of two

    // Unacknowledged segments, oldest first, in a ring that grows to MaxPending and then drops its
    // oldest entry for each new one. Grown on demand, so quiet connections stay small.
    private PendingSegment[] _pending = [];
    private int _head;
    private int _count;
    private bool _started;
    private uint _next;

    // Everything the sender's sequence numbers say it sent (zero-length segments and FIN included),
    // and what the receiver acknowledged of it: the difference is what never arrived, or is in flight.
    private bool _hasHighest;
    private uint _highest;
    private bool _hasAcknowledged;
    private uint _acknowledged;
    private long _outstandingSince;

    // The last few segments of new data, for telling a copy the network made from a retransmission,
    // and a first copy that comes late from the retransmission that came before it: a few, and more
    // once a gap shows the path reorders.
    private RecentSegment[]? _recent;
    private int _recentNext;

    // The segment that last advanced _next: what a later gap filler is compared with.
    private SegmentIdentity _newest;
    private int _ipIdSteps;
    private int _ipIdBreaks;

    // Gaps in what passed here (a later segment came first), oldest first, until filled.
    private Gap[]? _gaps;
    private int _gapCount;

    // The last gaps filled by a retransmission (the first copy never came by): should the first copy
    // come after all, it was late, not lost. And the last retransmissions settled by an ACK, for a
    // D-SACK that comes after it.
    private RecentCopy[]? _lateFills;
    private int _lateFillNext;
    private RecentCopy[]? _settled;
    private int _settledNext;

    private long[]? _retransmissionFrames;
    private long[]? _outOfOrderFrames;
    private long[]? _duplicateFrames;
    private long[]? _spuriousFrames;
    private long[]? _lostFrames;
    private long[]? _ambiguousFrames;

    // The window this side advertises for the other side's data.
    private long _closedSince;

    public CapturePoint Point { get; } = point;

    public byte LastHopLimit { get; set; }

    public ushort LastWindow { get; set; }

    public byte WindowShift { get; set; } = NoWindowScale;

    /// <summary>This side's SYN (or SYN-ACK) was seen: its window scale is known.</summary>
    public bool SawSynSegment { get; set; }

    public bool SawFin { get; private set; }

    /// <summary>Data segments sent again (duplicates the network made and reordered ones are not).</summary>
    public long Retransmissions { get; private set; }

    /// <summary>Of those: their first copy had arrived (seen at the receiver, acknowledged, reported twice by D-SACK, or its timestamp echoed).</summary>
    public long Spurious { get; private set; }

    /// <summary>Of those: sent while the receiver's window was closed or full: flow control.</summary>
    public long FlowControl { get; private set; }

    /// <summary>Of those: filled a gap here: the first copy never came by this point.</summary>
    public long LostBefore { get; private set; }

    /// <summary>
    /// Segments that filled a gap more than a round trip after it opened, with nothing to date them
    /// against the segment that opened it (IPv6: no identification; the same TCP timestamp): the
    /// first copy late, or a retransmission of a lost one. Not counted as either.
    /// </summary>
    public long Ambiguous { get; private set; }

    public IReadOnlyList<long> AmbiguousFrames => Frames(_ambiguousFrames);

    /// <summary>Segments that filled a gap and were sent before the segment that opened it: reordered on the way.</summary>
    public long OutOfOrder { get; private set; }

    /// <summary>Copies of a segment the network made (same identification or timestamps), or (at the sender) that the receiver reported getting twice though it was sent once.</summary>
    public long Duplicates { get; private set; }

    /// <summary>Retransmissions that are neither spurious, nor flow control, nor known to be lost: what this capture point cannot tell.</summary>
    public long Unresolved => Retransmissions - Spurious - FlowControl - LostBefore;

    /// <summary>Payload bytes that came by here for the first time (new data, and the data of gaps filled).</summary>
    public long Bytes { get; private set; }

    /// <summary>
    /// Payload bytes of every data segment that passed this capture point, retransmissions included:
    /// what the sender put on the wire (at its end) or what arrived (at the other). Unlike a segment
    /// count it does not depend on how offloads (TSO/GRO) cut the stream at either end.
    /// </summary>
    public long WireBytes { get; private set; }

    /// <summary>Largest payload seen in this direction.</summary>
    public int LargestSegment { get; private set; }

    /// <summary>Largest payload the other side acknowledged.</summary>
    public long? LargestAcknowledged { get; private set; }

    public IReadOnlyList<long> RetransmissionFrames => Frames(_retransmissionFrames);

    public IReadOnlyList<long> OutOfOrderFrames => Frames(_outOfOrderFrames);

    public IReadOnlyList<long> DuplicateFrames => Frames(_duplicateFrames);

    public IReadOnlyList<long> SpuriousFrames => Frames(_spuriousFrames);

    public IReadOnlyList<long> LostFrames => Frames(_lostFrames);

    /// <summary>The segment that last moved the acknowledged point, and the one with the highest sequence.</summary>
    public long LastAcknowledgmentFrame { get; private set; }

    public long HighestFrame { get; private set; }

    /// <summary>Bytes the sender's sequence numbers show as sent that the receiver has not acknowledged.</summary>
    public long Unacknowledged => _hasHighest && _hasAcknowledged && SequenceNumbers.Before(_acknowledged, _highest) ? _highest - _acknowledged : 0;

    /// <summary>Since when the oldest unacknowledged byte has waited (the last time the acknowledged point moved, or data started to wait).</summary>
    public long OutstandingSince => _outstandingSince;

    /// <summary>A gap in what arrived here that was never filled: bytes the sender sent that never reached this capture point.</summary>
    public bool HasUnfilledGap => _gapCount > 0;

    public long GapTime => _gapCount > 0 ? _gaps![0].Time : 0;

    /// <summary>This side's advertised window is zero now: it stopped reading.</summary>
    public bool WindowClosed { get; private set; }

    /// <summary>Times this side closed its window, for how long in all and at most, and the packets that closed and reopened it first.</summary>
    public int WindowClosings { get; private set; }

    public long WindowClosedMicroseconds { get; private set; }

    public long LongestWindowClosedMicroseconds { get; private set; }

    public long FirstZeroWindowFrame { get; private set; }

    public long FirstReopenFrame { get; private set; }

    /// <summary>Zero-window advertisements this side sent.</summary>
    public long ZeroWindowAdvertisements { get; private set; }

    /// <summary>Window probes the other side sent while this side's window was closed.</summary>
    public long ProbesWhileClosed { get; set; }

    /// <summary>How long the window has been closed at <paramref name="now"/>, if it still is.</summary>
    public long ClosedFor(long now) => WindowClosed ? now - _closedSince : 0;

    /// <summary>Smallest payload that was retransmitted and is still unacknowledged, and the packet that first carried it.</summary>
    public (long? Length, long Frame) SmallestUnacknowledgedRetransmitted()
    {
        long? smallest = null;
        long frame = 0;
        for (var i = 0; i < _count; i++)
        {
            var segment = _pending[(_head + i) & (_pending.Length - 1)];
            if (segment.Retransmitted && (smallest is null || segment.Length < smallest))
            {
                smallest = segment.Length;
                frame = segment.Frame;
            }
        }

        return (smallest, frame);
    }

    public void Start(uint next, long frame, long time)
    {
        _started = true;
        _next = next;
        See(next, next, frame, time, default(TcpSegment));
    }

    public void Finish() => SawFin = true;

    /// <summary>The window this side advertises in a segment that is not a SYN or RST: a zero one closes it until a non-zero one opens it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // for every segment: a call costs a third of what it does
    public void AdvertiseWindow(ushort window, long frame, long time)
    {
        LastWindow = window;
        if (window == 0)
        {
            ZeroWindowAdvertisements++;
            if (!WindowClosed)
            {
                WindowClosed = true;
                _closedSince = time;
                if (WindowClosings++ == 0)
                {
                    FirstZeroWindowFrame = frame;
                }
            }
        }
        else if (WindowClosed)
        {
            WindowClosed = false;
            var closed = time - _closedSince;
            WindowClosedMicroseconds += closed;
            LongestWindowClosedMicroseconds = Math.Max(LongestWindowClosedMicroseconds, closed);
            if (FirstReopenFrame == 0)
            {
                FirstReopenFrame = frame;
            }
        }
    }

    /// <summary>A probe of a closed window: Linux's, one byte before the acknowledged point and empty (it looks like a keep-alive).</summary>
    public bool IsWindowProbe(uint sequence) => _hasAcknowledged && sequence == _acknowledged - 1;

    /// <summary>
    /// A RST whose sequence number lies beyond what the receiver would accept: past acknowledged +
    /// window. (One before the acknowledged point is what a stack sends in answer to a late segment
    /// carrying an old ACK, after it closed the connection: not a give-away.)
    /// </summary>
    public bool IsOutsideReceiveWindow(uint sequence, TcpDirection receiver)
    {
        if (!_hasAcknowledged || !SawSynSegment || !receiver.SawSynSegment)
        {
            return false; // without both SYNs the window's scale is unknown
        }

        return sequence != _highest && SequenceNumbers.AtOrAfter(sequence, _acknowledged) && sequence - _acknowledged >= ReceiveWindow(receiver);
    }

    /// <summary>
    /// A segment's sequence range (zero-length ones too): how far the sender says it got. A start
    /// past everything seen before opens a gap: bytes sent that have not reached this capture point.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // for every segment: a call costs a third of what it does
    public void See(uint start, uint end, long frame, long time, in TcpSegment segment)
    {
        if (_hasHighest && SequenceNumbers.Before(_highest, start))
        {
            OpenGap(_highest, start, time, new SegmentIdentity(segment));
        }

        if (!_hasHighest || SequenceNumbers.Before(_highest, end))
        {
            if (Unacknowledged == 0)
            {
                _outstandingSince = time;
            }

            _hasHighest = true;
            _highest = end;
            HighestFrame = frame;
        }
    }

    /// <summary>
    /// Records a data segment. Returns true when its bytes came by here for the first time (new data,
    /// or a gap filled), false when it repeats bytes seen before.
    /// </summary>
    public bool Send(in TcpSegment segment, bool fin, long frame, long time, long roundTrip, TcpDirection receiver)
    {
        SawFin |= fin;
        var length = segment.PayloadLength;
        var sequence = segment.Sequence;
        WireBytes += length;
        if (length > LargestSegment)
        {
            LargestSegment = length;
        }

        var end = sequence + (uint)length;
        var identity = new SegmentIdentity(segment);
        if (!_started)
        {
            _started = true;
            Advance(end, length, time, frame, identity);
            return true;
        }

        if (length == 1 && sequence == _next - 1)
        {
            return false; // keep-alive probe
        }

        if (SequenceNumbers.AtOrAfter(sequence, _next))
        {
            Advance(end, length, time, frame, identity); // a gap before it, if any, was opened by See
            return true;
        }

        if (FillsGap(sequence, end, out var gap))
        {
            // The first time these bytes come by: sent before the segment that opened the gap
            // (reordered on the way), or after it (sent again: the first copy was lost before here).
            var order = identity.SentBefore(gap.Opener, IpIdsIncrease);
            var first = SequenceNumbers.Before(sequence, gap.Start) ? gap.Start : sequence;
            var last = SequenceNumbers.Before(gap.End, end) ? gap.End : end;
            Bytes += last - first;
            Remember(sequence, length, identity, time, frame, retransmitted: order <= 0);
            if (order > 0 || (order == 0 && time - gap.Time < roundTrip))
            {
                OutOfOrder++;
                Sample(ref _outOfOrderFrames, frame);
                Track(sequence, end, length, frame, identity.TsVal);
            }
            else if (order == 0)
            {
                // More than a round trip late, and nothing dates it against the segment that opened
                // the gap (IPv6 has no identification; the timestamps share a millisecond): the first
                // copy, late, or a retransmission of a lost one. A second copy would settle it.
                Ambiguous++;
                Sample(ref _ambiguousFrames, frame);
                Track(sequence, end, length, frame, identity.TsVal);
                Keep(ref _lateFills, ref _lateFillNext, new RecentCopy(sequence, end, identity, Resolution.Ambiguous, frame));
            }
            else
            {
                Retransmissions++;
                LostBefore++;
                Sample(ref _retransmissionFrames, frame);
                Sample(ref _lostFrames, frame);
                MarkRetransmitted(sequence, end, length, frame, identity.TsVal, Resolution.LostBefore);
                Keep(ref _lateFills, ref _lateFillNext, new RecentCopy(sequence, end, identity, Resolution.LostBefore, frame));
            }

            if (SequenceNumbers.Before(_next, end))
            {
                Bytes += end - _next;
                _next = end;
            }

            return true;
        }

        // Bytes that came by here before.
        if (IsLateFirstCopy(sequence, identity, frame) || IsLateOrCopy(sequence, length, identity, frame, time, roundTrip))
        {
            return false;
        }

        Retransmissions++;
        Sample(ref _retransmissionFrames, frame);
        var resolution = Resolution.Unresolved;
        if (_hasAcknowledged && SequenceNumbers.AtOrAfter(_acknowledged, end))
        {
            resolution = Resolution.Spurious; // the receiver had acknowledged it: the first copy arrived
        }
        else if (receiver.WindowClosed || (receiver.SawSynSegment && SawSynSegment && _hasAcknowledged && SequenceNumbers.AtOrAfter(end, _acknowledged + ReceiveWindow(receiver))))
        {
            resolution = Resolution.FlowControl; // the receiver's window was closed, or this filled it: its ACK came late
        }
        else if (Point == CapturePoint.Receiver)
        {
            resolution = Resolution.Spurious; // it came by here, at the receiver, before
        }

        Count(resolution, frame);
        MarkRetransmitted(sequence, end, length, frame, identity.TsVal, resolution);
        if (SequenceNumbers.Before(_next, end))
        {
            Bytes += end - _next;
            _next = end;
        }

        return false;
    }

    /// <summary>
    /// The other side acknowledges up to <c>segment.Acknowledgment</c>. Where the capture is not the
    /// receiver's, it also settles retransmissions: a D-SACK (a SACK block below the acknowledged
    /// point) says the receiver got a range twice, an ACK's timestamp echo says which copy arrived.
    /// </summary>
    public void Acknowledge(in TcpSegment segment, long frame, long time)
    {
        var acknowledgment = segment.Acknowledgment;
        if (segment.HasSack && Point != CapturePoint.Receiver && SequenceNumbers.Before(segment.SackLeft, segment.SackRight) &&
            SequenceNumbers.AtOrAfter(acknowledgment, segment.SackRight))
        {
            ReportedTwice(segment.SackLeft, segment.SackRight, frame);
        }

        if (!_hasAcknowledged || SequenceNumbers.Before(_acknowledged, acknowledgment))
        {
            _hasAcknowledged = true;
            _acknowledged = acknowledgment;
            _outstandingSince = time;
            LastAcknowledgmentFrame = frame;
            while (_gapCount > 0 && SequenceNumbers.AtOrAfter(acknowledgment, _gaps![0].End))
            {
                RemoveGap(0); // the receiver has it all: filled where this capture did not see it
            }
        }

        if (_count == 0)
        {
            return;
        }

        var mask = _pending.Length - 1;
        var kept = 0;
        for (var i = 0; i < _count; i++)
        {
            var pending = _pending[(_head + i) & mask];
            if (SequenceNumbers.AtOrAfter(acknowledgment, pending.End))
            {
                if (LargestAcknowledged is null || pending.Length > LargestAcknowledged)
                {
                    LargestAcknowledged = pending.Length;
                }

                if (pending.Retransmitted && Point != CapturePoint.Receiver)
                {
                    var settled = segment.HasTimestamps ? Settle(pending, segment.TsEcr) : pending.Resolution;
                    Keep(ref _settled, ref _settledNext, new RecentCopy(pending.Sequence, pending.End, default, settled, pending.LastFrame));
                }
            }
            else
            {
                _pending[(_head + kept++) & mask] = pending;
            }
        }

        _count = kept;
    }

    /// <summary>
    /// The ACK that covers a retransmitted segment echoes the timestamp of the copy that arrived (RFC
    /// 7323; Eifel detection, RFC 3522): an older one than the retransmission's means the first copy
    /// arrived (spurious), the retransmission's own means the first never did.
    /// </summary>
    private Resolution Settle(PendingSegment pending, uint echo)
    {
        // An echo as new as the retransmission's own says only that it arrived first: the first copy
        // was lost, or is late. That the sender cannot tell; the receiver's capture can.
        if (pending.Resolution != Resolution.Unresolved || pending.LastTsVal == pending.FirstTsVal || SequenceNumbers.AtOrAfter(echo, pending.LastTsVal))
        {
            return pending.Resolution;
        }

        Recount(pending.Resolution, Resolution.Spurious, pending.LastFrame);
        return Resolution.Spurious;
    }

    /// <summary>A D-SACK: the receiver got [left, right) twice. Sent again here: spurious; sent once: the network copied it.</summary>
    private void ReportedTwice(uint left, uint right, long frame)
    {
        var found = false;
        for (var i = 0; i < _count; i++)
        {
            ref var pending = ref _pending[(_head + i) & (_pending.Length - 1)];
            if (pending.Retransmitted && SequenceNumbers.Before(pending.Sequence, right) && SequenceNumbers.Before(left, pending.End))
            {
                found = true;
                if (pending.Resolution == Resolution.Unresolved)
                {
                    Recount(pending.Resolution, Resolution.Spurious, pending.LastFrame);
                    pending = pending with { Resolution = Resolution.Spurious };
                }
            }
        }

        if (_settled is not null)
        {
            for (var i = 0; i < _settled.Length; i++)
            {
                ref var settled = ref _settled[i];
                if (settled.End != settled.Sequence && SequenceNumbers.Before(settled.Sequence, right) && SequenceNumbers.Before(left, settled.End))
                {
                    found = true;
                    if (settled.Resolution == Resolution.Unresolved)
                    {
                        Recount(settled.Resolution, Resolution.Spurious, settled.Frame);
                        settled = settled with { Resolution = Resolution.Spurious };
                    }
                }
            }
        }

        // Reported twice, and nothing was ever sent again here: the network made the second copy.
        // (Once anything was sent again, a copy the records above no longer hold may be the reason.
        // Where the capture is in between, a copy made before it was counted as it came by.)
        if (!found && Point == CapturePoint.Sender && Retransmissions == 0)
        {
            Duplicates++;
            Sample(ref _duplicateFrames, frame);
        }
    }

    /// <summary>The receiver's window in bytes, scaled when both SYNs said so.</summary>
    private uint ReceiveWindow(TcpDirection receiver)
    {
        var shift = WindowShift != NoWindowScale && receiver.WindowShift != NoWindowScale ? receiver.WindowShift : 0;
        return Math.Max(1u, (uint)receiver.LastWindow << shift);
    }

    /// <summary>Linux and Windows raise the IPv4 identification by one per packet they send (by the segments a TSO or GRO packet holds): then it orders this side's segments.</summary>
    private bool IpIdsIncrease => _ipIdSteps >= 2 && _ipIdBreaks * 4 < _ipIdSteps;

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // for every new data segment: a call costs a third of what it does
    private void Advance(uint end, int newBytes, long time, long frame, in SegmentIdentity identity)
    {
        if (identity.IsIPv4 && _newest.IsIPv4)
        {
            var step = (ushort)(identity.IpId - _newest.IpId);
            if (step is > 0 and <= 1024)
            {
                _ipIdSteps++;
            }
            else
            {
                _ipIdBreaks++;
            }
        }

        Bytes += newBytes;
        Track(end - (uint)newBytes, end, newBytes, frame, identity.TsVal);
        Remember(end - (uint)newBytes, newBytes, identity, time, frame, retransmitted: false);
        _newest = identity;
        _next = end;
    }

    private void Count(Resolution resolution, long frame)
    {
        switch (resolution)
        {
            case Resolution.Spurious:
                Spurious++;
                Sample(ref _spuriousFrames, frame);
                break;
            case Resolution.FlowControl:
                FlowControl++;
                break;
        }
    }

    private void Recount(Resolution from, Resolution to, long frame)
    {
        switch (from)
        {
            case Resolution.Spurious:
                Spurious--;
                Unsample(_spuriousFrames, frame);
                break;
            case Resolution.FlowControl:
                FlowControl--;
                break;
        }

        Count(to, frame);
    }

    /// <summary>
    /// The first copy of bytes a retransmission already filled a gap with: it was late (reordered),
    /// not lost, and the retransmission spurious. Told by its identification or timestamp, older than
    /// the retransmission's.
    /// </summary>
    private bool IsLateFirstCopy(uint sequence, in SegmentIdentity identity, long frame)
    {
        if (_lateFills is null)
        {
            return false;
        }

        for (var i = 0; i < _lateFills.Length; i++)
        {
            ref var fill = ref _lateFills[i];
            if (fill.End == fill.Sequence || !SequenceNumbers.AtOrAfter(sequence, fill.Sequence) || !SequenceNumbers.Before(sequence, fill.End))
            {
                continue;
            }

            if (fill.Resolution == Resolution.Ambiguous)
            {
                // Two copies came by: one was the first, late; the other a retransmission, needless.
                Ambiguous--;
                Unsample(_ambiguousFrames, fill.Frame);
                Retransmissions++;
                Sample(ref _retransmissionFrames, frame);
                Spurious++;
                Sample(ref _spuriousFrames, frame);
                OutOfOrder++;
                Sample(ref _outOfOrderFrames, fill.Frame);
                fill = fill with { Resolution = Resolution.Spurious };
                return true;
            }

            if (fill.Resolution == Resolution.LostBefore && identity.SentBefore(fill.Identity, IpIdsIncrease) > 0)
            {
                LostBefore--;
                Unsample(_lostFrames, fill.Frame);
                Spurious++;
                Sample(ref _spuriousFrames, fill.Frame);
                OutOfOrder++;
                Sample(ref _outOfOrderFrames, frame);
                fill = fill with { Resolution = Resolution.Spurious };
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Bytes that came by before, seen again: the newest copy that brought them tells what this one is.
    /// Sent before it, while it had arrived as new data (nothing after it had come yet): this is the
    /// first copy, late, and that one was a retransmission, needless. The same copy (the same
    /// identification, or the same timestamps a moment apart): the network duplicated it. Neither: false.
    /// </summary>
    private bool IsLateOrCopy(uint sequence, int length, in SegmentIdentity identity, long frame, long time, long roundTrip)
    {
        if (_recent is not { } recent)
        {
            return false;
        }

        var mask = recent.Length - 1;
        for (var i = 1; i <= recent.Length; i++)
        {
            ref var seen = ref recent[(_recentNext - i) & mask];
            if (seen.Length == 0 || !SequenceNumbers.AtOrAfter(sequence, seen.Sequence) || !SequenceNumbers.Before(sequence, seen.Sequence + (uint)seen.Length))
            {
                continue;
            }

            if (!seen.Retransmitted && identity.SentBefore(seen.Identity, IpIdsIncrease) > 0)
            {
                Retransmissions++;
                Sample(ref _retransmissionFrames, seen.Frame);
                Spurious++;
                Sample(ref _spuriousFrames, seen.Frame);
                OutOfOrder++;
                Sample(ref _outOfOrderFrames, frame);
                seen = seen with { Retransmitted = true };
                return true;
            }

            // Where the capture is the sender's, no copy was made yet: everything seen twice was sent twice.
            if (Point != CapturePoint.Sender && seen.Sequence == sequence && seen.Length == length && identity.SameCopy(seen.Identity, IpIdsIncrease) &&
                ((identity.IsIPv4 && IpIdsIncrease) || (uint)time - seen.Time < Math.Max(roundTrip / 2, 100)))
            {
                Duplicates++;
                Sample(ref _duplicateFrames, frame);
                return true;
            }

            return false;
        }

        return false;
    }

    private static void Keep(ref RecentCopy[]? ring, ref int next, RecentCopy copy)
    {
        ring ??= new RecentCopy[RecentCopies];
        ring[next] = copy;
        next = (next + 1) & (RecentCopies - 1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // for every new data segment: a call costs a third of what it does
    private void Remember(uint sequence, int length, in SegmentIdentity identity, long time, long frame, bool retransmitted)
    {
        _recent ??= new RecentSegment[RecentCount];
        _recent[_recentNext] = new RecentSegment(sequence, length, identity, (uint)time, (uint)frame, retransmitted);
        _recentNext = (_recentNext + 1) & (_recent.Length - 1);
    }

    private void OpenGap(uint start, uint end, long time, in SegmentIdentity opener)
    {
        if (_recent is { Length: < RecentCountInDisorder } recent)
        {
            // The path reorders: remember more, oldest first from the start of the bigger ring.
            var grown = new RecentSegment[RecentCountInDisorder];
            for (var i = 0; i < recent.Length; i++)
            {
                grown[i] = recent[(_recentNext + i) & (recent.Length - 1)];
            }

            (_recent, _recentNext) = (grown, recent.Length);
        }

        _gaps ??= new Gap[Gaps];
        if (_gapCount == _gaps.Length && _gaps.Length < MaxGaps)
        {
            Array.Resize(ref _gaps, _gaps.Length * 2);
        }

        if (_gapCount == MaxGaps)
        {
            RemoveGap(0); // the oldest is forgotten: its bytes will read as seen before
        }

        _gaps[_gapCount++] = new Gap(start, end, time, opener);
    }

    private bool FillsGap(uint sequence, uint end, out Gap gap)
    {
        for (var i = 0; i < _gapCount; i++)
        {
            gap = _gaps![i];
            if (SequenceNumbers.Before(sequence, gap.End) && SequenceNumbers.Before(gap.Start, end))
            {
                // What is left of the gap: before the segment, after it, both, or nothing.
                var before = SequenceNumbers.Before(gap.Start, sequence);
                var after = SequenceNumbers.Before(end, gap.End);
                if (before && after)
                {
                    _gaps[i] = gap with { End = sequence };
                    OpenGap(end, gap.End, gap.Time, gap.Opener);
                }
                else if (before)
                {
                    _gaps[i] = gap with { End = sequence };
                }
                else if (after)
                {
                    _gaps[i] = gap with { Start = end };
                }
                else
                {
                    RemoveGap(i);
                }

                return true;
            }
        }

        gap = default;
        return false;
    }

    private void RemoveGap(int index)
    {
        Array.Copy(_gaps!, index + 1, _gaps!, index, _gapCount - index - 1);
        _gapCount--;
    }

    private void MarkRetransmitted(uint sequence, uint end, int length, long frame, uint tsVal, Resolution resolution)
    {
        for (var i = 0; i < _count; i++)
        {
            ref var pending = ref _pending[(_head + i) & (_pending.Length - 1)];
            if (pending.Sequence == sequence)
            {
                pending = pending with { Retransmitted = true, LastTsVal = tsVal, Resolution = resolution, LastFrame = (uint)frame };
                return;
            }
        }

        Track(sequence, end, length, frame, tsVal);
        ref var added = ref _pending[(_head + _count - 1) & (_pending.Length - 1)];
        added = added with { Retransmitted = true, Resolution = resolution };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // for every data segment: a call costs a third of what it does
    private void Track(uint sequence, uint end, int length, long frame, uint tsVal)
    {
        if (_count == MaxPending)
        {
            _head = (_head + 1) & (MaxPending - 1);
            _count--;
        }
        else if (_count == _pending.Length)
        {
            GrowPending();
        }

        _pending[(_head + _count++) & (_pending.Length - 1)] = new PendingSegment(sequence, end, length, false, (uint)frame, tsVal, tsVal, Resolution.Unresolved, (uint)frame);
    }

    private void GrowPending()
    {
        var grown = new PendingSegment[Math.Max(4, _pending.Length * 2)];
        for (var i = 0; i < _count; i++)
        {
            grown[i] = _pending[(_head + i) & (_pending.Length - 1)];
        }

        _pending = grown;
        _head = 0;
    }

    /// <summary>Keeps <paramref name="frame"/> among the first few of its kind (kept compact: a full set ends in a non-zero).</summary>
    private static void Sample(ref long[]? frames, long frame)
    {
        if (frames is null)
        {
            frames = new long[Samples];
            frames[0] = frame;
        }
        else if (frames[Samples - 1] == 0)
        {
            frames[Array.IndexOf(frames, 0L)] = frame;
        }
    }

    /// <summary>Takes a frame out of the samples of a kind it turned out not to be.</summary>
    private static void Unsample(long[]? frames, long frame)
    {
        if (frames is not null && Array.IndexOf(frames, frame) is var at and >= 0)
        {
            Array.Copy(frames, at + 1, frames, at, Samples - at - 1);
            frames[Samples - 1] = 0;
        }
    }

    private static long[] Frames(long[]? frames) => frames is null ? [] : frames.Where(f => f != 0).ToArray();

    /// <summary>What a retransmission turned out to be.</summary>
    private enum Resolution : byte
    {
        Unresolved,
        Spurious,
        FlowControl,
        LostBefore,
        Ambiguous,
    }

    /// <summary>A segment waiting for its ACK: where it was first seen (<see cref="Frame"/>), and, sent again, the last copy's timestamp and packet.</summary>
    private readonly record struct PendingSegment(uint Sequence, uint End, int Length, bool Retransmitted, uint Frame, uint FirstTsVal, uint LastTsVal, Resolution Resolution, uint LastFrame);

    /// <summary>A copy that brought new bytes (its time in microseconds, modulo 2^32: only ever compared a moment apart).</summary>
    private readonly record struct RecentSegment(uint Sequence, int Length, SegmentIdentity Identity, uint Time, uint Frame, bool Retransmitted);

    private readonly record struct Gap(uint Start, uint End, long Time, SegmentIdentity Opener);

    private readonly record struct RecentCopy(uint Sequence, uint End, SegmentIdentity Identity, Resolution Resolution, long Frame);
}

/// <summary>What tells one copy of a segment from another: the IPv4 identification and the TCP timestamps.</summary>
internal readonly record struct SegmentIdentity(bool IsIPv4, ushort IpId, bool HasTimestamps, uint TsVal, uint TsEcr)
{
    public SegmentIdentity(in TcpSegment segment)
        : this(segment.IsIPv4, segment.IpId, segment.HasTimestamps, segment.TsVal, segment.TsEcr)
    {
    }

    /// <summary>1: this was sent before <paramref name="other"/>; -1: after; 0: cannot be told.</summary>
    public int SentBefore(in SegmentIdentity other, bool ipIdsIncrease)
    {
        if (IsIPv4 && other.IsIPv4 && ipIdsIncrease && IpId != other.IpId)
        {
            return (short)(IpId - other.IpId) < 0 ? 1 : -1;
        }

        if (HasTimestamps && other.HasTimestamps && TsVal != other.TsVal)
        {
            return SequenceNumbers.Before(TsVal, other.TsVal) ? 1 : -1;
        }

        return 0;
    }

    /// <summary>The same copy: the same identification (where identifications are per packet), else the same timestamps.</summary>
    public bool SameCopy(in SegmentIdentity other, bool ipIdsIncrease) =>
        IsIPv4 && other.IsIPv4 && ipIdsIncrease
            ? IpId == other.IpId
            : HasTimestamps && other.HasTimestamps && TsVal == other.TsVal && TsEcr == other.TsEcr;
}
