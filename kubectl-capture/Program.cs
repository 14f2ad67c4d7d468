using System.Reflection;
using k8s.Autorest;
using KubeCapture.Contracts.Arguments;
using KubeCapture.Contracts.Custody;
using KubeCapture.KubectlPlugin.Cli;
using KubeCapture.KubectlPlugin.Cluster;
using KubeCapture.KubectlPlugin.Commands;

namespace KubeCapture.KubectlPlugin;

public static class Program
{
    public const string Name = "kubectl-capture";

    public static string Version { get; } =
        typeof(Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>Exit codes: 0 done; 1 the cluster refused or failed (its message on stderr); 2 bad input; verify: 3 NOT verified, 4 issuer unproven (as kubecapture-agent verify).</summary>
    public static async Task<int> Main(string[] args)
    {
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        return await RunAsync(args, Console.Out, Console.Error, Console.OpenStandardOutput, Console.IsOutputRedirected, Environment.GetEnvironmentVariable, cancel.Token);
    }

    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, Func<Stream> openStdout, bool stdoutRedirected, Func<string, string?> environment, CancellationToken cancellationToken)
    {
        try
        {
            var parsed = PluginArguments.Parse(args);
            switch (parsed.Command)
            {
                case "help":
                    stdout.WriteLine(PluginUsage.Text);
                    return ExitCodes.Done;
                case "version":
                    stdout.WriteLine($"{Name} {Version}");
                    return ExitCodes.Done;
                case "verify":
                    return Verify(parsed, stdout, stderr);
            }

            var command = Prepare(parsed, stdout, stderr, openStdout, stdoutRedirected, cancellationToken);
            using var connection = ClusterConnection.Open(parsed.Cluster, environment);
            return await command(connection);
        }
        catch (Exception e) when (e is UsageException or DllNotFoundException)
        {
            return ExitCodes.RefuseInput(e, Name, "libpcap is needed to check the filter (apt-get install libpcap0.8, or brew install libpcap)", stderr);
        }
        catch (ClusterException e)
        {
            stderr.WriteLine(e.Message.StartsWith("Error from server", StringComparison.Ordinal) ? e.Message : $"{Name}: {e.Message}");
            return ExitCodes.Failed;
        }
        catch (HttpOperationException e)
        {
            stderr.WriteLine(ServerErrors.Describe(e));
            return ExitCodes.Failed;
        }
        catch (HttpRequestException e)
        {
            stderr.WriteLine($"{Name}: cannot reach the Kubernetes API: {e.Message}");
            return ExitCodes.Failed;
        }
        catch (IOException e)
        {
            stderr.WriteLine($"{Name}: the connection to the Kubernetes API broke: {e.Message}");
            return ExitCodes.Failed;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            stderr.WriteLine($"{Name}: interrupted");
            return ExitCodes.Failed;
        }
    }

    /// <summary>Checks everything that can be checked without the cluster (bad input: exit 2 before it is asked anything), and returns what to do with it.</summary>
    private static Func<ClusterConnection, Task<int>> Prepare(PluginArguments parsed, TextWriter stdout, TextWriter stderr, Func<Stream> openStdout, bool stdoutRedirected, CancellationToken cancellationToken)
    {
        switch (parsed.Command)
        {
            case "list":
                ResourceCommands.CheckList(parsed);
                return cluster => ResourceCommands.ListAsync(cluster, stdout, stderr, cancellationToken);
            case "status":
                var shown = ResourceCommands.CheckNamed(parsed);
                return cluster => ResourceCommands.StatusAsync(shown, cluster, stdout, cancellationToken);
            case "stop":
                var stopped = ResourceCommands.CheckNamed(parsed);
                return cluster => ResourceCommands.StopAsync(stopped, cluster, stdout, cancellationToken);
            case "snapshot":
                parsed.Allow("--pod");
                var snapshot = (ResourceCommands.OneName(parsed), parsed.Option("--pod"));
                return cluster => ResourceCommands.SnapshotAsync(snapshot, cluster, stdout, cancellationToken);
            case "download":
                var download = DownloadCommand.Check(parsed);
                return cluster => DownloadCommand.RunAsync(download, cluster, stdout, stderr, openStdout, cancellationToken);
            case "follow":
                var follow = FollowCommand.Check(parsed, stdoutIsTerminal: !stdoutRedirected);
                return cluster => FollowCommand.RunAsync(follow, cluster, openStdout, stderr, cancellationToken);
            default:
                var create = NewCapture.From(parsed);
                return cluster => CreateCommand.RunAsync(create, cluster, stdout, stderr, cancellationToken);
        }
    }

    /// <summary><c>verify FILE.pcap [MANIFEST] [--public-key KEY]</c>: the agent's own verify; the manifest defaults to the one download writes beside the file.</summary>
    private static int Verify(PluginArguments parsed, TextWriter stdout, TextWriter stderr)
    {
        parsed.Allow("--public-key");
        var files = parsed.Words switch
        {
            [var pcap] => [pcap, pcap + DownloadCommand.ManifestSuffix],
            [_, _] => parsed.Words,
            _ => throw new UsageException("verify takes a pcap and, optionally, its manifest: kubectl capture verify FILE.pcap [FILE.pcap.manifest.json] [--public-key KEY.pem]"),
        };
        var args = parsed.Option("--public-key") is { } key ? files.Concat(["--public-key", key]).ToList() : files.ToList();
        return VerifyCommand.Run(args, stdout, stderr, Name);
    }
}
