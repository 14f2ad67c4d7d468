using System.Diagnostics;
using System.Text;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// The node as the tests run it: <c>kubecapture-node run</c> (tests/KubeCapture.RealNode, the same
/// program scripts/cluster-demo.sh runs) as a child process, tied to this one by its standard input
/// (if the test process dies, the node sees its input close and cleans up). Ready once it wrote its
/// state file; <see cref="StopAsync"/> sends SIGTERM and returns what it could not undo.
/// </summary>
public sealed class NodeProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly StringBuilder output = new();

    private NodeProcess(Process process, string directory)
    {
        this.process = process;
        Directory = directory;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Directory { get; }

    public NodeState State { get; private set; } = null!;

    /// <summary>Everything the node process printed.</summary>
    public string Output
    {
        get
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    /// <summary>The built kubecapture-node, in the configuration the tests were built in.</summary>
    public static string Dll => Path.Combine(Tools.RepositoryRoot, "tests", "KubeCapture.RealNode", "bin",
        new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name, "net10.0", "kubecapture-node.dll");

    /// <summary>Why no node can run here (one line), or null.</summary>
    public static string? Missing => NodeBinaries.Missing ?? (File.Exists(Dll) ? null : $"{Dll} is not built: dotnet build KubeCapture.sln");

    /// <summary>Starts a node with <paramref name="images"/> imported; throws <see cref="NodeBusyException"/> when another node of ours runs here.</summary>
    public static async Task<NodeProcess> StartAsync(IReadOnlyList<string> images, TimeSpan timeout)
    {
        var directory = Path.Combine(Path.GetTempPath(), $"kcnode-{Environment.ProcessId}-{DateTime.UtcNow:HHmmss}");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["exec", Dll, "run", "--state", directory, "--stdin-lifeline", .. images.SelectMany(i => new[] { "--image", i })])
        {
            start.ArgumentList.Add(argument);
        }

        var node = new NodeProcess(Process.Start(start) ?? throw new InvalidOperationException("kubecapture-node did not start"), directory);
        var state = Path.Combine(directory, "state.json");
        var deadline = DateTime.UtcNow + timeout;
        while (!File.Exists(state))
        {
            if (node.process.HasExited)
            {
                await node.process.WaitForExitAsync();
                var said = node.Output;
                if (node.process.ExitCode == 3)
                {
                    throw new NodeBusyException(said.Trim());
                }

                throw new InvalidOperationException($"kubecapture-node exited with {node.process.ExitCode} before the node was ready:\n{said}");
            }

            if (DateTime.UtcNow > deadline)
            {
                await node.StopAsync();
                throw new TimeoutException($"the node was not ready within {timeout.TotalSeconds} s:\n{node.Output}");
            }

            await Task.Delay(200);
        }

        node.State = NodeState.Read(state);
        return node;
    }

    /// <summary>Stops the node (SIGTERM); returns its exit code (0: the host is as it was) and what it printed.</summary>
    public async Task<(int ExitCode, string Output)> StopAsync()
    {
        if (!process.HasExited)
        {
            HostState.TrySignal(process.Id, 15);
            using var patience = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            try
            {
                await process.WaitForExitAsync(patience.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill();
                await process.WaitForExitAsync();
            }
        }

        return (process.ExitCode, Output);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.AppendLine(line);
        }
    }
}
