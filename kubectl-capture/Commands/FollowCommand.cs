using KubeCapture.Agent.Cli;
using KubeCapture.KubectlPlugin.Cli;
using KubeCapture.KubectlPlugin.Cluster;

namespace KubeCapture.KubectlPlugin.Commands;

/// <summary>
/// <c>follow NAME [--pod P]</c>: the live pcap on stdout, each chunk flushed as it arrives
/// (<c>| tcpdump -nn -l -r -</c>, <c>| wireshark -k -i -</c>); ends when the capture ends. The reader
/// going away (tcpdump -c, Wireshark closed) is a normal end.
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
    /// row that bring nothing end it with the error.
    /// </summary>
    public static async Task<int> RunAsync(Request request, ClusterConnection cluster, Func<Stream> openStdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        var path = CaptureSubresources.PathOf(cluster.Namespace, request.Name, CaptureSubresources.Follow, request.Pod);
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

                return 0; // the capture ended (or this was its stored pcap)
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
}
