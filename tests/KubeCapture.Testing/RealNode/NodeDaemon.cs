using System.Diagnostics;
using System.Globalization;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// One long-running component of the node (etcd, kube-apiserver, containerd, kubelet, ...), its
/// output appended to <c>logs/NAME.log</c> and its pid to <c>pids/NAME</c> in the state directory, so
/// that a teardown without this process (after a crash) still finds it.
/// </summary>
public sealed class NodeDaemon
{
    private readonly Process process;
    private readonly NodeLayout layout;

    private NodeDaemon(Process process, string name, NodeLayout layout)
    {
        this.process = process;
        this.layout = layout;
        Name = name;
    }

    public string Name { get; }

    public int Pid => process.Id;

    public bool HasExited => process.HasExited;

    public static NodeDaemon Start(NodeLayout layout, string name, string file, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        Directory.CreateDirectory(layout.Logs);
        Directory.CreateDirectory(layout.Pids);
        var process = LoggedProcess.Start(file, arguments, layout.Log(name), environment);
        File.WriteAllText(Path.Combine(layout.Pids, name), process.Id.ToString(CultureInfo.InvariantCulture));
        return new NodeDaemon(process, name, layout);
    }

    /// <summary>Throws with the last lines of its log when it has exited.</summary>
    public void EnsureRunning()
    {
        if (process.HasExited)
        {
            throw new InvalidOperationException($"{Name} exited with {process.ExitCode}:\n{Tail(layout, Name)}");
        }
    }

    /// <summary>The last lines a component logged.</summary>
    public static string Tail(NodeLayout layout, string name, int lines = 25)
    {
        var path = layout.Log(name);
        return File.Exists(path) ? string.Join('\n', File.ReadLines(path).TakeLast(lines)) : "(no log)";
    }

    /// <summary>
    /// SIGTERM, then SIGKILL after <paramref name="grace"/>, for the daemon named <paramref name="name"/>
    /// in the state directory's pid files, if that process still runs and names the directory (a pid
    /// may have been reused by another process since).
    /// </summary>
    public static async Task StopAsync(NodeLayout layout, string name, TimeSpan grace)
    {
        var pidFile = Path.Combine(layout.Pids, name);
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture, out var pid))
        {
            return;
        }

        if (Ours(pid, layout))
        {
            HostState.TrySignal(pid, 15);
            var deadline = DateTime.UtcNow + grace;
            while (HostState.IsAlive(pid) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }

            if (HostState.IsAlive(pid))
            {
                HostState.TrySignal(pid, 9);
                while (HostState.IsAlive(pid) && DateTime.UtcNow < deadline + TimeSpan.FromSeconds(5))
                {
                    await Task.Delay(50);
                }
            }
        }

        File.Delete(pidFile);
    }

    private static bool Ours(int pid, NodeLayout layout)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Contains(layout.Directory, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }
}
