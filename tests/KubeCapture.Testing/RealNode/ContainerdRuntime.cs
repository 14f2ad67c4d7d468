using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// containerd for the kubelet, with a root, state, socket, runc root and plugin directory of its
/// own under the state directory (it never meets another containerd, or podman: fact 2), the CRI
/// plugin with <c>restrict_oom_score_adj</c> (these machines lack CAP_SYS_RESOURCE: fact 1), cgroupfs
/// (fact 4), pod network namespaces under its state directory, and the CNI configuration of
/// <see cref="PodBridge"/>. No image can be pulled: they are imported.
/// </summary>
public static class ContainerdRuntime
{
    public static NodeDaemon Start(NodeLayout layout)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(layout.ContainerdConfig)!);
        File.WriteAllText(layout.ContainerdConfig, $"""
            # Written by the KubeCapture node (tests/KubeCapture.Testing/RealNode).
            version = 2
            root = "{layout.ContainerdRoot}"
            state = "{layout.ContainerdState}"
            oom_score = 0

            [grpc]
              address = "{layout.ContainerdSocket}"

            [ttrpc]
              address = ""

            [debug]
              address = ""

            [metrics]
              address = ""

            [plugins."io.containerd.internal.v1.opt"]
              path = "{Path.Combine(layout.Directory, "containerd", "opt")}"

            [plugins."io.containerd.monitor.v1.cgroups"]
              no_prometheus = true

            [plugins."io.containerd.grpc.v1.cri"]
              sandbox_image = "{NodeLayout.PauseImage}"
              restrict_oom_score_adj = true
              netns_mounts_under_state_dir = true
              disable_apparmor = true
              enable_selinux = false
              max_container_log_line_size = 16384

              [plugins."io.containerd.grpc.v1.cri".containerd]
                snapshotter = "overlayfs"
                default_runtime_name = "runc"

                [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
                  runtime_type = "io.containerd.runc.v2"

                  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
                    BinaryName = "{NodeBinaries.Runc}"
                    Root = "{layout.RuncRoot}"
                    SystemdCgroup = false

              [plugins."io.containerd.grpc.v1.cri".cni]
                bin_dir = "{NodeBinaries.CniBin}"
                conf_dir = "{layout.CniConfDir}"
                max_conf_num = 1
            """);
        return NodeDaemon.Start(layout, "containerd", NodeBinaries.Containerd, ["--config", layout.ContainerdConfig, "--log-level", "warn"]);
    }

    /// <summary>Until the CRI plugin reports ok (the kubelet must not start before: fact 2).</summary>
    public static async Task WaitForCriAsync(NodeLayout layout, NodeDaemon containerd, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            containerd.EnsureRunning();
            if (File.Exists(layout.ContainerdSocket))
            {
                var plugins = await CtrAsync(layout, "plugins", "ls");
                var cri = plugins.StdoutLines.FirstOrDefault(l => l.StartsWith("io.containerd.grpc.v1", StringComparison.Ordinal) && l.Contains(" cri ", StringComparison.Ordinal));
                if (cri is not null && cri.EndsWith(" ok", StringComparison.Ordinal))
                {
                    return;
                }

                last = cri ?? plugins.Stderr;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"containerd's CRI plugin was not ok within {timeout.TotalSeconds} s ({last}):\n{NodeDaemon.Tail(layout, "containerd")}");
    }

    /// <summary>Imports an image archive (OCI or docker) into the k8s.io namespace, where the kubelet looks, and returns the names it brought.</summary>
    public static async Task<IReadOnlyList<string>> ImportAsync(NodeLayout layout, string archive)
    {
        var before = await ImagesAsync(layout);
        (await CtrAsync(layout, TimeSpan.FromMinutes(3), "images", "import", archive)).EnsureSuccess();
        var after = await ImagesAsync(layout);
        return [.. after.Except(before).Where(n => !n.StartsWith("sha256:", StringComparison.Ordinal))];
    }

    /// <summary>Gives an imported image another name (e.g. the one a chart value asks for).</summary>
    public static async Task TagAsync(NodeLayout layout, string source, string target) =>
        (await CtrAsync(layout, "images", "tag", "--force", source, target)).EnsureSuccess();

    public static async Task<List<string>> ImagesAsync(NodeLayout layout) =>
        [.. (await CtrAsync(layout, "images", "ls", "-q")).StdoutLines];

    /// <summary>Kills every task (container process) containerd runs, pod sandboxes included.</summary>
    public static async Task KillAllTasksAsync(NodeLayout layout)
    {
        var tasks = (await CtrAsync(layout, "tasks", "ls", "-q")).StdoutLines;
        foreach (var task in tasks)
        {
            await CtrAsync(layout, "tasks", "kill", "-s", "SIGKILL", "--all", task);
        }

        foreach (var task in tasks)
        {
            await CtrAsync(layout, TimeSpan.FromSeconds(15), "tasks", "delete", "-f", task);
        }
    }

    public static Task<CommandResult> CtrAsync(NodeLayout layout, params string[] arguments) => CtrAsync(layout, TimeSpan.FromSeconds(30), arguments);

    public static Task<CommandResult> CtrAsync(NodeLayout layout, TimeSpan timeout, params string[] arguments) =>
        HostCommand.RunAsync(NodeBinaries.Ctr, ["--address", layout.ContainerdSocket, "--namespace", "k8s.io", .. arguments], timeout);
}
