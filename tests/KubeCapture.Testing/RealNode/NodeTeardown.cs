using k8s;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// Stops a node and undoes every host change it made, from its state directory and journal alone
/// (so it also cleans up after a node whose process died), in the order fact 9 asks: the pods
/// deleted through the API while the kubelet still runs (so it tears their networks down), then the
/// components, every task still running, containerd and the shims that name its socket, the mounts
/// under the state directory, the pods' cgroups, the KUBE-* iptables chains, the bridge and the node
/// IP, the sysctls the kubelet rewrote, and what appeared under the fixed host paths. Then it looks
/// again and returns whatever is still there (empty: the host is as it was).
/// </summary>
public static class NodeTeardown
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(10);

    public static async Task<IReadOnlyList<string>> RunAsync(NodeLayout layout, NodeJournal journal, string? adminKubeconfig, Action<string> log)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failures = new List<string>();
        // Every step is tried whatever the one before did: a step that fails is reported, never the end of the teardown.
        async Task Step(string what, Func<Task> step)
        {
            try
            {
                await step();
                log($"teardown: {what} ({clock.Elapsed.TotalSeconds:0.0} s)");
            }
            catch (Exception e)
            {
                failures.Add($"teardown step '{what}' failed: {e.GetType().Name}: {e.Message}");
                log(failures[^1]);
            }
        }

        // Nothing new is scheduled or recreated while the pods go.
        await Step("controller-manager and scheduler stopped", async () =>
        {
            await NodeDaemon.StopAsync(layout, "kube-controller-manager", Grace);
            await NodeDaemon.StopAsync(layout, "kube-scheduler", Grace);
        });
        if (adminKubeconfig is not null && File.Exists(adminKubeconfig))
        {
            await Step("pods deleted", () => DeletePodsAsync(adminKubeconfig, log));
        }

        await Step("kubelet and kube-proxy stopped", async () =>
        {
            await NodeDaemon.StopAsync(layout, "kubelet", Grace);
            await NodeDaemon.StopAsync(layout, "kube-proxy", Grace);
        });
        await Step("containerd stopped", async () =>
        {
            if (File.Exists(layout.ContainerdSocket))
            {
                await ContainerdRuntime.KillAllTasksAsync(layout);
            }

            await NodeDaemon.StopAsync(layout, "containerd", Grace);
            // Shims outlive containerd (fact 9): only those that name this node's socket.
            foreach (var (pid, _) in HostState.ProcessesNaming(layout.ContainerdSocket))
            {
                HostState.TrySignal(pid, 9);
            }
        });
        await Step("control plane stopped", async () =>
        {
            // Their state goes with the directory: no graceful shutdown to wait for.
            await NodeDaemon.StopAsync(layout, "dnsmasq", TimeSpan.Zero);
            await NodeDaemon.StopAsync(layout, "kube-apiserver", TimeSpan.Zero);
            await NodeDaemon.StopAsync(layout, "etcd", TimeSpan.Zero);
        });
        await Step("cgroups and mounts removed", async () =>
        {
            foreach (var cgroup in HostState.PodCgroups().Where(c => journal.CreatedPaths.Contains("cgroup:kubepods")))
            {
                await HostState.RemoveCgroupTreeAsync(cgroup);
            }

            await HostState.UnmountAllAsync(layout.Directory);
            foreach (var fixedPath in NodeLayout.FixedHostPaths)
            {
                await HostState.UnmountAllAsync(fixedPath);
            }
        });
        await Step("KUBE-* chains removed", HostState.RemoveKubeChainsAsync);
        await Step("bridge and node IP removed", () => PodBridge.RemoveAsync(journal));
        await Step("sysctls restored", () =>
        {
            foreach (var (name, value) in journal.Sysctls)
            {
                if (HostState.ReadSysctl(name) is { } now && now != value)
                {
                    log($"restoring {name} = {value} (the node left {now})");
                    HostState.WriteSysctl(name, value);
                }
            }

            return Task.CompletedTask;
        });
        await Step("paths the node created removed", () =>
        {
            RemoveNewPaths(journal);
            return Task.CompletedTask;
        });
        var leftovers = failures.Concat(await LeftoversAsync(layout, journal)).ToList();
        journal.Clean = leftovers.Count == 0;
        journal.Write(layout);
        return leftovers;
    }

    /// <summary>What the node left on the host (compared with the journal): empty when everything was undone.</summary>
    public static async Task<List<string>> LeftoversAsync(NodeLayout layout, NodeJournal journal)
    {
        var leftovers = new List<string>();
        leftovers.AddRange(HostState.ProcessesNaming(layout.Directory).Select(p => $"process {p.Pid}: {p.CommandLine}"));
        leftovers.AddRange(HostState.MountsUnder(layout.Directory).Select(m => $"mount {m}"));
        foreach (var fixedPath in NodeLayout.FixedHostPaths)
        {
            leftovers.AddRange(HostState.MountsUnder(fixedPath).Select(m => $"mount {m}"));
        }

        if (journal.CreatedPaths.Contains("cgroup:kubepods"))
        {
            leftovers.AddRange(HostState.PodCgroups().Select(c => $"cgroup {c}"));
        }

        leftovers.AddRange((await HostState.KubeChainsAsync()).Select(c => $"chain {c}"));
        if (journal.BridgeCreated && await HostState.LinkExistsAsync(NodeLayout.Bridge))
        {
            leftovers.Add($"link {NodeLayout.Bridge}");
        }

        if (journal.NodeIpAdded && await HostState.HasAddressAsync(NodeLayout.NodeIp))
        {
            leftovers.Add($"address {NodeLayout.NodeIp}/32 on lo");
        }

        leftovers.AddRange((await HostState.VethsAsync()).Where(v => v.StartsWith("veth", StringComparison.Ordinal) && !journal.VethsBefore.Contains(v)).Select(v => $"link {v}"));
        foreach (var (name, value) in journal.Sysctls)
        {
            if (HostState.ReadSysctl(name) is { } now && now != value)
            {
                leftovers.Add($"sysctl {name} = {now} (was {value})");
            }
        }

        leftovers.AddRange(journal.CreatedPaths.Where(p => p.StartsWith('/') && (Directory.Exists(p) || File.Exists(p))).Select(p => $"path {p}"));
        foreach (var (path, entries) in journal.PreexistingEntries)
        {
            leftovers.AddRange(Entries(path).Except(entries).Select(e => $"path {Path.Combine(path, e)}"));
        }

        return leftovers;
    }

    /// <summary>Records, before the node starts, what its teardown must compare with.</summary>
    public static async Task RecordHostAsync(NodeJournal journal)
    {
        journal.Sysctls = HostState.ReadSysctls(HostState.WatchedSysctls);
        journal.VethsBefore = await HostState.VethsAsync();
        foreach (var path in NodeLayout.FixedHostPaths.Concat(["/opt/containerd", "/var/lib/containerd", "/etc/cni", "/opt/cni"]))
        {
            if (Directory.Exists(path))
            {
                journal.PreexistingEntries[path] = Entries(path);
            }
            else
            {
                journal.CreatedPaths.Add(path);
            }
        }

        if (HostState.PodCgroups().Count == 0)
        {
            journal.CreatedPaths.Add("cgroup:kubepods");
        }
    }

    private static async Task DeletePodsAsync(string adminKubeconfig, Action<string> log)
    {
        try
        {
            using var admin = new k8s.Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(adminKubeconfig));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var pods = await admin.CoreV1.ListPodForAllNamespacesAsync(cancellationToken: timeout.Token);
            foreach (var ns in pods.Items.Select(p => p.Metadata.NamespaceProperty).Distinct())
            {
                // A grace period (not 0, which removes the object at once): the object goes once the
                // kubelet has stopped the pod's containers and its sandbox (CNI DEL included).
                await admin.CoreV1.DeleteCollectionNamespacedPodAsync(ns, gracePeriodSeconds: 1, cancellationToken: timeout.Token);
            }

            while ((await admin.CoreV1.ListPodForAllNamespacesAsync(cancellationToken: timeout.Token)).Items.Count > 0)
            {
                await Task.Delay(200, timeout.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or HttpRequestException or k8s.Autorest.HttpOperationException or TimeoutException)
        {
            log($"pods not deleted through the API ({e.Message}): their tasks are killed instead");
        }
    }

    private static void RemoveNewPaths(NodeJournal journal)
    {
        foreach (var path in journal.CreatedPaths.Where(p => p.StartsWith('/')))
        {
            Delete(path);
        }

        foreach (var (path, entries) in journal.PreexistingEntries)
        {
            foreach (var added in Entries(path).Except(entries))
            {
                Delete(Path.Combine(path, added));
            }
        }
    }

    private static void Delete(string path)
    {
        try
        {
            if (Directory.Exists(path) && !new DirectoryInfo(path).Attributes.HasFlag(FileAttributes.ReparsePoint))
            {
                Directory.Delete(path, recursive: true);
            }
            else if (File.Exists(path) || Directory.Exists(path))
            {
                File.Delete(path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // reported as a leftover
        }
    }

    private static List<string> Entries(string path) =>
        Directory.Exists(path) ? [.. Directory.EnumerateFileSystemEntries(path).Select(Path.GetFileName).OfType<string>()] : [];
}
