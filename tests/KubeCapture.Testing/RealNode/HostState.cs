using System.Globalization;
using System.Text;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.RealNode;

/// <summary>The parts of the host a node touches, read and restored one by one.</summary>
public static class HostState
{
    /// <summary>
    /// Sysctls the kubelet rewrites at start (fact 5), those kube-proxy would set (fact 8, turned off
    /// by its flags but checked), and forwarding, which must stay as it was host-wide (fact 7).
    /// </summary>
    public static readonly IReadOnlyList<string> WatchedSysctls =
    [
        "vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "vm.panic_on_oom",
        "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "kernel.keys.maxkeys", "kernel.keys.maxbytes",
        "net.ipv4.conf.all.route_localnet", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding",
        "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
        "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_timeout_established", "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    ];

    private static readonly string[] IptablesTables = ["filter", "nat", "mangle"];

    public static string? ReadSysctl(string name)
    {
        var path = SysctlPath(name);
        return File.Exists(path) ? File.ReadAllText(path).Trim() : null;
    }

    public static void WriteSysctl(string name, string value) => File.WriteAllText(SysctlPath(name), value + "\n");

    public static Dictionary<string, string> ReadSysctls(IEnumerable<string> names) =>
        names.Select(n => (n, v: ReadSysctl(n))).Where(p => p.v is not null).ToDictionary(p => p.n, p => p.v!);

    /// <summary>Mount points at or below <paramref name="root"/>, deepest first (from /proc/self/mountinfo).</summary>
    public static List<string> MountsUnder(string root)
    {
        var prefix = root.TrimEnd('/') + "/";
        return [.. File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => Unescape(line.Split(' ')[4]))
            .Where(point => point == root.TrimEnd('/') || point.StartsWith(prefix, StringComparison.Ordinal))
            .Distinct()
            .OrderByDescending(point => point.Count(c => c == '/'))
            .ThenByDescending(point => point.Length)];
    }

    /// <summary>Unmounts everything at or below <paramref name="root"/> (lazily when busy).</summary>
    public static async Task UnmountAllAsync(string root)
    {
        for (var round = 0; round < 5; round++)
        {
            var mounts = MountsUnder(root);
            if (mounts.Count == 0)
            {
                return;
            }

            foreach (var point in mounts)
            {
                if ((await HostCommand.RunAsync("umount", point)).ExitCode != 0)
                {
                    await HostCommand.RunAsync("umount", "-l", point);
                }
            }
        }
    }

    /// <summary>The cgroup v1 hierarchies' mount points (/sys/fs/cgroup/cpu, ...), or the v2 root.</summary>
    public static List<string> CgroupHierarchies()
    {
        var roots = File.ReadAllLines("/proc/self/mountinfo")
            .Select(line => line.Split(' '))
            .Where(f => Array.IndexOf(f, "-") is var dash and > 0 && f.Length > dash + 1 && f[dash + 1] is "cgroup" or "cgroup2")
            .Select(f => Unescape(f[4]))
            .Distinct()
            .ToList();
        return roots;
    }

    /// <summary>Every <c>kubepods</c> cgroup (the kubelet's, for pods).</summary>
    public static List<string> PodCgroups() =>
        [.. CgroupHierarchies().Select(h => Path.Combine(h, "kubepods")).Where(Directory.Exists)];

    /// <summary>Kills every process in a cgroup tree and removes its directories, deepest first.</summary>
    public static async Task RemoveCgroupTreeAsync(string root)
    {
        for (var round = 0; round < 20 && Directory.Exists(root); round++)
        {
            var directories = Directory.EnumerateDirectories(root, "*", SearchOption.AllDirectories).Append(root)
                .OrderByDescending(d => d.Count(c => c == '/')).ToList();
            foreach (var directory in directories)
            {
                foreach (var pid in ReadPids(Path.Combine(directory, "cgroup.procs")))
                {
                    TrySignal(pid, 9);
                }
            }

            foreach (var directory in directories)
            {
                try
                {
                    Directory.Delete(directory);
                }
                catch (IOException)
                {
                    // busy (a process not yet reaped) or not empty yet: next round
                }
            }

            if (Directory.Exists(root))
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Chains named KUBE-* (iptables and ip6tables, tables filter, nat, mangle): "ip6tables nat KUBE-SERVICES".</summary>
    public static async Task<List<string>> KubeChainsAsync()
    {
        var chains = new List<string>();
        foreach (var tool in new[] { "iptables", "ip6tables" })
        {
            foreach (var table in IptablesTables)
            {
                var rules = await HostCommand.RunAsync(tool, "-w", "-t", table, "-S");
                chains.AddRange(rules.StdoutLines.Where(l => l.StartsWith("-N KUBE-", StringComparison.Ordinal)).Select(l => $"{tool} {table} {l[3..]}"));
            }
        }

        return chains;
    }

    /// <summary>
    /// Removes what kube-proxy and the kubelet put into iptables: the jumps from other chains into
    /// KUBE-* chains, then those chains. Nothing else (unlike <c>kube-proxy --cleanup</c>, which also
    /// flushes every IPVS rule on the host: fact 8).
    /// </summary>
    public static async Task RemoveKubeChainsAsync()
    {
        foreach (var tool in new[] { "iptables", "ip6tables" })
        {
            foreach (var table in IptablesTables)
            {
                var rules = (await HostCommand.RunAsync(tool, "-w", "-t", table, "-S")).StdoutLines;
                foreach (var rule in rules.Where(r => r.StartsWith("-A ", StringComparison.Ordinal) && !r.StartsWith("-A KUBE-", StringComparison.Ordinal) && r.Contains(" KUBE-", StringComparison.Ordinal)))
                {
                    // iptables -S prints rules quoted for a shell: delete them through one.
                    await HostCommand.RunAsync("/bin/sh", "-c", $"{tool} -w -t {table} -D {rule[3..]}");
                }

                var chains = rules.Where(r => r.StartsWith("-N KUBE-", StringComparison.Ordinal)).Select(r => r[3..]).ToList();
                foreach (var chain in chains)
                {
                    await HostCommand.RunAsync(tool, "-w", "-t", table, "-F", chain);
                }

                foreach (var chain in chains)
                {
                    await HostCommand.RunAsync(tool, "-w", "-t", table, "-X", chain);
                }
            }
        }
    }

    public static async Task<bool> LinkExistsAsync(string name) => (await HostCommand.RunAsync("ip", "link", "show", "dev", name)).ExitCode == 0;

    public static async Task<bool> HasAddressAsync(string address) =>
        (await HostCommand.RunAsync("ip", "-o", "addr", "show", "dev", "lo")).Stdout.Contains($" {address}/32 ", StringComparison.Ordinal);

    /// <summary>The host's veth links by name.</summary>
    public static async Task<List<string>> VethsAsync() =>
        [.. (await HostCommand.RunAsync("ip", "-o", "link", "show", "type", "veth")).StdoutLines
            .Select(l => l.Split(':', 3)[1].Trim().Split('@')[0])];

    /// <summary>Processes whose command line names <paramref name="marker"/> (a state directory, a socket).</summary>
    public static List<(int Pid, string CommandLine)> ProcessesNaming(string marker)
    {
        var found = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var commandLine = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Trim();
                if (commandLine.Contains(marker, StringComparison.Ordinal))
                {
                    found.Add((pid, commandLine));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // gone meanwhile
            }
        }

        return found;
    }

    public static void TrySignal(int pid, int signal)
    {
        try
        {
            HostCommand.Signal(pid, signal);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    /// <summary>True while the process runs (a zombie, or one gone meanwhile, is not alive).</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            return !File.ReadAllText($"/proc/{pid}/status").Contains("State:\tZ", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static IEnumerable<int> ReadPids(string file)
    {
        try
        {
            return File.ReadAllLines(file).Select(l => int.Parse(l, CultureInfo.InvariantCulture)).ToList();
        }
        catch (IOException)
        {
            return [];
        }
    }

    private static string SysctlPath(string name) => "/proc/sys/" + name.Replace('.', '/');

    /// <summary>mountinfo escapes space, tab, newline and backslash as \ooo.</summary>
    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var text = new StringBuilder();
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length)
            {
                text.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                text.Append(field[i]);
            }
        }

        return text.ToString();
    }
}
