using System.Diagnostics;
using System.Text;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Agent;

/// <summary>How the agent ended: exit code and everything it printed.</summary>
public sealed record AgentExit(int ExitCode, string Stdout, string Stderr)
{
    public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
}

/// <summary>
/// The real agent executable running as a process, inside a pod's network namespace (or the host's):
/// waits for its "listening on" line, collects stdout, stderr and the exit code, and can stop it
/// with SIGTERM as kubectl delete would.
/// </summary>
public sealed class AgentProcess : IAsyncDisposable
{
    private const int SigTerm = 15;
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private AgentProcess(Process process, string command)
    {
        _process = process;
        Command = command;
        _process.OutputDataReceived += (_, e) => Append(_stdout, e.Data, _stdoutClosed);
        _process.ErrorDataReceived += (_, e) =>
        {
            Append(_stderr, e.Data, _stderrClosed);
            if (e.Data?.Contains("listening on", StringComparison.Ordinal) == true)
            {
                _listening.TrySetResult();
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Command { get; }

    public int Pid => _process.Id;

    /// <summary>
    /// Starts <c>kubecapture-agent ARGS</c> in <paramref name="pod"/>'s namespace (null: this one),
    /// behind <paramref name="wrapper"/> (e.g. setpriv ...) when given.
    /// </summary>
    public static AgentProcess Start(NetnsPod? pod, IEnumerable<string> arguments, IEnumerable<string>? wrapper = null, string? agentPath = null)
    {
        string[] command = [.. wrapper ?? [], agentPath ?? AgentBinary.Path, .. arguments];
        string[] full = pod is null ? command : ["ip", "netns", "exec", pod.Name, .. command];
        var start = new ProcessStartInfo(full[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in full.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the agent");
        return new AgentProcess(process, HostCommand.Describe(full[0], full.Skip(1)));
    }

    /// <summary>Runs the agent to its end (for commands that should fail or stop by themselves).</summary>
    public static async Task<AgentExit> RunAsync(NetnsPod? pod, IEnumerable<string> arguments, TimeSpan? timeout = null, IEnumerable<string>? wrapper = null, string? agentPath = null)
    {
        await using var agent = Start(pod, arguments, wrapper, agentPath);
        return await agent.WaitForExitAsync(timeout ?? TimeSpan.FromSeconds(30));
    }

    /// <summary>Waits for "listening on" on stderr: capture has started. Throws with stderr if the agent exits first.</summary>
    public async Task WaitUntilListeningAsync(TimeSpan? timeout = null)
    {
        var exited = _process.WaitForExitAsync();
        var first = await Task.WhenAny(_listening.Task, exited, Task.Delay(timeout ?? TimeSpan.FromSeconds(20)));
        if (first == _listening.Task)
        {
            return;
        }

        if (first == exited)
        {
            await _stderrClosed.Task.WaitAsync(TimeSpan.FromSeconds(5));
            throw new InvalidOperationException($"the agent exited {_process.ExitCode} before listening: {Stderr}{Stdout} ({Command})");
        }

        throw new TimeoutException($"the agent did not start listening: {Stderr} ({Command})");
    }

    /// <summary>Sends SIGTERM.</summary>
    public void Terminate() => HostCommand.Signal(_process.Id, SigTerm);

    /// <summary>Waits for the agent to exit and returns what it printed; kills it after the timeout and throws.</summary>
    public async Task<AgentExit> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            _process.Kill();
            throw new TimeoutException($"the agent did not exit within {timeout}: {Stderr} ({Command})");
        }

        await Task.WhenAll(_stdoutClosed.Task, _stderrClosed.Task).WaitAsync(TimeSpan.FromSeconds(5));
        return new AgentExit(_process.ExitCode, Stdout, Stderr);
    }

    /// <summary>SIGTERM, then wait for the exit.</summary>
    public async Task<AgentExit> StopAsync(TimeSpan? timeout = null)
    {
        Terminate();
        return await WaitForExitAsync(timeout ?? TimeSpan.FromSeconds(15));
    }

    public string Stdout
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    private static void Append(StringBuilder text, string? line, TaskCompletionSource closed)
    {
        if (line is null)
        {
            closed.TrySetResult();
            return;
        }

        lock (text)
        {
            text.Append(line).Append('\n');
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // never started or already reaped
        }

        _process.Dispose();
    }
}
