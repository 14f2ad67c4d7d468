using System.Text.Json;
using KubeCapture.Agent.Summary;
using SharpPcap;
using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Cli;

/// <summary><c>summarize FILE.pcap</c>: the same TCP summary, for a pcap that already exists.</summary>
public static class OfflineSummary
{
    public static TcpSummaryReport Read(string path, IReadOnlyList<string>? localAddresses = null)
    {
        if (!File.Exists(path))
        {
            throw new UsageException($"no such file: '{path}'");
        }

        using var reader = new CaptureFileReaderDevice(path);
        try
        {
            reader.Open();
        }
        catch (PcapException e)
        {
            throw new UsageException($"'{path}' is not a pcap file libpcap can read: {e.Message}");
        }

        var summary = new TcpSummary(reader.LinkType, localAddresses);
        while (reader.GetNextPacket(out var packet) == GetPacketStatus.PacketRead)
        {
            summary.Observe(packet.Data, (long)(packet.Header.Timeval.Seconds * 1_000_000) + (long)packet.Header.Timeval.MicroSeconds);
        }

        return summary.Report();
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

        return 0;
    }
}
