using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Ingest;
using KubeCapture.Agent.Recorder;

namespace KubeCapture.Agent;

public static class Program
{
    /// <summary>Exit codes: 0 captured (verified), 1 failed while capturing (what was captured is kept), 2 bad input, 3 and 4 from verify (VerifyCommand), 5 from summarize when the summary does not cover all of its input (OfflineSummary).</summary>
    public static int Main(string[] args)
    {
        var stdout = Console.Out;
        var stderr = Console.Error;
        try
        {
            return args switch
            {
                [] or ["-h" or "--help" or "help"] => Help(stdout, CommandLine.Usage),
                ["--version" or "version"] => Version(stdout),
                ["capture", .. var rest] => Capture(CommandLine.ParseCapture(rest, DateTime.UtcNow), stdout, stderr),
                ["record", "-h" or "--help"] => Help(stdout, RecordCommandLine.Usage),
                ["record", .. var rest] => Record(RecordCommandLine.Parse(rest), stdout, stderr),
                ["summarize", .. var rest] => OfflineSummary.Run(rest, stdout),
                ["compare", .. var rest] => BothEnds.Run(rest, stdout),
                ["verify", .. var rest] => VerifyCommand.Run(rest, stdout, stderr),
                [var unknown, ..] => throw new UsageException($"unknown command '{unknown}': use 'capture', 'record', 'summarize', 'compare' or 'verify'"),
            };
        }
        catch (Exception e) when (e is UsageException or CaptureSetupException or DllNotFoundException)
        {
            return ExitCodes.RefuseInput(e, "kubecapture-agent", "libpcap is not installed (apt-get install libpcap0.8)", stderr);
        }
        catch (Exception e)
        {
            stderr.WriteLine($"kubecapture-agent: {e.GetType().Name}: {e.Message}");
            return ExitCodes.Failed;
        }
    }

    private static int Capture(CaptureRequest request, TextWriter stdout, TextWriter stderr) => request.Ingest is { } ingest
        ? ClusterCapture.Run(request, ingest, stdout, stderr)
        : LocalCapture.Run(request, stdout, stderr);

    private static int Record(RecorderOptions options, TextWriter stdout, TextWriter stderr) => options.Ingest is not null
        ? ClusterRecording.Run(options, stdout, stderr)
        : LocalRecording.Run(options, stdout, stderr);

    private static int Help(TextWriter stdout, string usage)
    {
        stdout.WriteLine(usage);
        return ExitCodes.Done;
    }

    private static int Version(TextWriter stdout)
    {
        stdout.WriteLine($"kubecapture-agent {Manifests.AgentVersion}");
        return ExitCodes.Done;
    }
}
