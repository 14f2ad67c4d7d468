using System.Diagnostics;
using System.Globalization;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// A "pod" for the test kubelet: a network namespace joined by a veth pair to a client namespace,
/// with link-local addresses that never leave the machine. Names carry the kcK prefix, the process
/// id and a counter, so parallel tests (and other helpers' tests) never collide.
/// </summary>
public sealed class PodNetwork : IDisposable
{
    private static int counter;

    private PodNetwork(string podNamespace, string clientNamespace, string podAddress, string clientAddress)
    {
        PodNamespace = podNamespace;
        ClientNamespace = clientNamespace;
        PodAddress = podAddress;
        ClientAddress = clientAddress;
    }

    public string PodNamespace { get; }

    public string ClientNamespace { get; }

    public string PodAddress { get; }

    public string ClientAddress { get; }

    public static PodNetwork Create()
    {
        var n = Interlocked.Increment(ref counter);
        var id = $"{Environment.ProcessId % 100000}{(char)('a' + (n / 60 % 26))}{n % 60}";
        var pod = $"kcK-{id}-pod";
        var client = $"kcK-{id}-cli";
        var subnet = (n % 60) * 4;
        var podAddress = $"169.254.89.{subnet + 1}";
        var clientAddress = $"169.254.89.{subnet + 2}";
        Run("ip", "netns", "add", pod);
        Run("ip", "netns", "add", client);
        Run("ip", "link", "add", $"kcK{id}p", "netns", pod, "type", "veth", "peer", "name", $"kcK{id}c", "netns", client);
        Run("ip", "-n", pod, "addr", "add", $"{podAddress}/30", "dev", $"kcK{id}p");
        Run("ip", "-n", client, "addr", "add", $"{clientAddress}/30", "dev", $"kcK{id}c");
        foreach (var (ns, dev) in new[] { (pod, $"kcK{id}p"), (client, $"kcK{id}c") })
        {
            Run("ip", "-n", ns, "link", "set", dev, "up");
            Run("ip", "-n", ns, "link", "set", "lo", "up");
        }

        return new PodNetwork(pod, client, podAddress, clientAddress);
    }

    /// <summary>Pings the pod from the client namespace: ICMP echo requests and replies on the pod's veth.</summary>
    public void PingFromClient(int count) =>
        Run("ip", "netns", "exec", ClientNamespace, "ping", "-n", "-q", "-c", count.ToString(CultureInfo.InvariantCulture), "-i", "0.2", "-W", "1", PodAddress);

    public void Dispose()
    {
        TryRun("ip", "netns", "del", PodNamespace);
        TryRun("ip", "netns", "del", ClientNamespace);
    }

    private static void Run(params string[] args)
    {
        var (code, output) = TryRun(args);
        if (code != 0)
        {
            throw new InvalidOperationException($"{string.Join(' ', args)} failed ({code}): {output}");
        }
    }

    private static (int Code, string Output) TryRun(params string[] args)
    {
        var info = new ProcessStartInfo(args[0]) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args.Skip(1))
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }
}
