using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using PacketDotNet;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>A TCP endpoint of a crafted frame.</summary>
internal sealed record Endpoint(string Address, ushort Port)
{
    public IPAddress Ip => IPAddress.Parse(Address);
}

/// <summary>
/// Builds the frames libpcap hands the agent: Ethernet (optionally VLAN-tagged) or Linux cooked
/// (SLL) around IPv4 or IPv6 around TCP, with the lengths in the IP header telling the truth about
/// the payload even when the frame is later cut (as a snaplen would).
/// </summary>
internal static class TcpFrames
{
    public const byte Fin = 0x01;
    public const byte Syn = 0x02;
    public const byte Rst = 0x04;
    public const byte Psh = 0x08;
    public const byte Ack = 0x10;

    /// <param name="bigTcp">
    /// Write the lengths the way Linux writes a packet longer than IP's 16 bits can say (BIG TCP, GRO):
    /// an IPv4 total length of 0; an IPv6 payload length of 0 with a hop-by-hop jumbo payload option
    /// (with <paramref name="hopByHop"/>) or without one.
    /// </param>
    /// <param name="ipId">The IPv4 identification.</param>
    /// <param name="timestamps">TSval and TSecr of a timestamps option (NOP, NOP, timestamps, as Linux lays it out); none without.</param>
    /// <param name="sack">The first SACK block (left, right edge), after the timestamps.</param>
    public static byte[] Tcp(LinkLayers link, Endpoint source, Endpoint destination, uint sequence, uint acknowledgment, byte flags,
        int payload = 0, ushort window = 64240, byte ttl = 64, bool vlan = false, bool hopByHop = false, bool bigTcp = false,
        ushort ipId = 0, (uint TsVal, uint TsEcr)? timestamps = null, (uint Left, uint Right)? sack = null)
    {
        var ipv6 = source.Ip.AddressFamily == AddressFamily.InterNetworkV6;
        var options = (timestamps is null ? 0 : 12) + (sack is null ? 0 : 12);
        var tcp = new byte[20 + options + payload];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, source.Port);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), destination.Port);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(8), acknowledgment);
        tcp[12] = (byte)((20 + options) / 4 << 4);
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), window);
        var at = 20;
        if (timestamps is { } ts)
        {
            tcp[at] = tcp[at + 1] = 1; // NOP, NOP
            tcp[at + 2] = 8;
            tcp[at + 3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(at + 4), ts.TsVal);
            BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(at + 8), ts.TsEcr);
            at += 12;
        }

        if (sack is { } block)
        {
            tcp[at] = tcp[at + 1] = 1;
            tcp[at + 2] = 5;
            tcp[at + 3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(at + 4), block.Left);
            BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(at + 8), block.Right);
        }

        var ip = ipv6 ? IPv6(source.Ip, destination.Ip, 6, tcp, ttl, hopByHop, bigTcp) : IPv4(source.Ip, destination.Ip, 6, tcp, ttl, ipId);
        if (bigTcp && !ipv6)
        {
            ip[2] = ip[3] = 0;
        }

        return Link(link, ipv6 ? (ushort)0x86dd : (ushort)0x0800, ip, vlan);
    }

    public static byte[] Udp(LinkLayers link, Endpoint source, Endpoint destination, int payload)
    {
        var udp = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(udp, source.Port);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(2), destination.Port);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(4), (ushort)udp.Length);
        return Link(link, 0x0800, IPv4(source.Ip, destination.Ip, 17, udp, 64), vlan: false);
    }

    public static byte[] Arp(LinkLayers link) => Link(link, 0x0806, new byte[28], vlan: false);

    private static byte[] IPv4(IPAddress source, IPAddress destination, byte protocol, byte[] payload, byte ttl, ushort id = 0)
    {
        var packet = new byte[20 + payload.Length];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), id);
        packet[6] = 0x40; // don't fragment
        packet[8] = ttl;
        packet[9] = protocol;
        source.GetAddressBytes().CopyTo(packet, 12);
        destination.GetAddressBytes().CopyTo(packet, 16);
        payload.CopyTo(packet, 20);
        return packet;
    }

    private static byte[] IPv6(IPAddress source, IPAddress destination, byte protocol, byte[] payload, byte hopLimit, bool hopByHop, bool jumbo = false)
    {
        var extension = hopByHop ? 8 : 0;
        var packet = new byte[40 + extension + payload.Length];
        packet[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), jumbo ? (ushort)0 : (ushort)(extension + payload.Length));
        packet[6] = hopByHop ? (byte)0 : protocol;
        packet[7] = hopLimit;
        source.GetAddressBytes().CopyTo(packet, 8);
        destination.GetAddressBytes().CopyTo(packet, 24);
        if (hopByHop)
        {
            packet[40] = protocol; // next header
            packet[41] = 0; // (0 + 1) * 8 bytes
            if (jumbo)
            {
                packet[42] = 0xc2; // jumbo payload (RFC 2675): the length after the IPv6 header
                packet[43] = 4;
                BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(44), (uint)(extension + payload.Length));
            }
            else
            {
                packet[42] = 1; // PadN
                packet[43] = 4;
            }
        }

        payload.CopyTo(packet, 40 + extension);
        return packet;
    }

    private static byte[] Link(LinkLayers link, ushort etherType, byte[] packet, bool vlan)
    {
        switch (link)
        {
            case LinkLayers.Ethernet:
                {
                    var header = vlan ? 18 : 14;
                    var frame = new byte[header + packet.Length];
                    byte[] mac = [0x02, 0, 0, 0, 0, 1];
                    mac.CopyTo(frame, 0);
                    mac.CopyTo(frame, 6);
                    if (vlan)
                    {
                        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x8100);
                        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), 42);
                    }

                    BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(header - 2), etherType);
                    packet.CopyTo(frame, header);
                    return frame;
                }

            case LinkLayers.LinuxSll:
                {
                    var frame = new byte[16 + packet.Length];
                    BinaryPrimitives.WriteUInt16BigEndian(frame, 4); // sent by us
                    BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), 1); // ARPHRD_ETHER
                    BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(4), 6);
                    BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), etherType);
                    packet.CopyTo(frame, 16);
                    return frame;
                }

            default:
                throw new ArgumentOutOfRangeException(nameof(link), link, "Ethernet or LinuxSll");
        }
    }
}
