using System.Text.Json;
using KubeCapture.Agent.Summary;
using SharpPcap;
using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Cli;

/// <summary><c>summarize FILE.pcap</c>: the same TCP summary, for a pcap that already exists.</summary>
public static class OfflineSummary
{
    public static TcpSummaryReport Read(string path)
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

        var summary = new TcpSummary(reader.LinkType);
        while (reader.GetNextPacket(out var packet) == GetPacketStatus.PacketRead)
        {
            summary.Observe(packet.Data);
        }

        return summary.Report();
    }

    public static int Run(IReadOnlyList<string> args, TextWriter stdout)
    {
        var json = args.Contains("--json");
        var files = args.Where(a => a != "--json").ToList();
        if (files.Count != 1)
        {
            throw new UsageException("summarize takes one pcap file: kubecapture-agent summarize [--json] FILE.pcap");
        }

        var report = Read(files[0]);
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
