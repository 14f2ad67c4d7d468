using static KubeCapture.Agent.Summary.TcpHeaderReader;

namespace KubeCapture.Agent.Summary;

/// <summary>What one segment turned out to be, for the summary's per-packet counters.</summary>
[Flags]
internal enum SegmentVerdict
{
    None = 0,
    Retransmission = 1,
    HandshakeRetransmission = 2,
    OutOfOrder = 4,
}

/// <summary>
/// One TCP connection as the capture saw it: handshake, resets, and each direction's data, with the
/// packet numbers (1-based, as Wireshark's <c>frame.number</c>) and times (microseconds since the
/// epoch) of what a finding cites as evidence.
/// </summary>
internal sealed class TcpConnection(FlowKey key, bool clientIsA, bool sawSyn)
{
    /// <summary>Out-of-order threshold without a handshake to measure the round trip (Wireshark's 3 ms).</summary>
    private const long DefaultReorderWindowMicroseconds = 3000;

    public FlowKey Key { get; } = key;

    public bool ClientIsA { get; } = clientIsA;

    public bool SawSyn { get; private set; } = sawSyn;

    public bool SawSynAck { get; private set; }

    public bool Completed { get; private set; }

    public bool Refused { get; private set; }

    public int SynCount { get; private set; }

    public int SynAckCount { get; private set; }

    public TcpReset? Reset { get; private set; }

    public TcpDirection FromClient { get; } = new();

    public TcpDirection FromServer { get; } = new();

    public uint ClientIsn { get; private set; }

    public long FirstFrame { get; private set; }

    public long FirstTime { get; private set; }

    public long LastTime { get; private set; }

    public long FirstSynFrame { get; private set; }

    public long LastSynFrame { get; private set; }

    public long FirstSynAckFrame { get; private set; }

    public long LastSynAckFrame { get; private set; }

    /// <summary>The RST that refused the SYN.</summary>
    public long RefusalFrame { get; private set; }

    /// <summary>The client's ACK that completed the handshake.</summary>
    public long CompletionFrame { get; private set; }

    /// <summary>From the first SYN to the ACK that completed the handshake, as seen here: about one round trip at either end.</summary>
    public long HandshakeMicroseconds { get; private set; }

    private uint _serverIsn;
    private long _firstSynTime;

    /// <summary>As a record, for comparing with the other end's capture.</summary>
    public ConnectionRecord ToRecord() => new()
    {
        Client = Client,
        Server = Server,
        ClientAddress = Key.Address(ClientIsA),
        ServerAddress = Key.Address(!ClientIsA),
        ServerPort = Key.Port(!ClientIsA),
        ClientIsn = SawSyn ? ClientIsn : 0,
        Syns = SynCount,
        SynAcks = SynAckCount,
        Completed = Completed,
        Refused = Refused,
        ClientBytes = FromClient.Bytes,
        ServerBytes = FromServer.Bytes,
        ClientWireBytes = FromClient.WireBytes,
        ServerWireBytes = FromServer.WireBytes,
        Closed = IsClosed,
        FirstSynFrame = FirstSynFrame,
        FirstSynAckFrame = FirstSynAckFrame,
        Reset = Reset is { } r
            ? new ResetRecord { FromClient = r.FromClient, Bare = r.Bare, Sequence = r.Sequence, HopLimit = r.HopLimit, SideHopLimit = r.SideHopLimit, Frame = r.Frame }
            : null,
    };

    public bool IsClosed => Refused || Reset is not null || (FromClient.SawFin && FromServer.SawFin);

    public string Client => Key.Endpoint(ClientIsA);

    public string Server => Key.Endpoint(!ClientIsA);

    public bool IsIPv6 => Key.IsIPv6;

    public bool IsFromClient(bool fromA) => fromA == ClientIsA;

    /// <summary>A SYN on a known 4-tuple starts a new connection unless it repeats this one's SYN.</summary>
    public bool IsNewConnection(in TcpSegment syn) =>
        !SawSyn || !IsFromClient(syn.FromA) || syn.Sequence != ClientIsn;

    public SegmentVerdict Observe(in TcpSegment segment, bool fromClient, long frame, long time)
    {
        if (FirstFrame == 0)
        {
            FirstFrame = frame;
            FirstTime = time;
        }

        LastTime = time;
        var sender = fromClient ? FromClient : FromServer;
        var receiver = fromClient ? FromServer : FromClient;
        var flags = segment.Flags;
        var hasAck = (flags & Ack) != 0;

        if ((flags & Rst) != 0)
        {
            if (!fromClient && SawSyn && !SawSynAck && !Completed)
            {
                Refused = true;
                RefusalFrame = frame;
            }
            else
            {
                Reset ??= new TcpReset(
                    fromClient,
                    Bare: !hasAck,
                    segment.HopLimit,
                    sender.LastHopLimit,
                    OutsideWindow: sender.IsOutsideReceiveWindow(segment.Sequence, receiver),
                    frame,
                    time,
                    segment.Sequence);
            }

            return SegmentVerdict.None;
        }

        sender.LastHopLimit = segment.HopLimit;
        sender.LastWindow = segment.Window;
        if ((flags & Syn) != 0)
        {
            sender.WindowShift = segment.WindowShift;
            sender.SawSynSegment = true;
            if (hasAck)
            {
                receiver.Acknowledge(segment.Acknowledgment, frame, time);
            }

            return ObserveSyn(segment, fromClient, hasAck, sender, frame, time) ? SegmentVerdict.HandshakeRetransmission : SegmentVerdict.None;
        }

        if (hasAck)
        {
            if (fromClient && SawSynAck && !Completed && SequenceNumbers.AtOrAfter(segment.Acknowledgment, _serverIsn + 1))
            {
                Completed = true;
                CompletionFrame = frame;
                if (_firstSynTime != 0)
                {
                    HandshakeMicroseconds = time - _firstSynTime;
                }
            }

            receiver.Acknowledge(segment.Acknowledgment, frame, time);
        }

        var fin = (flags & Fin) != 0;
        sender.See(segment.Sequence, segment.Sequence + (uint)segment.PayloadLength + (fin ? 1u : 0u), frame, time);
        var reorderWindow = HandshakeMicroseconds > 0 ? HandshakeMicroseconds : DefaultReorderWindowMicroseconds;
        return sender.Send(segment.Sequence, segment.PayloadLength, fin, frame, time, reorderWindow);
    }

    private bool ObserveSyn(in TcpSegment segment, bool fromClient, bool hasAck, TcpDirection sender, long frame, long time)
    {
        if (!hasAck && fromClient)
        {
            var repeat = SawSyn && SynCount > 0;
            SawSyn = true;
            ClientIsn = segment.Sequence;
            SynCount++;
            if (FirstSynFrame == 0)
            {
                FirstSynFrame = frame;
                _firstSynTime = time;
            }

            LastSynFrame = frame;
            sender.Start(segment.Sequence + 1, frame, time);
            return repeat;
        }

        if (hasAck && !fromClient)
        {
            var repeat = SawSynAck && segment.Sequence == _serverIsn;
            SawSynAck = true;
            SynAckCount++;
            _serverIsn = segment.Sequence;
            if (FirstSynAckFrame == 0)
            {
                FirstSynAckFrame = frame;
            }

            LastSynAckFrame = frame;
            sender.Start(segment.Sequence + 1, frame, time);
            return repeat;
        }

        return false;
    }
}

/// <summary>
/// The first reset seen on a connection, and what it can be told by: a bare [R] (no ACK), a hop
/// limit unlike the one its side used before, a sequence number outside the receiver's window.
/// </summary>
internal sealed record TcpReset(bool FromClient, bool Bare, byte HopLimit, byte SideHopLimit, bool OutsideWindow, long Frame, long Time, uint Sequence)
{
    /// <summary>A TTL unlike the one the same side used before: likely made by a device in between.</summary>
    public bool HopLimitMismatch => SideHopLimit != 0 && SideHopLimit != HopLimit;

    /// <summary>What a device in between gives itself away by (not a bare [R] alone: stacks send those too).</summary>
    public bool SuspectedForged => HopLimitMismatch || OutsideWindow;
}

/// <summary>One direction's data: the highest sequence sent, and segments still waiting for an ACK.</summary>
internal sealed class TcpDirection
{
    private const int MaxPending = 64; // a power of two: ring indexes wrap with a mask
    private const int RetransmissionSamples = 4;

    // Unacknowledged segments, oldest first, in a ring that grows to MaxPending and then drops its
    // oldest entry for each new one. Grown on demand, so quiet connections stay small.
    private PendingSegment[] _pending = [];
    private int _head;
    private int _count;
    private bool _started;
    private uint _next;
    private long _lastAdvanceTime;

    // Everything the sender's sequence numbers say it sent (zero-length segments and FIN included),
    // and what the receiver acknowledged of it: the difference is what never arrived, or is in flight.
    private bool _hasHighest;
    private uint _highest;
    private bool _hasAcknowledged;
    private uint _acknowledged;
    private long _outstandingSince;

    // The oldest gap in the sequence space seen here (a later segment came first), until filled.
    private bool _hasHole;
    private uint _holeStart;
    private uint _holeEnd;
    private long _holeTime;
    private long[]? _retransmissionFrames;
    private long[]? _outOfOrderFrames;

    public byte LastHopLimit { get; set; }

    public ushort LastWindow { get; set; }

    public byte WindowShift { get; set; } = NoWindowScale;

    /// <summary>This side's SYN (or SYN-ACK) was seen: its window scale is known.</summary>
    public bool SawSynSegment { get; set; }

    public bool SawFin { get; private set; }

    public long Retransmissions { get; private set; }

    public long OutOfOrder { get; private set; }

    /// <summary>Payload bytes carried the first time (not counting retransmissions).</summary>
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

    /// <summary>The first few retransmissions, by packet number.</summary>
    public IReadOnlyList<long> RetransmissionFrames => _retransmissionFrames is null ? [] : _retransmissionFrames.Where(f => f != 0).ToArray();

    /// <summary>The first few out-of-order segments, by packet number.</summary>
    public IReadOnlyList<long> OutOfOrderFrames => _outOfOrderFrames is null ? [] : _outOfOrderFrames.Where(f => f != 0).ToArray();

    /// <summary>The segment that last moved the acknowledged point, and the one with the highest sequence.</summary>
    public long LastAcknowledgmentFrame { get; private set; }

    public long HighestFrame { get; private set; }

    /// <summary>Bytes the sender's sequence numbers show as sent that the receiver has not acknowledged.</summary>
    public long Unacknowledged => _hasHighest && _hasAcknowledged && SequenceNumbers.Before(_acknowledged, _highest) ? _highest - _acknowledged : 0;

    /// <summary>Since when the oldest unacknowledged byte has waited (the last time the acknowledged point moved, or data started to wait).</summary>
    public long OutstandingSince => _outstandingSince;

    /// <summary>A gap in what arrived here that was never filled: bytes the sender sent that never reached this capture point.</summary>
    public bool HasUnfilledGap => _hasHole;

    public long GapTime => _holeTime;

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
        _lastAdvanceTime = time;
        See(next, next, frame, time);
    }

    /// <summary>A RST whose sequence number lies outside what the receiver would accept: [acknowledged, acknowledged + window).</summary>
    public bool IsOutsideReceiveWindow(uint sequence, TcpDirection receiver)
    {
        if (!_hasAcknowledged || !SawSynSegment || !receiver.SawSynSegment)
        {
            return false; // without both SYNs the window's scale is unknown
        }

        var shift = WindowShift != NoWindowScale && receiver.WindowShift != NoWindowScale ? receiver.WindowShift : 0;
        var window = Math.Max(1u, (uint)receiver.LastWindow << shift);
        return sequence != _highest && (SequenceNumbers.Before(sequence, _acknowledged) || sequence - _acknowledged >= window);
    }

    /// <summary>
    /// A segment's sequence range (zero-length ones too): how far the sender says it got. A start
    /// past everything seen before opens a gap: bytes sent that have not reached this capture point.
    /// </summary>
    public void See(uint start, uint end, long frame, long time)
    {
        if (_hasHighest && !_hasHole && SequenceNumbers.Before(_highest, start))
        {
            _hasHole = true;
            _holeStart = _highest;
            _holeEnd = start;
            _holeTime = time;
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

    /// <summary>Records a segment: a retransmission when it repeats a sequence range already sent, out of order when it fills a gap within one round trip.</summary>
    public SegmentVerdict Send(uint sequence, int length, bool fin, long frame, long time, long reorderWindow)
    {
        SawFin |= fin;
        if (length == 0)
        {
            return SegmentVerdict.None;
        }

        WireBytes += length;

        if (length > LargestSegment)
        {
            LargestSegment = length;
        }

        var end = sequence + (uint)length;
        if (!_started)
        {
            Start(end, frame, time);
            Bytes += length;
            Track(sequence, end, length, retransmitted: false, frame);
            return SegmentVerdict.None;
        }

        if (length == 1 && sequence == _next - 1)
        {
            return SegmentVerdict.None; // keep-alive probe
        }

        if (SequenceNumbers.Before(sequence, _next))
        {
            if (_hasHole && SequenceNumbers.AtOrAfter(sequence, _holeStart) && SequenceNumbers.Before(sequence, _holeEnd))
            {
                var outOfOrder = time - _lastAdvanceTime < reorderWindow;
                Fill(sequence, end);
                if (outOfOrder)
                {
                    if (++OutOfOrder <= RetransmissionSamples)
                    {
                        (_outOfOrderFrames ??= new long[RetransmissionSamples])[OutOfOrder - 1] = frame;
                    }

                    Bytes += length;
                    Track(sequence, end, length, retransmitted: false, frame);
                    return SegmentVerdict.OutOfOrder;
                }
            }

            Retransmissions++;
            if (Retransmissions <= RetransmissionSamples)
            {
                (_retransmissionFrames ??= new long[RetransmissionSamples])[Retransmissions - 1] = frame;
            }

            MarkRetransmitted(sequence, end, length, frame);
            if (SequenceNumbers.Before(_next, end))
            {
                _next = end;
                _lastAdvanceTime = time;
            }

            return SegmentVerdict.Retransmission;
        }

        Bytes += length;
        _next = end;
        _lastAdvanceTime = time;
        Track(sequence, end, length, retransmitted: false, frame);
        return SegmentVerdict.None;
    }

    public void Acknowledge(uint acknowledgment, long frame, long time)
    {
        if (!_hasAcknowledged || SequenceNumbers.Before(_acknowledged, acknowledgment))
        {
            _hasAcknowledged = true;
            _acknowledged = acknowledgment;
            _outstandingSince = time;
            LastAcknowledgmentFrame = frame;
            if (_hasHole && SequenceNumbers.AtOrAfter(acknowledgment, _holeEnd))
            {
                _hasHole = false; // the receiver has it all: filled where this capture did not see it
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
            var segment = _pending[(_head + i) & mask];
            if (SequenceNumbers.AtOrAfter(acknowledgment, segment.End))
            {
                if (LargestAcknowledged is null || segment.Length > LargestAcknowledged)
                {
                    LargestAcknowledged = segment.Length;
                }
            }
            else
            {
                _pending[(_head + kept++) & mask] = segment;
            }
        }

        _count = kept;
    }

    private void Fill(uint sequence, uint end)
    {
        if (sequence == _holeStart)
        {
            _holeStart = end;
        }
        else if (end == _holeEnd)
        {
            _holeEnd = sequence;
        }

        if (!SequenceNumbers.Before(_holeStart, _holeEnd))
        {
            _hasHole = false;
        }
    }

    private void MarkRetransmitted(uint sequence, uint end, int length, long frame)
    {
        for (var i = 0; i < _count; i++)
        {
            ref var segment = ref _pending[(_head + i) & (_pending.Length - 1)];
            if (segment.Sequence == sequence)
            {
                segment = segment with { Retransmitted = true };
                return;
            }
        }

        Track(sequence, end, length, retransmitted: true, frame);
    }

    private void Track(uint sequence, uint end, int length, bool retransmitted, long frame)
    {
        if (_count == MaxPending)
        {
            _head = (_head + 1) & (MaxPending - 1);
            _count--;
        }
        else if (_count == _pending.Length)
        {
            var grown = new PendingSegment[Math.Max(4, _pending.Length * 2)];
            for (var i = 0; i < _count; i++)
            {
                grown[i] = _pending[(_head + i) & (_pending.Length - 1)];
            }

            _pending = grown;
            _head = 0;
        }

        _pending[(_head + _count++) & (_pending.Length - 1)] = new PendingSegment(sequence, end, length, retransmitted, (uint)frame);
    }

    private readonly record struct PendingSegment(uint Sequence, uint End, int Length, bool Retransmitted, uint Frame);
}

/// <summary>Sequence-number comparisons modulo 2^32 (RFC 1982 style).</summary>
internal static class SequenceNumbers
{
    public static bool Before(uint a, uint b) => (int)(a - b) < 0;

    public static bool AtOrAfter(uint a, uint b) => (int)(a - b) >= 0;
}
