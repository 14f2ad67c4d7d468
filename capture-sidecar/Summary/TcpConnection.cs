using static KubeCapture.Agent.Summary.TcpHeaderReader;

namespace KubeCapture.Agent.Summary;

/// <summary>One TCP connection as the capture saw it: handshake, resets, and each direction's data.</summary>
internal sealed class TcpConnection(FlowKey key, bool clientIsA, bool sawSyn)
{
    public FlowKey Key { get; } = key;

    public bool ClientIsA { get; } = clientIsA;

    public bool SawSyn { get; private set; } = sawSyn;

    public bool SawSynAck { get; private set; }

    public bool Completed { get; private set; }

    public bool Refused { get; private set; }

    public int SynCount { get; private set; }

    public TcpReset? Reset { get; private set; }

    public TcpDirection FromClient { get; } = new();

    public TcpDirection FromServer { get; } = new();

    public uint ClientIsn { get; private set; }

    private uint _serverIsn;

    public bool IsClosed => Refused || Reset is not null || (FromClient.SawFin && FromServer.SawFin);

    public string Client => Key.Endpoint(ClientIsA);

    public string Server => Key.Endpoint(!ClientIsA);

    public bool IsFromClient(bool fromA) => fromA == ClientIsA;

    /// <summary>A SYN on a known 4-tuple starts a new connection unless it repeats this one's SYN.</summary>
    public bool IsNewConnection(in TcpSegment syn) =>
        !SawSyn || !IsFromClient(syn.FromA) || syn.Sequence != ClientIsn;

    public (bool Retransmission, bool HandshakeRetransmission) Observe(in TcpSegment segment, bool fromClient)
    {
        var sender = fromClient ? FromClient : FromServer;
        var receiver = fromClient ? FromServer : FromClient;
        var flags = segment.Flags;
        var hasAck = (flags & Ack) != 0;

        if ((flags & Rst) != 0)
        {
            if (!fromClient && SawSyn && !SawSynAck && !Completed)
            {
                Refused = true;
            }
            else
            {
                Reset ??= new TcpReset(fromClient, Bare: !hasAck, segment.HopLimit, sender.LastHopLimit);
            }

            return default;
        }

        sender.LastHopLimit = segment.HopLimit;
        if ((flags & Syn) != 0)
        {
            return (false, ObserveSyn(segment, fromClient, hasAck, sender));
        }

        if (hasAck)
        {
            if (fromClient && SawSynAck && !Completed && SequenceNumbers.AtOrAfter(segment.Acknowledgment, _serverIsn + 1))
            {
                Completed = true;
            }

            receiver.Acknowledge(segment.Acknowledgment);
        }

        var retransmission = sender.Send(segment.Sequence, segment.PayloadLength, (flags & Fin) != 0);
        return (retransmission, false);
    }

    private bool ObserveSyn(in TcpSegment segment, bool fromClient, bool hasAck, TcpDirection sender)
    {
        if (!hasAck && fromClient)
        {
            var repeat = SawSyn && SynCount > 0;
            SawSyn = true;
            ClientIsn = segment.Sequence;
            SynCount++;
            sender.Start(segment.Sequence + 1);
            return repeat;
        }

        if (hasAck && !fromClient)
        {
            var repeat = SawSynAck && segment.Sequence == _serverIsn;
            SawSynAck = true;
            _serverIsn = segment.Sequence;
            sender.Start(segment.Sequence + 1);
            return repeat;
        }

        return false;
    }
}

/// <summary>The first reset seen on a connection, and whether its hop limit matches its side's other packets.</summary>
internal sealed record TcpReset(bool FromClient, bool Bare, byte HopLimit, byte SideHopLimit)
{
    /// <summary>A TTL unlike the one the same side used before: likely made by a device in between.</summary>
    public bool HopLimitMismatch => SideHopLimit != 0 && SideHopLimit != HopLimit;
}

/// <summary>One direction's data: the highest sequence sent, and segments still waiting for an ACK.</summary>
internal sealed class TcpDirection
{
    private const int MaxPending = 64; // a power of two: ring indexes wrap with a mask

    // Unacknowledged segments, oldest first, in a ring that grows to MaxPending and then drops its
    // oldest entry for each new one. Grown on demand, so quiet connections stay small.
    private PendingSegment[] _pending = [];
    private int _head;
    private int _count;
    private bool _started;
    private uint _next;

    public byte LastHopLimit { get; set; }

    public bool SawFin { get; private set; }

    public long Retransmissions { get; private set; }

    /// <summary>Largest payload the other side acknowledged.</summary>
    public long? LargestAcknowledged { get; private set; }

    /// <summary>Smallest payload that was retransmitted and is still unacknowledged.</summary>
    public long? SmallestUnacknowledgedRetransmitted
    {
        get
        {
            long? smallest = null;
            for (var i = 0; i < _count; i++)
            {
                var segment = _pending[(_head + i) & (_pending.Length - 1)];
                if (segment.Retransmitted && (smallest is null || segment.Length < smallest))
                {
                    smallest = segment.Length;
                }
            }

            return smallest;
        }
    }

    public void Start(uint next)
    {
        _started = true;
        _next = next;
    }

    /// <summary>Records a segment; true when it repeats a sequence range already sent.</summary>
    public bool Send(uint sequence, int length, bool fin)
    {
        SawFin |= fin;
        if (length == 0)
        {
            return false;
        }

        var end = sequence + (uint)length;
        if (!_started)
        {
            Start(end);
            Track(sequence, end, length, retransmitted: false);
            return false;
        }

        if (length == 1 && sequence == _next - 1)
        {
            return false; // keep-alive probe
        }

        if (SequenceNumbers.Before(sequence, _next))
        {
            Retransmissions++;
            MarkRetransmitted(sequence, end, length);
            if (SequenceNumbers.Before(_next, end))
            {
                _next = end;
            }

            return true;
        }

        _next = end;
        Track(sequence, end, length, retransmitted: false);
        return false;
    }

    public void Acknowledge(uint acknowledgment)
    {
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

    private void MarkRetransmitted(uint sequence, uint end, int length)
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

        Track(sequence, end, length, retransmitted: true);
    }

    private void Track(uint sequence, uint end, int length, bool retransmitted)
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

        _pending[(_head + _count++) & (_pending.Length - 1)] = new PendingSegment(sequence, end, length, retransmitted);
    }

    private readonly record struct PendingSegment(uint Sequence, uint End, int Length, bool Retransmitted);
}

/// <summary>Sequence-number comparisons modulo 2^32 (RFC 1982 style).</summary>
internal static class SequenceNumbers
{
    public static bool Before(uint a, uint b) => (int)(a - b) < 0;

    public static bool AtOrAfter(uint a, uint b) => (int)(a - b) >= 0;
}
