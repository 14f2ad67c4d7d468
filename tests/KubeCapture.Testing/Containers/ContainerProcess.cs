using System.Diagnostics;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Containers;

/// <summary>What a container printed and how it exited.</summary>
public sealed record ContainerExit(int ExitCode, string Stdout, string Stderr);

/// <summary>
/// A started <see cref="PodmanContainer.Command"/>: collects output and error, waits for a line,
/// stops the container as a kubelet does (SIGTERM, which podman passes on to it) and, on dispose,
/// kills it and removes it by name (<c>podman rm -f</c>) so nothing is left behind.
/// </summary>
public sealed class ContainerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _stderr = [];
    private readonly Task<string> _stdout;
    private readonly Task _stderrDone;
    private readonly string? _name;

    private ContainerProcess(Process process, string? name)
    {
        _process = process;
        _name = name;
        _stdout = process.StandardOutput.ReadToEndAsync();
        _stderrDone = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync() is { } line)
            {
                lock (_stderr)
                {
                    _stderr.Add(line);
                }
            }
        });
    }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return string.Join('\n', _stderr);
            }
        }
    }

    /// <summary>Starts <paramref name="command"/>; <paramref name="name"/> is the container's <c>--name</c>, if it has one (removed on dispose).</summary>
    public static ContainerProcess Start(ProcessStartInfo command, string? name = null)
    {
        command.RedirectStandardOutput = true;
        command.RedirectStandardError = true;
        command.UseShellExecute = false;
        return new ContainerProcess(Process.Start(command) ?? throw new InvalidOperationException($"could not start {command.FileName}"), name);
    }

    /// <summary>Runs to the end (or kills it after <paramref name="timeout"/> and throws).</summary>
    public static async Task<ContainerExit> RunAsync(ProcessStartInfo command, TimeSpan timeout, string? name = null)
    {
        await using var container = Start(command, name);
        return await container.WaitForExitAsync(timeout);
    }

    /// <summary>Waits until a line of stderr contains <paramref name="text"/>; throws with stderr when the container exits first or the time is up.</summary>
    public async Task WaitForStderrAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            lock (_stderr)
            {
                if (_stderr.Any(l => l.Contains(text, StringComparison.Ordinal)))
                {
                    return;
                }
            }

            if (_process.HasExited)
            {
                await _stderrDone;
                if (Stderr.Contains(text, StringComparison.Ordinal))
                {
                    return;
                }

                throw new InvalidOperationException($"the container exited {_process.ExitCode} before printing '{text}': {Stderr}");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no '{text}' within {timeout}: {Stderr}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>SIGTERM (podman passes it to the container's process), then waits for the exit.</summary>
    public async Task<ContainerExit> StopAsync(TimeSpan timeout)
    {
        if (!_process.HasExited)
        {
            HostCommand.Signal(_process.Id, 15);
        }

        return await WaitForExitAsync(timeout);
    }

    public async Task<ContainerExit> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the container did not exit within {timeout}: {Stderr}");
        }

        await _stderrDone;
        return new ContainerExit(_process.ExitCode, await _stdout, Stderr);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        if (_name is not null)
        {
            await ContainerImages.PodmanAsync(["rm", "--force", "--ignore", "--time", "0", _name], TimeSpan.FromSeconds(60));
        }

        _process.Dispose();
    }
}
