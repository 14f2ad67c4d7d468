using System.Buffers.Binary;
using KubeCapture.Agent.Summary;
using PacketDotNet;
using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Capture;

/// <summary>
/// The filter the kernel runs when the user gives one: theirs, widened to what speaks about the flows
/// it selects without matching it, then narrowed again here, packet by packet. A filter such as
/// <c>tcp port 5432</c> never matches the ICMP error that rejects the SYN (an ICMP packet, not a TCP
/// one), nor an IPv6 BIG TCP packet (its hop-by-hop jumbo header sits before the TCP header, where
/// libpcap's <c>tcp</c> does not look). The kernel also passes ICMP and ICMPv6 errors (destination
/// unreachable, packet too big, time exceeded) and IPv6 packets whose hop-by-hop header carries TCP;
/// of those that the user's filter does not match itself, only the ones it matches once read as it
/// means them are kept: an ICMP error whose quoted packet (the one it is about) the filter matches,
/// a jumbogram whose TCP the filter matches. Everything else the widening let through is discarded
/// before it is written or counted. What was added and discarded goes into the manifest.
/// </summary>
public sealed class WidenedFilter : IDisposable
{
    /// <summary>The clauses added to the user's filter, ahead of it (so that a <c>vlan</c> or <c>mpls</c> in the user's filter, which shifts the offsets of what follows it, cannot shift them).</summary>
    public const string Additions =
        "icmp[icmptype] == icmp-unreach or icmp[icmptype] == icmp-timxceed" +
        " or icmp6[icmp6type] == icmp6-destinationunreach or icmp6[icmp6type] == icmp6-packettoobig or icmp6[icmp6type] == icmp6-timeexceeded" +
        " or (ip6[6] == 0 and ip6[40] == 6)";

    private readonly LinkLayers _link;
    private readonly CompiledFilter _user;
    private readonly int _snaplen;
    private byte[]? _scratch;

    private WidenedFilter(LinkLayers link, CompiledFilter user, string expression, int snaplen)
    {
        _link = link;
        _user = user;
        _snaplen = snaplen;
        Expression = expression;
    }

    /// <summary>The expression the kernel runs.</summary>
    public string Expression { get; }

    /// <summary>Packets kept that the user's filter alone did not match: ICMP errors about the flows it selects, jumbograms of them.</summary>
    public long Added { get; private set; }

    /// <summary>Packets the widening let through that were about other flows: discarded, neither written nor counted.</summary>
    public long Discarded { get; private set; }

    /// <summary>The kernel's expression for <paramref name="filter"/>: the additions, then the user's filter.</summary>
    public static string Widen(string filter) => $"({Additions}) or ({filter})";

    /// <summary>The user's filter compiled for the open capture, to check the widening's packets against.</summary>
    public static WidenedFilter Create(PcapHandle handle, LinkLayers link, string filter, int snaplen) =>
        new(link, CompiledFilter.For(handle, filter), Widen(filter), snaplen);

    /// <summary>Whether to keep a packet the kernel passed: all of them but what only the widening let through and the user's filter, read as it means, does not select.</summary>
    public bool Keep(ReadOnlySpan<byte> frame, uint wireLength)
    {
        if (!TcpHeaderReader.TryFindNetworkLayer(_link, frame, out var etherType, out var offset) || offset >= frame.Length)
        {
            return true;
        }

        var ip = frame[offset..];
        var candidate = etherType switch
        {
            EthernetType.IPv4 => IsIPv4IcmpError(ip) ? Candidate.IcmpError : Candidate.None,
            EthernetType.IPv6 when ip.Length >= 41 => ip[6] switch
            {
                58 when ip.Length > 40 && IcmpErrorReader.IsIPv6Error(ip[40]) => Candidate.IcmpError,
                0 when ip[40] == 6 => Candidate.Jumbogram,
                _ => Candidate.None,
            },
            _ => Candidate.None,
        };
        if (candidate == Candidate.None || _user.Matches(frame, wireLength))
        {
            return true; // the user's filter selected it
        }

        var rewritten = candidate == Candidate.IcmpError ? Quoted(frame, offset, etherType) : WithoutHopByHop(frame, offset);
        if (rewritten.Length > 0 && _user.Matches(rewritten, (uint)rewritten.Length))
        {
            Added++;
            return true;
        }

        Discarded++;
        return false;
    }

    private static bool IsIPv4IcmpError(ReadOnlySpan<byte> ip)
    {
        if (ip.Length < 20 || ip[9] != 1)
        {
            return false;
        }

        var headerLength = (ip[0] & 0x0f) * 4;
        return ip.Length > headerLength && IcmpErrorReader.IsIPv4Error(ip[headerLength]);
    }

    /// <summary>The packet an ICMP error quotes, framed as this capture's packets are: what the user's filter would have seen of it.</summary>
    private ReadOnlySpan<byte> Quoted(ReadOnlySpan<byte> frame, int offset, EthernetType etherType)
    {
        var ip = frame[offset..];
        var icmpOffset = etherType == EthernetType.IPv4 ? (ip[0] & 0x0f) * 4 : 40;
        var quotedOffset = icmpOffset + 8;
        if (ip.Length <= quotedOffset)
        {
            return [];
        }

        var quoted = ip[quotedOffset..];
        var version = quoted[0] >> 4;
        if (version is not (4 or 6))
        {
            return [];
        }

        return Frame(frame[..offset], version == 4 ? (ushort)EthernetType.IPv4 : (ushort)EthernetType.IPv6, quoted, []);
    }

    /// <summary>A jumbogram with its hop-by-hop header taken out: the IPv6 header then says TCP, as the user's <c>tcp</c> expects.</summary>
    private ReadOnlySpan<byte> WithoutHopByHop(ReadOnlySpan<byte> frame, int offset)
    {
        var ip = frame[offset..];
        var hopByHop = (ip[41] + 1) * 8;
        if (ip.Length < 40 + hopByHop)
        {
            return [];
        }

        Span<byte> header = stackalloc byte[40];
        ip[..40].CopyTo(header);
        header[6] = ip[40]; // its next header
        return Frame(frame[..offset], (ushort)EthernetType.IPv6, header, ip[(40 + hopByHop)..]);
    }

    /// <summary>The link header, its protocol field set to <paramref name="etherType"/>, then the packet in the scratch buffer.</summary>
    private ReadOnlySpan<byte> Frame(scoped ReadOnlySpan<byte> link, ushort etherType, scoped ReadOnlySpan<byte> first, scoped ReadOnlySpan<byte> rest)
    {
        var length = link.Length + first.Length + rest.Length;
        _scratch ??= new byte[_snaplen]; // a rewritten frame is never longer than the captured one
        var frame = _scratch.AsSpan(0, Math.Min(length, _scratch.Length));
        link[..Math.Min(link.Length, frame.Length)].CopyTo(frame);
        switch (_link)
        {
            case LinkLayers.Ethernet or LinkLayers.LinuxSll when link.Length >= 2:
                BinaryPrimitives.WriteUInt16BigEndian(frame[(link.Length - 2)..], etherType);
                break;
            case LinkLayers.LinuxSll2 when link.Length >= 2:
                BinaryPrimitives.WriteUInt16BigEndian(frame, etherType);
                break;
        }

        first[..Math.Min(first.Length, frame.Length - link.Length)].CopyTo(frame[link.Length..]);
        var restOffset = Math.Min(frame.Length, link.Length + first.Length);
        rest[..Math.Min(rest.Length, frame.Length - restOffset)].CopyTo(frame[restOffset..]);
        return frame;
    }

    public void Dispose() => _user.Dispose();

    private enum Candidate
    {
        None,
        IcmpError,
        Jumbogram,
    }
}
