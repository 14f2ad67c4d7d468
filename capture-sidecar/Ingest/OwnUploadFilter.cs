using System.Net;
using System.Net.Sockets;

namespace KubeCapture.Agent.Ingest;

/// <summary>
/// In cluster mode the agent streams from inside the pod's network namespace, so its own upload to
/// the ingest crosses the interfaces it captures on: without this, every capture (any capture
/// without a filter, or one of all TCP) would hold the agent's own TLS stream, and its summary would
/// count it. The filter libpcap compiles is the user's, and not TCP to or from the ingest's
/// addresses and port, nor ICMP to or from those addresses, nor an ICMPv4 error about that stream
/// from anywhere (kube-proxy rejects a connection to a Service without a ready endpoint, as while the
/// operator restarts, with "port unreachable" sent from the node's address on the pod network, quoting
/// the agent's packet to the ingest). The manifest keeps the user's filter as given.
/// </summary>
public static class OwnUploadFilter
{
    /// <summary>The BPF filter that keeps <paramref name="filter"/> and drops the upload to <paramref name="addresses"/>:<paramref name="port"/>.</summary>
    public static string Combine(string filter, IReadOnlyList<IPAddress> addresses, int port)
    {
        if (addresses.Count == 0)
        {
            return filter;
        }

        var hosts = string.Join(" or ", addresses.Select(a => $"host {a}"));
        var own = $"((tcp port {port} or icmp or icmp6) and ({hosts}))";
        // An ICMPv4 error quotes the IPv4 header (destination at byte 16) and the TCP ports of the packet it is about (a 20-byte header, as the agent's are).
        var quoted = addresses.Where(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
            .Select(a => $"icmp[24:4] = 0x{Convert.ToHexStringLower(a.GetAddressBytes())}").ToList();
        if (quoted.Count > 0)
        {
            own += $" or (icmp and (icmp[0] = 3 or icmp[0] = 11) and icmp[8] = 0x45 and icmp[17] = 6 and ({string.Join(" or ", quoted)}) and icmp[30:2] = {port})";
        }

        return filter.Trim().Length == 0 ? $"not ({own})" : $"({filter}) and not ({own})";
    }

    /// <summary>The addresses the ingest's host resolves to (an IP literal is itself); empty, with a warning, when it does not resolve now.</summary>
    public static IReadOnlyList<IPAddress> Resolve(Uri ingest, TextWriter stderr)
    {
        if (IPAddress.TryParse(ingest.Host.Trim('[', ']'), out var literal))
        {
            return [literal];
        }

        try
        {
            return [.. Dns.GetHostAddresses(ingest.Host).Distinct()];
        }
        catch (SocketException e)
        {
            stderr.WriteLine($"kubecapture-agent: warning: {ingest.Host} does not resolve yet ({e.Message}): the pcap may hold the agent's own upload");
            return [];
        }
    }
}
