using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using PacketDotNet;

namespace KubeCapture.Agent.Summary;

/// <summary>
/// The fields of one TCP segment that the summary needs, read from its headers: which copy of a
/// segment this is can be told by its IPv4 identification (<see cref="IpId"/>, incremented per
/// packet by Linux and Windows) and its TCP timestamps; the first SACK block says what the receiver
/// has beyond a gap, or, below the acknowledged point, that it got something twice (D-SACK).
/// </summary>
[StructLayout(LayoutKind.Auto)]
internal struct TcpSegment
{
    public FlowKey Key;
    public bool FromA;
    public uint Sequence;
    public uint Acknowledgment;
    public byte Flags;
    public ushort Window;
    public int PayloadLength;
    public byte HopLimit;

    /// <summary>The window scale option of a SYN (<see cref="TcpHeaderReader.NoWindowScale"/> without one).</summary>
    public byte WindowShift;

    public ushort IpId;
    public bool IsIPv4;
    public bool HasTimestamps;
    public uint TsVal;
    public uint TsEcr;
    public bool HasSack;
    public uint SackLeft;
    public uint SackRight;
}

/// <summary>
/// Reads link, IP and TCP headers in place, without allocating. Lengths come from the IP and TCP
/// headers, never from how much was captured, so a snaplen-truncated packet is measured right and
/// a packet cut inside its headers is reported as undecodable instead of throwing. A packet bigger
/// than IP's 16-bit length (BIG TCP, or segments that GRO merged past 64 KB) says so the way Linux
/// writes it: an IPv4 total length of 0, an IPv6 payload length of 0 with a jumbo payload option (or
/// none); its length is then the one on the wire, from the capture's record header, as tcpdump and
/// tshark take it. The link-layer and protocol numbers are PacketDotNet's.
/// </summary>
internal static class TcpHeaderReader
{
    public const byte Fin = 0x01;
    public const byte Syn = 0x02;
    public const byte Rst = 0x04;
    public const byte Psh = 0x08;
    public const byte Ack = 0x10;

    /// <summary>The <see cref="TcpSegment.WindowShift"/> of a segment without the window scale option.</summary>
    public const byte NoWindowScale = 0xff;

    public enum Result
    {
        Tcp,
        NotTcp,
        Undecodable,

        /// <summary>
        /// The outgoing copy of a loopback packet, which <c>-i any</c> sees a second time as it comes
        /// in: counting it would make every localhost segment look retransmitted.
        /// </summary>
        LoopbackEcho,

        /// <summary>An ICMP or ICMPv6 error (destination unreachable, packet too big, time exceeded): read it with <see cref="IcmpErrorReader"/>.</summary>
        IcmpError,
    }

    private const ushort ArphrdLoopback = 772;
    private const ushort PacketOutgoing = 4;

    /// <summary>
    /// The link types whose packets the summary decodes: what a pod's capture holds (Ethernet with
    /// VLAN/QinQ tags, Linux cooked SLL and SLL2 for <c>-i any</c>, raw IP of tunnels such as WireGuard,
    /// BSD loopback). Packets of any other link type are counted, not analysed.
    /// </summary>
    public static bool Decodes(LinkLayers link) => link is LinkLayers.Ethernet or LinkLayers.LinuxSll or LinkLayers.LinuxSll2
        or LinkLayers.Raw or LinkLayers.RawLegacy or LinkLayers.IPv4 or LinkLayers.IPv6 or LinkLayers.Null or LinkLayers.Loop;

    /// <param name="wireLength">The packet's length on the wire (the record header's original length): the IP length of a BIG TCP packet.</param>
    public static Result TryRead(LinkLayers link, ReadOnlySpan<byte> frame, int wireLength, out TcpSegment segment)
    {
        Unsafe.SkipInit(out segment); // every field the summary reads is written on the way to Result.Tcp
        if (link == LinkLayers.Ethernet && frame.Length >= 34 && frame[12] == 0x08 && frame[13] == 0x00 && frame[14] == 0x45 && frame[23] == (byte)ProtocolType.Tcp)
        {
            // The usual segment, read without the general walk below (what it would do, in short):
            // Ethernet without VLAN tags, IPv4 without options, TCP, not a later fragment, its length given.
            var ipv4 = frame[14..];
            int totalLength = BinaryPrimitives.ReadUInt16BigEndian(ipv4[2..]);
            if (totalLength >= 20 && (BinaryPrimitives.ReadUInt16BigEndian(ipv4[6..]) & 0x1fff) == 0)
            {
                return ReadTcp(ipv4[20..], totalLength - 20, ipv4.Slice(12, 4), ipv4.Slice(16, 4), ipv4[8], BinaryPrimitives.ReadUInt16BigEndian(ipv4[4..]), isIPv4: true, out segment);
            }
        }

        if (IsLoopbackEcho(link, frame))
        {
            return Result.LoopbackEcho;
        }

        if (!TryFindNetworkLayer(link, frame, out var etherType, out var offset))
        {
            return frame.Length == 0 ? Result.Undecodable : Result.NotTcp;
        }

        if (offset > frame.Length)
        {
            return Result.Undecodable;
        }

        var ip = frame[offset..];
        var ipWireLength = Math.Max(ip.Length, wireLength - offset);
        return etherType switch
        {
            EthernetType.IPv4 => ReadIPv4(ip, ipWireLength, out segment),
            EthernetType.IPv6 => ReadIPv6(ip, ipWireLength, out segment),
            _ => Result.NotTcp,
        };
    }

    private static bool IsLoopbackEcho(LinkLayers link, ReadOnlySpan<byte> frame) => link switch
    {
        // SLL: packet type, ARPHRD type, ...; SLL2: protocol, reserved, ifindex, ARPHRD type, packet type, ...
        LinkLayers.LinuxSll => frame.Length >= 4 &&
            BinaryPrimitives.ReadUInt16BigEndian(frame) == PacketOutgoing &&
            BinaryPrimitives.ReadUInt16BigEndian(frame[2..]) == ArphrdLoopback,
        LinkLayers.LinuxSll2 => frame.Length >= 11 &&
            BinaryPrimitives.ReadUInt16BigEndian(frame[8..]) == ArphrdLoopback &&
            frame[10] == PacketOutgoing,
        _ => false,
    };

    /// <summary>Where the network layer starts in a frame of <paramref name="link"/>, and which it is (IPv4, IPv6, or the EtherType of something else).</summary>
    public static bool TryFindNetworkLayer(LinkLayers link, ReadOnlySpan<byte> frame, out EthernetType etherType, out int offset)
    {
        etherType = EthernetType.None;
        offset = 0;
        switch (link)
        {
            case LinkLayers.Ethernet:
                if (frame.Length < 14)
                {
                    return false;
                }

                offset = 12;
                var type = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
                while (type is 0x8100 or 0x88a8 or 0x9100 && frame.Length >= offset + 6)
                {
                    offset += 4;
                    type = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
                }

                etherType = (EthernetType)type;
                offset += 2;
                return true;
            case LinkLayers.LinuxSll:
                if (frame.Length < 16)
                {
                    return false;
                }

                etherType = (EthernetType)BinaryPrimitives.ReadUInt16BigEndian(frame[14..]);
                offset = 16;
                return true;
            case LinkLayers.LinuxSll2:
                if (frame.Length < 20)
                {
                    return false;
                }

                etherType = (EthernetType)BinaryPrimitives.ReadUInt16BigEndian(frame);
                offset = 20;
                return true;
            case LinkLayers.Raw:
            case LinkLayers.RawLegacy:
            case LinkLayers.IPv4:
            case LinkLayers.IPv6:
                if (frame.Length < 1)
                {
                    return false;
                }

                etherType = (frame[0] >> 4) switch
                {
                    4 => EthernetType.IPv4,
                    6 => EthernetType.IPv6,
                    _ => EthernetType.None,
                };
                return true;
            case LinkLayers.Null:
            case LinkLayers.Loop:
                if (frame.Length < 5)
                {
                    return false;
                }

                offset = 4;
                etherType = (frame[4] >> 4) switch
                {
                    4 => EthernetType.IPv4,
                    6 => EthernetType.IPv6,
                    _ => EthernetType.None,
                };
                return true;
            default:
                return false;
        }
    }

    private static Result ReadIPv4(ReadOnlySpan<byte> ip, int wireLength, out TcpSegment segment)
    {
        Unsafe.SkipInit(out segment); // every field the summary reads is written on the way to Result.Tcp
        if (ip.Length < 20 || ip[0] >> 4 != 4)
        {
            return Result.Undecodable;
        }

        var headerLength = (ip[0] & 0x0f) * 4;
        if (ip[9] != (byte)ProtocolType.Tcp)
        {
            return ip[9] == (byte)ProtocolType.Icmp && ip.Length > headerLength && IcmpErrorReader.IsIPv4Error(ip[headerLength]) &&
                (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1fff) == 0
                ? Result.IcmpError
                : Result.NotTcp;
        }

        int totalLength = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (totalLength == 0)
        {
            totalLength = wireLength; // BIG TCP / TSO: longer than 16 bits can say
        }

        var fragmentOffset = BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1fff;
        if (fragmentOffset != 0)
        {
            return Result.NotTcp; // a later fragment carries no TCP header
        }

        if (headerLength < 20 || totalLength < headerLength)
        {
            return Result.Undecodable;
        }

        var source = ip.Slice(12, 4);
        var destination = ip.Slice(16, 4);
        if (ip.Length < headerLength)
        {
            return Result.Undecodable;
        }

        return ReadTcp(ip[headerLength..], totalLength - headerLength, source, destination, ip[8], BinaryPrimitives.ReadUInt16BigEndian(ip[4..]), isIPv4: true, out segment);
    }

    private static Result ReadIPv6(ReadOnlySpan<byte> ip, int wireLength, out TcpSegment segment)
    {
        Unsafe.SkipInit(out segment); // every field the summary reads is written on the way to Result.Tcp
        if (ip.Length < 40 || ip[0] >> 4 != 6)
        {
            return Result.Undecodable;
        }

        int payloadLength = BinaryPrimitives.ReadUInt16BigEndian(ip[4..]);
        if (payloadLength == 0)
        {
            // A jumbogram (RFC 2675): the length is in the hop-by-hop jumbo payload option, when
            // there is one (Linux BIG TCP before 6.x dropped it); else the length on the wire.
            payloadLength = JumboPayloadLength(ip) ?? wireLength - 40;
        }

        var next = ip[6];
        var offset = 40;
        while (true)
        {
            switch ((ProtocolType)next)
            {
                case ProtocolType.Tcp:
                    if (ip.Length < offset)
                    {
                        return Result.Undecodable;
                    }

                    return ReadTcp(ip[offset..], payloadLength - (offset - 40), ip.Slice(8, 16), ip.Slice(24, 16), ip[7], 0, isIPv4: false, out segment);
                case ProtocolType.IcmpV6:
                    return ip.Length > offset && IcmpErrorReader.IsIPv6Error(ip[offset]) ? Result.IcmpError : Result.NotTcp;
                case ProtocolType.IPv6HopByHopOptions:
                case ProtocolType.IPv6RoutingHeader:
                case ProtocolType.IPv6DestinationOptions:
                    if (ip.Length < offset + 2)
                    {
                        return Result.Undecodable;
                    }

                    next = ip[offset];
                    offset += (ip[offset + 1] + 1) * 8;
                    break;
                case ProtocolType.IPv6FragmentHeader:
                    if (ip.Length < offset + 8)
                    {
                        return Result.Undecodable;
                    }

                    if ((BinaryPrimitives.ReadUInt16BigEndian(ip[(offset + 2)..]) & 0xfff8) != 0)
                    {
                        return Result.NotTcp;
                    }

                    next = ip[offset];
                    offset += 8;
                    break;
                default:
                    return Result.NotTcp;
            }
        }
    }

    /// <summary>The jumbo payload option (type 0xC2) of a hop-by-hop header right after the IPv6 header, as far as it was captured.</summary>
    private static int? JumboPayloadLength(ReadOnlySpan<byte> ip)
    {
        if (ip[6] != (byte)ProtocolType.IPv6HopByHopOptions || ip.Length < 48)
        {
            return null;
        }

        var end = Math.Min(ip.Length, 40 + ((ip[41] + 1) * 8));
        for (var i = 42; i < end;)
        {
            var type = ip[i];
            if (type == 0)
            {
                i++; // Pad1
                continue;
            }

            if (i + 1 >= end)
            {
                break;
            }

            if (type == 0xc2 && ip[i + 1] == 4 && i + 6 <= end)
            {
                var jumbo = BinaryPrimitives.ReadUInt32BigEndian(ip[(i + 2)..]);
                return jumbo > int.MaxValue ? null : (int)jumbo;
            }

            i += 2 + ip[i + 1];
        }

        return null;
    }

    private static Result ReadTcp(ReadOnlySpan<byte> tcp, int tcpLength, ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte hopLimit, ushort ipId, bool isIPv4, out TcpSegment segment)
    {
        Unsafe.SkipInit(out segment); // every field the summary reads is written on the way to Result.Tcp
        if (tcp.Length < 16)
        {
            return Result.Undecodable;
        }

        // The first 16 bytes are there: read without a bounds check each.
        ref var header = ref MemoryMarshal.GetReference(tcp);
        var dataOffset = (Unsafe.Add(ref header, 12) >> 4) * 4;
        if (dataOffset < 20 || tcpLength < dataOffset)
        {
            return Result.Undecodable;
        }

        segment.Key = FlowKey.Create(source, BigEndian16(ref header, 0), destination, BigEndian16(ref header, 2), out segment.FromA);
        var flags = Unsafe.Add(ref header, 13);
        segment.Sequence = BigEndian32(ref header, 4);
        segment.Acknowledgment = BigEndian32(ref header, 8);
        segment.Flags = flags;
        segment.Window = BigEndian16(ref header, 14);
        segment.PayloadLength = tcpLength - dataOffset;
        segment.HopLimit = hopLimit;
        segment.IpId = ipId;
        segment.IsIPv4 = isIPv4;
        segment.WindowShift = NoWindowScale;
        segment.HasTimestamps = false;
        segment.HasSack = false;
        if (dataOffset > 20)
        {
            ReadOptions(ref segment, tcp[20..Math.Min(dataOffset, tcp.Length)], (flags & Syn) != 0);
        }

        return Result.Tcp;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort BigEndian16(ref byte start, int offset)
    {
        var value = Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref start, offset));
        return BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint BigEndian32(ref byte start, int offset)
    {
        var value = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref start, offset));
        return BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;
    }

    /// <summary>
    /// The options the summary reads, as far as they were captured: timestamps (RFC 7323), the first
    /// SACK block (RFC 2018; a D-SACK, RFC 2883, is always first) and, on a SYN, the window scale.
    /// The usual layout of a Linux segment (NOP, NOP, timestamps) is read without the loop.
    /// </summary>
    private static void ReadOptions(ref TcpSegment segment, ReadOnlySpan<byte> options, bool syn)
    {
        if (!syn && options.Length == 12 && BinaryPrimitives.ReadUInt32BigEndian(options) == 0x0101080a)
        {
            segment.HasTimestamps = true;
            segment.TsVal = BinaryPrimitives.ReadUInt32BigEndian(options[4..]);
            segment.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(options[8..]);
            return;
        }

        for (var i = 0; i < options.Length;)
        {
            var kind = options[i];
            if (kind == 0)
            {
                break;
            }

            if (kind == 1)
            {
                i++;
                continue;
            }

            if (i + 1 >= options.Length || options[i + 1] < 2 || i + options[i + 1] > options.Length)
            {
                break; // malformed, or cut by the snaplen
            }

            var length = options[i + 1];
            switch (kind)
            {
                case 3 when syn && length == 3:
                    segment.WindowShift = Math.Min(options[i + 2], (byte)14);
                    break;
                case 5 when length >= 10:
                    segment.HasSack = true;
                    segment.SackLeft = BinaryPrimitives.ReadUInt32BigEndian(options[(i + 2)..]);
                    segment.SackRight = BinaryPrimitives.ReadUInt32BigEndian(options[(i + 6)..]);
                    break;
                case 8 when length == 10:
                    segment.HasTimestamps = true;
                    segment.TsVal = BinaryPrimitives.ReadUInt32BigEndian(options[(i + 2)..]);
                    segment.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(options[(i + 6)..]);
                    break;
            }

            i += length;
        }
    }
}
