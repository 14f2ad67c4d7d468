using System.Buffers.Binary;
using PacketDotNet;

namespace KubeCapture.Agent.Summary;

/// <summary>What an ICMP error says: the destination cannot be reached, the packet is too big for the path, its TTL ran out.</summary>
internal enum IcmpErrorKind : byte
{
    Unreachable,
    PacketTooBig,
    TimeExceeded,
}

/// <summary>
/// One ICMP or ICMPv6 error and the packet it quotes (RFC 792, RFC 4443: the original IP header and
/// at least the first 8 bytes after it, which hold the ports and, for TCP, the sequence number): who
/// sent it, about which flow, and what it says.
/// </summary>
internal readonly record struct IcmpError(
    IcmpErrorKind Kind,
    byte Type,
    byte Code,
    bool IsIPv6,
    ulong SenderHigh,
    ulong SenderLow,
    byte QuotedProtocol,
    FlowKey QuotedKey,
    bool QuotedFromA,
    bool HasQuotedSequence,
    uint QuotedSequence,
    int Mtu)
{
    /// <summary>The address of the host or router that sent the error.</summary>
    public string Sender => FlowKey.FormatAddress(SenderHigh, SenderLow);

    /// <summary>The quoted packet's destination, "address:port" (or the address alone without ports).</summary>
    public string QuotedDestination => QuotedProtocol is 6 or 17 ? QuotedKey.Endpoint(!QuotedFromA) : QuotedKey.Address(!QuotedFromA);

    public string QuotedSource => QuotedProtocol is 6 or 17 ? QuotedKey.Endpoint(QuotedFromA) : QuotedKey.Address(QuotedFromA);

    /// <summary>The error came from the quoted packet's destination itself, not from a device on the way to it.</summary>
    public bool FromDestination => Sender == QuotedKey.Address(!QuotedFromA);
}

/// <summary>Reads ICMP and ICMPv6 errors in place: the error, its sender, and the flow of the packet it quotes.</summary>
internal static class IcmpErrorReader
{
    /// <summary>ICMP destination unreachable (3) and time exceeded (11).</summary>
    public static bool IsIPv4Error(byte type) => type is 3 or 11;

    /// <summary>ICMPv6 destination unreachable (1), packet too big (2) and time exceeded (3).</summary>
    public static bool IsIPv6Error(byte type) => type is 1 or 2 or 3;

    public static bool TryRead(LinkLayers link, ReadOnlySpan<byte> frame, out IcmpError error)
    {
        error = default;
        if (!TcpHeaderReader.TryFindNetworkLayer(link, frame, out var etherType, out var offset) || offset >= frame.Length)
        {
            return false;
        }

        var ip = frame[offset..];
        return etherType switch
        {
            EthernetType.IPv4 => TryReadIPv4(ip, out error),
            EthernetType.IPv6 => TryReadIPv6(ip, out error),
            _ => false,
        };
    }

    private static bool TryReadIPv4(ReadOnlySpan<byte> ip, out IcmpError error)
    {
        error = default;
        var headerLength = (ip[0] & 0x0f) * 4;
        return ip.Length >= headerLength + 8 && headerLength >= 20 && ip[9] == (byte)ProtocolType.Icmp &&
            TryReadError(ip[headerLength..], ip.Slice(12, 4), isIPv6: false, out error);
    }

    private static bool TryReadIPv6(ReadOnlySpan<byte> ip, out IcmpError error)
    {
        error = default;
        return ip.Length >= 40 && TryFindIPv6Payload(ip, (byte)ProtocolType.IcmpV6, out var offset) && ip.Length >= offset + 8 &&
            TryReadError(ip[offset..], ip.Slice(8, 16), isIPv6: true, out error);
    }

    /// <summary>An ICMP (or ICMPv6) message from <paramref name="sender"/>: the error it is, if one, and what it quotes.</summary>
    private static bool TryReadError(ReadOnlySpan<byte> icmp, ReadOnlySpan<byte> sender, bool isIPv6, out IcmpError error)
    {
        error = default;
        var (type, code) = (icmp[0], icmp[1]);
        IcmpErrorKind? kind = (isIPv6, type) switch
        {
            (false, 3) => code == 4 ? IcmpErrorKind.PacketTooBig : IcmpErrorKind.Unreachable,
            (false, 11) or (true, 3) => IcmpErrorKind.TimeExceeded,
            (true, 1) => IcmpErrorKind.Unreachable,
            (true, 2) => IcmpErrorKind.PacketTooBig,
            _ => null,
        };
        if (kind is null)
        {
            return false;
        }

        // The next-hop MTU: the low 16 bits of the ICMP "fragmentation needed" (RFC 1191), all 32 of ICMPv6's "packet too big".
        var mtu = kind != IcmpErrorKind.PacketTooBig ? 0
            : isIPv6 ? (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(icmp[4..]), int.MaxValue)
            : BinaryPrimitives.ReadUInt16BigEndian(icmp[6..]);
        FlowKey.Widen(sender, out var high, out var low);
        return TryReadQuoted(icmp[8..], kind.Value, type, code, isIPv6, high, low, mtu, out error);
    }

    /// <summary>The quoted packet: its addresses, protocol, ports and (TCP) sequence number, as far as the error carries it.</summary>
    private static bool TryReadQuoted(ReadOnlySpan<byte> quoted, IcmpErrorKind kind, byte type, byte code, bool isIPv6, ulong senderHigh, ulong senderLow, int mtu, out IcmpError error)
    {
        error = default;
        if (quoted.Length < 1)
        {
            return false;
        }

        ReadOnlySpan<byte> source, destination, transport;
        byte protocol;
        if (quoted[0] >> 4 == 4 && quoted.Length >= 20)
        {
            var headerLength = Math.Max(20, (quoted[0] & 0x0f) * 4);
            source = quoted.Slice(12, 4);
            destination = quoted.Slice(16, 4);
            protocol = quoted[9];
            var fragmentOffset = BinaryPrimitives.ReadUInt16BigEndian(quoted[6..]) & 0x1fff;
            transport = quoted.Length > headerLength && fragmentOffset == 0 ? quoted[headerLength..] : [];
        }
        else if (quoted[0] >> 4 == 6 && quoted.Length >= 40)
        {
            source = quoted.Slice(8, 16);
            destination = quoted.Slice(24, 16);
            var found = TryFindTransport(quoted, out protocol, out var offset);
            transport = found && quoted.Length > offset ? quoted[offset..] : [];
        }
        else
        {
            return false;
        }

        var hasPorts = protocol is 6 or 17 && transport.Length >= 4;
        var key = FlowKey.Create(source, hasPorts ? BinaryPrimitives.ReadUInt16BigEndian(transport) : (ushort)0,
            destination, hasPorts ? BinaryPrimitives.ReadUInt16BigEndian(transport[2..]) : (ushort)0, out var fromA);
        var hasSequence = protocol == 6 && transport.Length >= 8;
        error = new IcmpError(kind, type, code, isIPv6, senderHigh, senderLow, hasPorts ? protocol : (byte)0, key, fromA,
            hasSequence, hasSequence ? BinaryPrimitives.ReadUInt32BigEndian(transport[4..]) : 0, mtu);
        return true;
    }

    /// <summary>Where the upper-layer payload of an IPv6 packet starts, past its extension headers, and which protocol it is.</summary>
    private static bool TryFindTransport(ReadOnlySpan<byte> ip, out byte protocol, out int offset)
    {
        protocol = ip[6];
        offset = 40;
        while (protocol is (byte)ProtocolType.IPv6HopByHopOptions or (byte)ProtocolType.IPv6RoutingHeader or (byte)ProtocolType.IPv6DestinationOptions)
        {
            if (ip.Length < offset + 2)
            {
                return false;
            }

            protocol = ip[offset];
            offset += (ip[offset + 1] + 1) * 8;
        }

        return true;
    }

    private static bool TryFindIPv6Payload(ReadOnlySpan<byte> ip, byte wanted, out int offset) =>
        TryFindTransport(ip, out var protocol, out offset) && protocol == wanted;
}
