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

    private readonly bool v2;

    private MemoryCgroup(string directory, long limitBytes, bool v2)
    {
        this.directory = directory;
        this.v2 = v2;
        LimitBytes = limitBytes;
    }

    public long LimitBytes { get; }

    /// <summary>
    /// What the kernel charges the cgroup now (<c>memory.usage_in_bytes</c>, v2 <c>memory.current</c>):
    /// the quantity its limit holds. Not a process's VmRSS, which also counts file pages it maps that
    /// are charged to the cgroup that first read them (the .NET runtime and framework, already in the
    /// page cache from the test process): an operator in a 256Mi cgroup showed VmRSS 190 MB (87 MB of
    /// it RssFile) with 108 MB charged.
    /// </summary>
    public long UsageBytes => Read(v2 ? "memory.current" : "memory.usage_in_bytes");

    /// <summary>The most the cgroup was ever charged (<c>memory.max_usage_in_bytes</c>, v2 <c>memory.peak</c>).</summary>
    public long PeakBytes => Read(v2 ? "memory.peak" : "memory.max_usage_in_bytes");

    /// <summary>Processes of the cgroup the kernel's OOM killer killed (<c>oom_kill</c> of memory.oom_control, v2 memory.events).</summary>
    public long OomKills
    {
        get
        {
            var line = File.ReadAllLines(Path.Combine(directory, v2 ? "memory.events" : "memory.oom_control")).FirstOrDefault(l => l.StartsWith("oom_kill ", StringComparison.Ordinal))
                ?? throw new InvalidOperationException($"no oom_kill count in {directory} (kernel before 4.13?)");
            return long.Parse(line["oom_kill ".Length..], CultureInfo.InvariantCulture);
        }
    }

    private long Read(string file) => long.Parse(File.ReadAllText(Path.Combine(directory, file)).Trim(), CultureInfo.InvariantCulture);

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
        return new MemoryCgroup(directory, limitBytes, v2);
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
