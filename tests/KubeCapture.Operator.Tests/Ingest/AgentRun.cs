using System.Text.RegularExpressions;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>The real agent in cluster mode, started as the operator would start it (args plus KUBECAPTURE_TOKEN).</summary>
public static partial class AgentRun
{
    public static async Task<ChildProcess> StartAsync(Uri ingest, CaptureIdentity target, string filter, string? token = null, params string[] extra)
    {
        token ??= new CaptureTokenIssuer(OperatorHost.TokenSecret).Issue(target);
        string[] args =
        [
            "capture", "--ingest", ingest.ToString(),
            "--capture-uid", target.CaptureUid, "--capture-namespace", target.Namespace, "--capture-name", target.CaptureName, "--pod", target.Pod,
            "-i", "lo", "-s", "0", "--duration", "60s", "--max-bytes", "256MiB", .. extra, filter,
        ];
        var agent = ChildProcess.StartDotnet(Builds.AgentDll, args, new Dictionary<string, string> { ["KUBECAPTURE_TOKEN"] = token });
        await agent.WaitForOutputAsync("kubecapture-agent: listening on", TimeSpan.FromSeconds(30));
        return agent;
    }

    /// <summary>The SHA-256 the agent reports for what the ingest stored ("stored URI (N bytes, sha256 X").</summary>
    public static string ReportedSha256(ChildProcess agent)
    {
        var match = StoredLine().Match(agent.Output);
        return match.Success ? match.Groups[1].Value : throw new InvalidOperationException("the agent did not report a stored pcap:\n" + agent.Output);
    }

    [GeneratedRegex(@"kubecapture-agent: stored \S+ \(\d+ bytes, sha256 ([0-9a-f]{64})")]
    private static partial Regex StoredLine();
}
