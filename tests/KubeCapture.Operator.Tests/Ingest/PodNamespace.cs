using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// A "pod": a network namespace joined to the host by a veth pair, 169.254.213.1/30 on the host side
/// and 169.254.213.2/30 inside. Names carry this helper's prefix (kcI) and the test process id.
/// </summary>
public sealed class PodNamespace : IDisposable
{
    public const string HostAddress = "169.254.213.1";
    public const string PodAddress = "169.254.213.2";
    private static int _counter;

    public PodNamespace()
    {
        var n = (Environment.ProcessId % 10000 * 10) + Interlocked.Increment(ref _counter);
        Name = $"kcI-{n}";
        HostInterface = $"kcI{n}h";
        PodInterface = $"kcI{n}p";
        Run("ip", "netns", "add", Name);
        Run("ip", "link", "add", HostInterface, "type", "veth", "peer", "name", PodInterface);
        Run("ip", "link", "set", PodInterface, "netns", Name);
        Run("ip", "addr", "add", $"{HostAddress}/30", "dev", HostInterface);
        Run("ip", "link", "set", HostInterface, "up");
        Run("ip", "netns", "exec", Name, "ip", "addr", "add", $"{PodAddress}/30", "dev", PodInterface);
        Run("ip", "netns", "exec", Name, "ip", "link", "set", PodInterface, "up");
        Run("ip", "netns", "exec", Name, "ip", "link", "set", "lo", "up");
    }

    public string Name { get; }

    public string HostInterface { get; }

    /// <summary>The pod's interface, as seen inside the namespace.</summary>
    public string PodInterface { get; }

    /// <summary>Starts a process inside the namespace.</summary>
    public ChildProcess Start(string fileName, IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null) =>
        ChildProcess.Start("ip", new[] { "netns", "exec", Name, fileName }.Concat(args), environment);

    public void Dispose()
    {
        Run("ip", "link", "del", HostInterface);
        Run("ip", "netns", "del", Name);
    }

    private static void Run(string file, params string[] args)
    {
        var result = HostCommand.RunAsync(file, args).GetAwaiter().GetResult();
        if (!(args.Length > 1 && args[1] == "del"))
        {
            result.EnsureSuccess();
        }
    }
}
