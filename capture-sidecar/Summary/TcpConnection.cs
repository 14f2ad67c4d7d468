using static KubeCapture.Agent.Summary.TcpHeaderReader;

namespace KubeCapture.Agent.Summary;

/// <summary>Which ends of a connection are the capture's own host (its local addresses).</summary>
internal enum LocalEnd : byte
{
    None,
    Client,
    Server,
    Both,
}

/// <summary>
/// Where the capture sits for one direction of a connection's data: at the sender (its segments seen
/// leaving), at the receiver (seen arriving), or unknown (in between, or the local addresses unknown).
/// What a segment seen twice means depends on it: at the receiver the first copy arrived; at the sender
/// it only left.
/// </summary>
internal enum CapturePoint : byte
{
    Unknown,
    Sender,
    Receiver,
}

/// <summary>
/// One TCP connection as the capture saw it: handshake, resets, ICMP errors about it, each direction's
/// data and advertised window, and its request/response timing, with the packet numbers (1-based, as
/// Wireshark's <c>frame.number</c>) and times (microseconds since the epoch) of what a finding cites.
/// </summary>
internal sealed class TcpConnection
{
    /// <summary>Out-of-order threshold without a handshake to measure the round trip (Wireshark's 3 ms).</summary>
    private const long DefaultReorderWindowMicroseconds = 3000;

    private uint _serverIsn;
    private long _lastSynTime;

    // The request waiting for its response: the client's last new data since the server last sent
    // any, and the server's first ACK that covered it.
    private bool _awaitingResponse;
    private uint _requestEnd;
    private long _requestEndTime;
    private long _requestEndFrame;
    private long _requestAckTime;
    private long _requestAckFrame;

    public TcpConnection(FlowKey key, bool clientIsA, bool sawSyn, LocalEnd local = LocalEnd.None)
    {
        Key = key;
        ClientIsA = clientIsA;
        SawSyn = sawSyn;
        Local = local;
        FromClient = new TcpDirection(local switch { LocalEnd.Client => CapturePoint.Sender, LocalEnd.Server => CapturePoint.Receiver, _ => CapturePoint.Unknown });
        FromServer = new TcpDirection(local switch { LocalEnd.Server => CapturePoint.Sender, LocalEnd.Client => CapturePoint.Receiver, _ => CapturePoint.Unknown });
    }

    /// <summary>The 4-tuple (a field, not a property: looked up for every segment, never copied).</summary>
    public readonly FlowKey Key;

    public bool ClientIsA { get; }

    public LocalEnd Local { get; }

    public bool SawSyn { get; private set; }

    public bool SawSynAck { get; private set; }

    public bool Completed { get; private set; }

    public bool Refused { get; private set; }

    public int SynCount { get; private set; }

    public int SynAckCount { get; private set; }

    /// <summary>SYNs and SYN-ACKs sent again for this connection.</summary>
    public int HandshakeRetransmissions { get; private set; }

    public TcpReset? Reset { get; private set; }

    /// <summary>The client's data, and the window the client advertised for the server's.</summary>
    public TcpDirection FromClient { get; }

    /// <summary>The server's data, and the window the server advertised for the client's.</summary>
    public TcpDirection FromServer { get; }

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

    /// <summary>From the last SYN to the ACK that completed the handshake, as seen here: one network round trip between the two ends, wherever the capture sits.</summary>
    public long RoundTripMicroseconds { get; private set; }

    /// <summary>The handshake was seen from its SYN to its completion: <see cref="RoundTripMicroseconds"/> is measured.</summary>
    public bool HasRoundTrip { get; private set; }

    /// <summary>The first ICMP error about this connection (it quotes one of its packets), and how many came.</summary>
    public IcmpError? Icmp { get; private set; }

    public long IcmpFrame { get; private set; }

    public int IcmpCount { get; private set; }

    /// <summary>The ICMP error quotes the client's SYN: the connection attempt itself was answered from the path.</summary>
    public bool IcmpQuotesSyn { get; private set; }

    /// <summary>Responses seen: server data following client data.</summary>
    public int Responses { get; private set; }

    /// <summary>The slowest response: from the request's last segment to the response's first, as seen here.</summary>
    public Response? Slowest { get; private set; }

    /// <summary>Every response's time, summed (microseconds), for the typical one.</summary>
    public long ResponseMicrosecondsTotal { get; private set; }

    public long FastestResponseMicroseconds { get; private set; } = long.MaxValue;

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
        ClientRetransmissions = FromClient.Retransmissions,
        ServerRetransmissions = FromServer.Retransmissions,
        Closed = IsClosed,
        FirstSynFrame = FirstSynFrame,
        FirstSynAckFrame = FirstSynAckFrame,
        Reset = Reset is { } r
            ? new ResetRecord { FromClient = r.FromClient, Bare = r.Bare, Sequence = r.Sequence, HopLimit = r.HopLimit, SideHopLimit = r.SideHopLimit, Frame = r.Frame }
            : null,
        Icmp = Icmp is { } icmp ? new IcmpRecord { Type = icmp.Type, Code = icmp.Code, Sender = icmp.Sender, Frame = IcmpFrame } : null,
    };

    public bool IsClosed => Refused || Reset is not null || (FromClient.SawFin && FromServer.SawFin);

    public string Client => Key.Endpoint(ClientIsA);

    public string Server => Key.Endpoint(!ClientIsA);

    public bool IsIPv6 => Key.IsIPv6;

    public bool IsFromClient(bool fromA) => fromA == ClientIsA;

    /// <summary>A SYN on a known 4-tuple starts a new connection unless it repeats this one's SYN.</summary>
    public bool IsNewConnection(in TcpSegment syn) =>
        !SawSyn || !IsFromClient(syn.FromA) || syn.Sequence != ClientIsn;

    /// <summary>An ICMP error that quotes one of this connection's packets.</summary>
    public void ObserveIcmp(in IcmpError error, long frame, long time)
    {
        LastTime = time;
        if (IcmpCount++ == 0)
        {
            Icmp = error;
            IcmpFrame = frame;
            IcmpQuotesSyn = SawSyn && error.HasQuotedSequence && error.QuotedSequence == ClientIsn && IsFromClient(error.QuotedFromA);
        }
    }

    public void Observe(in TcpSegment segment, bool fromClient, long frame, long time)
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

            return;
        }

        sender.LastHopLimit = segment.HopLimit;
        if ((flags & Syn) != 0)
        {
            sender.LastWindow = segment.Window;
            sender.WindowShift = segment.WindowShift;
            sender.SawSynSegment = true;
            if (hasAck)
            {
                receiver.Acknowledge(segment, frame, time);
            }

            if (ObserveSyn(segment, fromClient, hasAck, sender, frame, time))
            {
                HandshakeRetransmissions++;
            }

            return;
        }

        sender.AdvertiseWindow(segment.Window, frame, time);
        if (hasAck)
        {
            if (fromClient && SawSynAck && !Completed && SequenceNumbers.AtOrAfter(segment.Acknowledgment, _serverIsn + 1))
            {
                Completed = true;
                CompletionFrame = frame;
                if (LastSynFrame != 0)
                {
                    RoundTripMicroseconds = time - _lastSynTime;
                    HasRoundTrip = true;
                }
            }

            receiver.Acknowledge(segment, frame, time);
        }

        var fin = (flags & Fin) != 0;
        sender.See(segment.Sequence, segment.Sequence + (uint)segment.PayloadLength + (fin ? 1u : 0u), frame, time, segment);
        if (segment.PayloadLength == 0)
        {
            SawFinOrProbe(segment, fin, sender, receiver);
            if (!fromClient && _awaitingResponse && _requestAckFrame == 0 && hasAck && SequenceNumbers.AtOrAfter(segment.Acknowledgment, _requestEnd))
            {
                (_requestAckTime, _requestAckFrame) = (time, frame);
            }

            return;
        }

        var reorderWindow = HasRoundTrip && RoundTripMicroseconds > 0 ? RoundTripMicroseconds : DefaultReorderWindowMicroseconds;
        if (sender.Send(segment, fin, frame, time, reorderWindow, receiver))
        {
            ObserveTurn(segment, fromClient, frame, time);
        }
    }

    private static void SawFinOrProbe(in TcpSegment segment, bool fin, TcpDirection sender, TcpDirection receiver)
    {
        if (fin)
        {
            sender.Finish();
        }
        else if (receiver.WindowClosed && sender.IsWindowProbe(segment.Sequence))
        {
            receiver.ProbesWhileClosed++;
        }
    }

    /// <summary>New data: the client's is a request (or more of it), the server's first after it is the response.</summary>
    private void ObserveTurn(in TcpSegment segment, bool fromClient, long frame, long time)
    {
        if (fromClient)
        {
            _awaitingResponse = true;
            _requestEnd = segment.Sequence + (uint)segment.PayloadLength;
            (_requestEndTime, _requestEndFrame, _requestAckTime, _requestAckFrame) = (time, frame, 0, 0);
            return;
        }

        if (!_awaitingResponse)
        {
            return; // the server speaks first, or goes on: not an answer to anything seen here
        }

        _awaitingResponse = false;
        var microseconds = time - _requestEndTime;
        Responses++;
        ResponseMicrosecondsTotal += microseconds;
        FastestResponseMicroseconds = Math.Min(FastestResponseMicroseconds, microseconds);
        if (Slowest is null || microseconds > Slowest.Microseconds)
        {
            Slowest = new Response(microseconds, _requestEndFrame, frame, _requestAckFrame, _requestAckFrame == 0 ? 0 : _requestAckTime - _requestEndTime);
        }
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
            }

            _lastSynTime = time;
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
/// One response, as seen here: the request's last segment and the response's first (their times
/// apart), and the server's ACK of the request before it answered, if it sent one (how long after the
/// request it came).
/// </summary>
internal sealed record Response(long Microseconds, long RequestFrame, long ResponseFrame, long AckFrame, long AckMicroseconds);

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

/// <summary>Sequence-number comparisons modulo 2^32 (RFC 1982 style).</summary>
internal static class SequenceNumbers
{
    public static bool Before(uint a, uint b) => (int)(a - b) < 0;

    public static bool AtOrAfter(uint a, uint b) => (int)(a - b) >= 0;
}
