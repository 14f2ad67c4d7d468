using System.Text.Json;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Summary;

namespace KubeCapture.Agent.Cli;

/// <summary><c>compare A.pcap.json B.pcap.json</c>: the manifests of captures taken at the two ends of the same conversations, compared.</summary>
public static class BothEnds
{
    public static int Run(IReadOnlyList<string> args, TextWriter stdout)
    {
        var json = args.Contains("--json");
        var files = args.Where(a => a != "--json").ToList();
        if (files.Count != 2)
        {
            throw new UsageException("compare takes the manifests of two captures, one at each end: kubecapture-agent compare [--json] CLIENT.pcap.json SERVER.pcap.json");
        }

        var (first, second) = (Manifest(files[0]), Manifest(files[1]));
        var findings = EndComparison.Compare(Summary(first, files[0]), Summary(second, files[1]),
            capturesMissedPackets: first.PacketsDroppedByKernel + second.PacketsDroppedByKernel > 0).ToList();
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(findings, SummaryJsonContext.Default.ListFinding));
            return 0;
        }

        if (findings.Count == 0)
        {
            stdout.WriteLine("Both ends agree: nothing that only a comparison shows (no forged reset, no lost return path, no SYN dropped in between, no data lost on one leg).");
        }

        foreach (var finding in findings)
        {
            stdout.WriteLine($"- {finding.Severity} {finding.Type}: {finding.Message}");
            if (finding.Evidence.PacketNumbers.Count > 0)
            {
                stdout.WriteLine($"  packets (Wireshark frame.number): {string.Join(", ", finding.Evidence.PacketNumbers)}");
            }
        }

        return 0;
    }

    private static CaptureManifest Manifest(string path)
    {
        if (!File.Exists(path))
        {
            throw new UsageException($"no such file: '{path}'");
        }

        try
        {
            return CaptureManifest.FromJson(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new UsageException($"'{path}' is not a capture manifest (the FILE.json written beside the pcap): {e.Message}");
        }
    }

    private static TcpSummaryReport Summary(CaptureManifest manifest, string path) =>
        manifest.Summary ?? throw new UsageException($"'{path}' has no TCP summary (captured with --no-summary?)");
}
