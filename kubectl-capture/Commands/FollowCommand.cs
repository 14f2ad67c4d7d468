using KubeCapture.Contracts;
using KubeCapture.Contracts.Arguments;
using KubeCapture.Contracts.Resources;
using KubeCapture.KubectlPlugin.Cli;
using KubeCapture.KubectlPlugin.Cluster;

namespace KubeCapture.KubectlPlugin.Commands;

/// <summary>
/// <c>follow NAME [--pod P]</c>: the live pcap on stdout, each chunk flushed as it arrives
/// (<c>| tcpdump -nn -l -r -</c>, <c>| wireshark -k -i -</c>); ends when the capture ends. The reader
/// going away (tcpdump -c, Wireshark closed) is a normal end. A follow that ends while the capture
/// still runs was cut off by the operator for falling behind: said on stderr, exit 1.
/// </summary>
public static class FollowCommand
{
    public sealed record Request(string Name, string? Pod);

    /// <summary>One capture name, and stdout not a terminal (a binary pcap would garble it): checked before the cluster is asked.</summary>
    public static Request Check(PluginArguments args, bool stdoutIsTerminal)
    {
        args.Allow("--pod");
        var name = ResourceCommands.OneName(args);
        return stdoutIsTerminal
            ? throw new UsageException($"follow writes a binary pcap: pipe it into a reader, e.g. kubectl capture follow {name} | tcpdump -nn -l -r -")
            : new Request(name, args.Option("--pod"));
    }

    /// <summary>
    /// kube-apiserver ends a request to an extension API after its <c>--request-timeout</c> (1 minute
    /// by default), a live follow included: a stream that breaks while the capture runs is followed
    /// again, and stdout goes on as one pcap (<see cref="FollowedPcap"/>). A record that reached the
    /// ingest while no follower was connected is only in the stored pcap (download). Three breaks in a
    /// row that bring nothing end it with the error. A stream the operator ends while the capture still
    /// runs was cut off for falling behind: said on stderr, exit 1.
    /// </summary>
    public static async Task<int> RunAsync(Request request, ClusterConnection cluster, Func<Stream> openStdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var path = ExtensionApi.PathOf(cluster.Namespace, request.Name, ExtensionApi.Follow, request.Pod);
        await using var output = openStdout();
        var pcap = new FollowedPcap(output);
        var buffer = new byte[65536];
        var fruitless = 0;
        while (true)
        {
            using var response = await cluster.GetStreamAsync(path, cancellationToken);
            var before = pcap.Records;
            pcap.StartStream();
            try
            {
                await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
                int read;
                while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    if (!await pcap.WriteAsync(buffer.AsMemory(0, read), cancellationToken))
                    {
                        return 0;
                    }
                }

                return await EndedAsync(request, cluster, stderr, cancellationToken); // the capture ended (or this was its stored pcap), or the operator cut the follower off
            }
            catch (IOException e) when (!cancellationToken.IsCancellationRequested)
            {
                fruitless = pcap.Records > before ? 0 : fruitless + 1;
                if (fruitless >= 3)
                {
                    throw;
                }

                stderr.WriteLine($"kubectl-capture: the live stream broke ({e.Message}; kube-apiserver ends a request to an extension API after its request timeout, 1 minute by default): following again, the pcap goes on");
                stderr.Flush();
            }
        }
    }

    /// <summary>
    /// 0 when the followed target ended (or its status cannot be read: a user with the download role
    /// alone may not get the capture); 1, said on stderr, when it still captures (the operator cut the
    /// follower off).
    /// </summary>
    private static async Task<int> EndedAsync(Request request, ClusterConnection cluster, TextWriter stderr, CancellationToken cancellationToken)
    {
        // The follow ends when the capture ends; the status says so moments later (the agent confirms the stored pcap).
        var deadline = DateTime.UtcNow.AddSeconds(30);
        PacketCapture capture;
        try
        {
            capture = await ResourceCommands.GetAsync(cluster, request.Name, cancellationToken);
            while (StillCapturing(capture, request.Pod) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
                capture = await ResourceCommands.GetAsync(cluster, request.Name, cancellationToken);
            }
        }
        catch (ClusterException)
        {
            return 0;
        }

        if (StillCapturing(capture, request.Pod))
        {
            await stderr.WriteLineAsync($"kubectl-capture: the follow of {request.Name} ended while the capture still runs: the operator cut it off for falling too far behind " +
                $"(its stream ends at a whole record); follow again, or download the pcap when the capture ends (kubectl capture download {request.Name})");
            return 1;
        }

        return 0;
    }

    /// <summary>The followed target (or the only one) is still capturing.</summary>
    private static bool StillCapturing(PacketCapture capture, string? pod) =>
        capture.Status?.Phase is not ("Succeeded" or "Failed")
        && (capture.Status?.Targets.FirstOrDefault(t => pod is null || t.Pod == pod)?.State ?? "Capturing") == "Capturing";
}
