using System.Globalization;
using System.Text.RegularExpressions;
using k8s.Models;

namespace KubeCapture.Testing.Processes;

/// <summary>
/// A memory cgroup with a limit, for a process that must run as a container's would: the .NET runtime
/// reads the limit at start and sizes its GC heap to it (a heap hard limit of 75%, and gen0 budgets that
/// fit). Without one, the GC sizes gen0 from the CPU's last-level cache, which on these machines is
/// 300 MiB: a process then holds tens of MiB more garbage than the same process in its pod. cgroup v1
/// (memory.limit_in_bytes) or v2 (memory.max). Removed on dispose, once its processes are gone.
/// </summary>
public sealed partial class MemoryCgroup : IDisposable
{
    private readonly string directory;

    private MemoryCgroup(string directory, long limitBytes)
    {
        this.directory = directory;
        LimitBytes = limitBytes;
    }

    public long LimitBytes { get; }

    public static MemoryCgroup Create(long limitBytes)
    {
        var v2 = File.Exists("/sys/fs/cgroup/cgroup.controllers");
        var parent = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
        if (!Directory.Exists(parent))
        {
            throw new InvalidOperationException($"no memory cgroup hierarchy at {parent}");
        }

        var directory = Path.Combine(parent, $"kubecapture-test-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, v2 ? "memory.max" : "memory.limit_in_bytes"), limitBytes.ToString(CultureInfo.InvariantCulture));
        return new MemoryCgroup(directory, limitBytes);
    }

    /// <summary>
    /// The memory limit the chart gives the operator's container (<c>resources.limits.memory</c> of the
    /// rendered Deployment, chart defaults), in bytes.
    /// </summary>
    public static async Task<long> ChartOperatorLimitAsync()
    {
        var rendered = (await HostCommand.RunAsync(Tools.Helm, ["template", "kc", Tools.Chart, "--set", "storage.local.emptyDir=true", "--show-only", "templates/deployment.yaml"], TimeSpan.FromSeconds(60))).EnsureSuccess().Stdout;
        var limit = LimitsMemory().Match(rendered);
        return limit.Success
            ? new ResourceQuantity(limit.Groups[1].Value).ToInt64()
            : throw new InvalidOperationException("the chart's Deployment sets no resources.limits.memory for the operator");
    }

    /// <summary>The command line that runs <paramref name="fileName"/> with <paramref name="args"/> inside this cgroup (the same pid: bash execs it).</summary>
    public (string FileName, IEnumerable<string> Args) Wrap(string fileName, IEnumerable<string> args) =>
        ("bash", new[] { "-c", "echo $$ > \"$0\" && exec \"$@\"", Path.Combine(directory, "cgroup.procs"), fileName }.Concat(args));

    public void Dispose()
    {
        // The kernel refuses to remove a cgroup while a process is still in it: a killed process leaves it a moment later.
        for (var attempt = 0; attempt < 50 && Directory.Exists(directory); attempt++)
        {
            try
            {
                Directory.Delete(directory);
            }
            catch (IOException)
            {
                Thread.Sleep(100);
            }
        }
    }

    [GeneratedRegex(@"limits:\s*\n\s*memory:\s*(\S+)")]
    private static partial Regex LimitsMemory();
}
