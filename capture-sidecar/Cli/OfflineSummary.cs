using System.Text.Json;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Summary;
using PacketDotNet;
using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Cli;

/// <summary>
/// <c>summarize FILE.pcap</c>: the same TCP summary, for a capture file that already exists, read by
/// libpcap as <c>tcpdump -r</c> reads it. What cannot be read is said, never passed over: a file
/// that ends early or holds a corrupt record is summarized up to there and reported incomplete
/// (exit <see cref="IncompleteExitCode"/>); what is not a capture file at all is refused (exit 2).
/// </summary>
public static class OfflineSummary
{
    /// <summary>Summarized, but the summary does not cover all of the input: it ends early, has a corrupt record, or holds packets of a link type the summary does not decode.</summary>
    public const int IncompleteExitCode = 5;

    public static TcpSummaryReport Read(string path, IReadOnlyList<string>? localAddresses = null)
    {
        CheckIsFile(path);
        PcapFileReader reader;
        try
        {
            reader = PcapFileReader.Open(path);
        }
        catch (UnreadableCaptureException e)
        {
            throw new UsageException($"'{path}' is not a capture file libpcap can read: {e.Message}{Hint(path)}");
        }

        using (reader)
        {
            RefuseUnknownLinkType(path, reader.LinkType);

            var summary = new TcpSummary((LinkLayers)reader.LinkType, localAddresses);
            while (reader.TryRead(out var data, out var wireLength, out var time))
            {
                summary.Observe(data, wireLength, time);
            }

            if (reader.Error is { } error)
            {
                summary.EndedEarly(error, live: false);
            }

            var report = summary.Report();
            return report with { Input = report.Input with { BytesRead = reader.BytesRead, FileBytes = reader.FileBytes } };
        }
    }

    public static int Run(IReadOnlyList<string> args, TextWriter stdout)
    {
        var json = false;
        var local = new List<string>();
        var files = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] == "--json")
            {
                json = true;
            }
            else if (args[i] == "--local-address" && i + 1 < args.Count)
            {
                foreach (var address in args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    local.Add(System.Net.IPAddress.TryParse(address, out var parsed)
                        ? parsed.ToString()
                        : throw new UsageException($"--local-address: '{address}' is not an IP address"));
                }
            }
            else
            {
                files.Add(args[i]);
            }
        }

        if (files.Count != 1)
        {
            throw new UsageException("summarize takes one pcap file: kubecapture-agent summarize [--json] [--local-address ADDR[,ADDR...]] FILE.pcap");
        }

        var report = Read(files[0], local);
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(report, SummaryJsonContext.Default.TcpSummaryReport));
        }
        else
        {
            HumanReport.WriteSummary(stdout, report);
        }

        return report.Input.Covered ? 0 : IncompleteExitCode;
    }

    /// <summary>
    /// A directory, or a path that is not there, is refused by name. Anything else libpcap opens (a
    /// file, a named pipe) or refuses with its own reason (a device: "unknown file format", no read
    /// permission: "Permission denied").
    /// </summary>
    private static void CheckIsFile(string path)
    {
        if (Directory.Exists(path))
        {
            throw new UsageException($"'{path}' is a directory, not a capture file");
        }

        if (!File.Exists(path))
        {
            throw new UsageException($"no such file: '{path}'");
        }
    }

    /// <summary>
    /// A link type libpcap cannot compile a filter for is one no tool knows (the header is damaged):
    /// refused, as tcpdump refuses it (it compiles its filter, an empty one too, for every file it reads).
    /// Link types libpcap knows and the summary does not decode are read, counted and named.
    /// </summary>
    private static void RefuseUnknownLinkType(string path, int linkType)
    {
        try
        {
            using var program = BpfProgram.Create((LinkLayers)linkType, "");
        }
        catch (SharpPcap.PcapException e)
        {
            throw new UsageException($"'{path}': {e.Message} in its header: not a link type libpcap knows (the file is damaged, or not a capture)");
        }
    }

    /// <summary>A hint when the file is a known non-capture: gzip (a .pcap.gz not unpacked).</summary>
    private static string Hint(string path)
    {
        try
        {
            if (new FileInfo(path).Length < 2)
            {
                return ""; // empty, or a named pipe (whose content libpcap already took)
            }

            using var file = File.OpenRead(path);
            Span<byte> magic = stackalloc byte[2];
            return file.Read(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b ? " (it is gzip-compressed: gunzip it first)" : "";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
