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

    public static async Task<int> RunAsync(Request request, ClusterConnection cluster, Func<Stream> openStdout, CancellationToken cancellationToken)
    {
        using var response = await cluster.GetStreamAsync(CaptureSubresources.PathOf(cluster.Namespace, request.Name, CaptureSubresources.Follow, request.Pod), cancellationToken);
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        await using var output = openStdout();
        var buffer = new byte[65536];
        int read;
        while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
        {
            try
            {
                await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                await output.FlushAsync(cancellationToken);
            }
            catch (IOException)
            {
                return 0; // the reader closed the pipe: what it read is whole records up to there
            }
        }

        return 0;
    }
}
