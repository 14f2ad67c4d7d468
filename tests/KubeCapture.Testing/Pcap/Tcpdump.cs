using System.Globalization;
using System.Text.RegularExpressions;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Pcap;

/// <summary>One TCP line of <c>tcpdump -nn</c>, as a tcpdump user reads it.</summary>
public sealed record TcpdumpTcpLine(
    string Time,
    string Source,
    int SourcePort,
    string Destination,
    int DestinationPort,
    string Flags,
    long? Sequence,
    long? SequenceEnd,
    long? Acknowledgment,
    int Length,
    string Text)
{
    public bool IsIPv6 => Source.Contains(':', StringComparison.Ordinal);
}

/// <summary>What <c>tcpdump -nn -r FILE</c> printed.</summary>
public sealed record TcpdumpOutput(IReadOnlyList<string> Lines, string Stderr, int ExitCode = 0)
{
    /// <summary>
    /// Why tcpdump stopped reading, as libpcap said it ("truncated dump file; ...", "invalid packet
    /// capture length ..."): its last "tcpdump: " line on stderr, without pcap_loop's prefix. Null when it read to the end.
    /// </summary>
    public string? Error => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .LastOrDefault(l => l.StartsWith("tcpdump: ", StringComparison.Ordinal)) is { } line
        ? line["tcpdump: ".Length..].Replace("pcap_loop: ", "", StringComparison.Ordinal)
        : null;

    /// <summary>The link type from "reading from file ..., link-type LINUX_SLL (...)".</summary>
    public string? LinkType => Regex.Match(Stderr, @"link-type ([^\s,]+)") is { Success: true } m ? m.Groups[1].Value : null;

    /// <summary>The snapshot length tcpdump read from the file header.</summary>
    public int? SnapshotLength => Regex.Match(Stderr, @"snapshot length (\d+)") is { Success: true } m
        ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)
        : null;

    public IReadOnlyList<TcpdumpTcpLine> Tcp => [.. Lines.Select(Tcpdump.ParseTcp).OfType<TcpdumpTcpLine>()];
}

/// <summary>The real tcpdump reading a pcap: the ground truth the agent's files are held to.</summary>
public static partial class Tcpdump
{
    /// <summary>Runs <c>tcpdump -nn -r FILE [extra] [FILTER]</c>; throws if tcpdump cannot read the file.</summary>
    public static async Task<TcpdumpOutput> ReadAsync(string path, string? filter = null, params string[] extra)
    {
        string[] arguments = ["-nn", "-r", path, .. extra, .. filter is null ? Array.Empty<string>() : [filter]];
        var result = (await HostCommand.RunAsync("tcpdump", arguments)).EnsureSuccess();
        return new TcpdumpOutput(result.StdoutLines, result.Stderr);
    }

    /// <summary>Runs <c>tcpdump -nn -r FILE</c> on a file that may be damaged: what it printed before it stopped, its exit code and <see cref="TcpdumpOutput.Error"/>.</summary>
    public static async Task<TcpdumpOutput> ReadDamagedAsync(string path)
    {
        var result = await HostCommand.RunAsync("tcpdump", "-nn", "-r", path);
        return new TcpdumpOutput(result.StdoutLines, result.Stderr, result.ExitCode);
    }

    /// <summary>Parses a TCP line of tcpdump -nn; null for anything else (UDP, ICMP, ARP).</summary>
    public static TcpdumpTcpLine? ParseTcp(string line)
    {
        var m = TcpLine().Match(line);
        if (!m.Success)
        {
            return null;
        }

        var (source, sourcePort) = SplitEndpoint(m.Groups["src"].Value);
        var (destination, destinationPort) = SplitEndpoint(m.Groups["dst"].Value);
        return new TcpdumpTcpLine(
            m.Groups["time"].Value,
            source,
            sourcePort,
            destination,
            destinationPort,
            m.Groups["flags"].Value,
            Number(m.Groups["seq"]),
            Number(m.Groups["seqend"]),
            Number(m.Groups["ack"]),
            int.Parse(m.Groups["len"].Value, CultureInfo.InvariantCulture),
            line);
    }

    private static long? Number(Group group) => group.Success ? long.Parse(group.Value, CultureInfo.InvariantCulture) : null;

    private static (string Address, int Port) SplitEndpoint(string endpoint)
    {
        var dot = endpoint.LastIndexOf('.');
        return (endpoint[..dot], int.Parse(endpoint[(dot + 1)..], CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"^(?<time>\S+) .*?\bIP6? (?<src>\S+) > (?<dst>\S+): Flags \[(?<flags>[^\]]*)\](?:, seq (?<seq>\d+)(?::(?<seqend>\d+))?)?(?:, ack (?<ack>\d+))?.*?, length (?<len>\d+)")]
    private static partial Regex TcpLine();
}
