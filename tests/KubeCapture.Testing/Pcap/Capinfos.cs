using System.Globalization;
using System.Text.RegularExpressions;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Pcap;

/// <summary>What <c>capinfos -M FILE</c> says about a pcap (exact numbers, no unit rounding).</summary>
public sealed record CapinfosReport(IReadOnlyDictionary<string, string> Fields)
{
    public string this[string key] => Fields.TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"capinfos printed no '{key}'");

    public long Packets => long.Parse(this["Number of packets"], CultureInfo.InvariantCulture);

    /// <summary>"Packet size limit: file hdr: 96 bytes" → 96.</summary>
    public int SnapshotLength => int.Parse(Regex.Match(this["Packet size limit"], @"file hdr: (\d+)").Groups[1].Value, CultureInfo.InvariantCulture);

    /// <summary>"File encapsulation", e.g. "linux-sll" or "ether".</summary>
    public string Encapsulation => this["File encapsulation"];

    public string Sha256 => this["SHA256"];

    public long FileSize => long.Parse(this["File size"].Split(' ')[0], CultureInfo.InvariantCulture);
}

/// <summary>The real capinfos reading a pcap.</summary>
public static class Capinfos
{
    /// <summary>Runs <c>capinfos -M FILE</c>; throws when capinfos cannot read it.</summary>
    public static async Task<CapinfosReport> ReadAsync(string path)
    {
        var result = (await HostCommand.RunAsync("capinfos", "-M", path)).EnsureSuccess();
        var fields = new Dictionary<string, string>();
        foreach (var line in result.Stdout.Split('\n'))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && !char.IsWhiteSpace(line[0]))
            {
                fields.TryAdd(line[..colon].Trim(), line[(colon + 1)..].Trim());
            }
        }

        return new CapinfosReport(fields);
    }
}
