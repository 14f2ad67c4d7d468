using System.Text.RegularExpressions;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>The real agent in cluster mode, started as the operator would start it (args plus KUBECAPTURE_TOKEN).</summary>
public static partial class AgentRun
{
    /// <summary>Streams to <paramref name="host"/>'s ingest, trusting the CA it serves with.</summary>
    public static Task<ChildProcess> StartAsync(OperatorHost host, CaptureIdentity target, string filter, string? token = null, params string[] extra) =>
        StartAsync(host.IngestUrl, host.IngestCaPem, target, filter, token, extra);

    /// <summary>Streams to <paramref name="ingest"/>; an https:// one verified against <paramref name="caPem"/>.</summary>
    public static async Task<ChildProcess> StartAsync(Uri ingest, string? caPem, CaptureIdentity target, string filter, string? token = null, params string[] extra)
    {
        token ??= new CaptureTokenIssuer(OperatorHost.TokenSecret).Issue(target);
        string[] args =
        [
            "capture", "--ingest", ingest.ToString(), .. CaArgs(caPem),
            "--capture-uid", target.CaptureUid, "--capture-namespace", target.Namespace, "--capture-name", target.CaptureName, "--pod", target.Pod,
            "-i", "lo", "-s", "0", "--duration", "60s", "--max-bytes", "256MiB", .. extra, filter,
        ];
        var agent = ChildProcess.StartDotnet(Builds.AgentDll, args, new Dictionary<string, string> { ["KUBECAPTURE_TOKEN"] = token });
        await agent.WaitForOutputAsync("kubecapture-agent: listening on", TimeSpan.FromSeconds(30));
        return agent;
    }

    /// <summary>
    /// The agent inside a pod's network namespace (<c>ip netns exec</c>), capturing <paramref name="interfaceName"/>
    /// and streaming to <paramref name="host"/>'s ingest (at most 500 packets, 60 s), once it listens.
    /// </summary>
    public static async Task<ChildProcess> StartInPodAsync(string pod, OperatorHost host, CaptureIdentity target, string interfaceName, string snaplen, string filter)
    {
        var agent = ChildProcess.Start("ip", ["netns", "exec", pod, "dotnet",
            "exec", Builds.AgentDll, "capture", "--ingest", host.IngestUrl.ToString(), .. CaArgs(host.IngestCaPem),
            "--capture-uid", target.CaptureUid, "--capture-namespace", target.Namespace, "--capture-name", target.CaptureName, "--pod", target.Pod,
            "-i", interfaceName, "-s", snaplen, "-c", "500", "--duration", "60s", filter,
        ], new Dictionary<string, string> { ["KUBECAPTURE_TOKEN"] = new CaptureTokenIssuer(OperatorHost.TokenSecret).Issue(target) });
        await agent.WaitForOutputAsync("kubecapture-agent: listening on", TimeSpan.FromSeconds(30));
        return agent;
    }

    /// <summary><c>--ingest-ca-pem PEM</c> when there is a CA to trust.</summary>
    public static string[] CaArgs(string? caPem) => caPem is null ? [] : ["--ingest-ca-pem", caPem];

    /// <summary>The SHA-256 the agent reports for what the ingest stored ("stored URI (N bytes, sha256 X").</summary>
    public static string ReportedSha256(ChildProcess agent)
    {
        var match = StoredLine().Match(agent.Output);
        return match.Success ? match.Groups[1].Value : throw new InvalidOperationException("the agent did not report a stored pcap:\n" + agent.Output);
    }

    [GeneratedRegex(@"kubecapture-agent: stored \S+ \(\d+ bytes, sha256 ([0-9a-f]{64})")]
    private static partial Regex StoredLine();
}
