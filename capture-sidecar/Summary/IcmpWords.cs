namespace KubeCapture.Agent.Summary;

/// <summary>What an ICMP error says, in the words of RFC 792, 1812 and 4443, and what it means for the flow it quotes.</summary>
internal static class IcmpWords
{
    /// <summary>The finding an error makes: unreachable and time exceeded are errors; packet too big is path MTU discovery at work.</summary>
    public static (string Type, string Severity) Finding(in IcmpError error) => error.Kind switch
    {
        IcmpErrorKind.PacketTooBig => (FindingTypes.IcmpPacketTooBig, FindingSeverity.Info),
        IcmpErrorKind.TimeExceeded => (FindingTypes.IcmpTimeExceeded, FindingSeverity.Error),
        _ when error.QuotedProtocol == 17 && IsPortUnreachable(error) => (FindingTypes.IcmpDestinationUnreachable, FindingSeverity.Warning),
        _ => (FindingTypes.IcmpDestinationUnreachable, FindingSeverity.Error),
    };

    /// <summary>"destination unreachable, administratively prohibited (type 3, code 13)".</summary>
    public static string What(in IcmpError error) => $"{Name(error)} (type {error.Type}, code {error.Code})";

    /// <summary>Who sent it: the quoted packet's destination, a device on the path, or this host.</summary>
    public static string By(in IcmpError error, IReadOnlySet<string> localAddresses) =>
        localAddresses.Contains(error.Sender) ? $"by this host ({error.Sender})"
        : error.FromDestination ? $"by {error.Sender}, the destination itself"
        : $"by {error.Sender}, a device on the path (not the destination {error.QuotedKey.Address(!error.QuotedFromA)})";

    public static string Meaning(in IcmpError error) => error.Kind switch
    {
        IcmpErrorKind.PacketTooBig => $"the path carries packets of at most {error.Mtu} bytes, and the sender must send smaller ones (path MTU discovery at work; where the big packets keep being sent all the same, an MTU blackhole)",
        IcmpErrorKind.TimeExceeded => error.Code == 0
            ? $"the packet's {(error.IsIPv6 ? "hop limit" : "TTL")} ran out on the way: a routing loop, or a {(error.IsIPv6 ? "hop limit" : "TTL")} set too low for the path"
            : "a fragmented packet was never reassembled: a fragment was lost on the way",
        _ when IsPortUnreachable(error) => error.QuotedProtocol == 17
            ? $"nothing listens on UDP port {error.QuotedKey.Port(!error.QuotedFromA)} there"
            : "nothing listens on that port there",
        _ when IsProhibited(error) => "a firewall or network policy rejects it",
        _ when IsNoRoute(error) => "no route to the destination's network from that router",
        _ => "the destination host cannot be reached (down, or its address unused: no ARP or neighbour answer)",
    };

    private static bool IsPortUnreachable(in IcmpError error) => error.IsIPv6 ? error.Code == 4 : error.Code == 3;

    private static bool IsProhibited(in IcmpError error) => error.IsIPv6 ? error.Code is 1 or 5 or 6 : error.Code is 9 or 10 or 13;

    private static bool IsNoRoute(in IcmpError error) => error.IsIPv6 ? error.Code == 0 : error.Code is 0 or 6 or 11;

    private static string Name(in IcmpError error) => (error.IsIPv6, error.Type, error.Code) switch
    {
        (false, 3, 0) => "destination unreachable, network unreachable",
        (false, 3, 1) => "destination unreachable, host unreachable",
        (false, 3, 2) => "destination unreachable, protocol unreachable",
        (false, 3, 3) => "destination unreachable, port unreachable",
        (false, 3, 4) => $"destination unreachable, fragmentation needed (next-hop MTU {error.Mtu})",
        (false, 3, 5) => "destination unreachable, source route failed",
        (false, 3, 6) => "destination unreachable, destination network unknown",
        (false, 3, 7) => "destination unreachable, destination host unknown",
        (false, 3, 9) => "destination unreachable, network administratively prohibited",
        (false, 3, 10) => "destination unreachable, host administratively prohibited",
        (false, 3, 11) => "destination unreachable, network unreachable for the type of service",
        (false, 3, 12) => "destination unreachable, host unreachable for the type of service",
        (false, 3, 13) => "destination unreachable, administratively prohibited",
        (false, 3, _) => "destination unreachable",
        (false, 11, 0) => "time exceeded, TTL exceeded in transit",
        (false, 11, _) => "time exceeded, fragment reassembly time exceeded",
        (true, 1, 0) => "destination unreachable, no route to destination",
        (true, 1, 1) => "destination unreachable, administratively prohibited",
        (true, 1, 2) => "destination unreachable, beyond scope of source address",
        (true, 1, 3) => "destination unreachable, address unreachable",
        (true, 1, 4) => "destination unreachable, port unreachable",
        (true, 1, 5) => "destination unreachable, source address failed ingress/egress policy",
        (true, 1, 6) => "destination unreachable, reject route to destination",
        (true, 1, _) => "destination unreachable",
        (true, 2, _) => $"packet too big (MTU {error.Mtu})",
        (true, 3, 0) => "time exceeded, hop limit exceeded in transit",
        (true, 3, _) => "time exceeded, fragment reassembly time exceeded",
        _ => "error",
    };
}
