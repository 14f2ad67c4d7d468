using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace KubeCapture.Testing.Processes;

/// <summary>What a finished command printed and how it exited.</summary>
public sealed record CommandResult(string Command, int ExitCode, string Stdout, string Stderr)
{
    public CommandResult EnsureSuccess() => ExitCode == 0
        ? this
        : throw new InvalidOperationException($"'{Command}' exited {ExitCode}: {Stderr.Trim()} {Stdout.Trim()}".Trim());

    public string[] StdoutLines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}

/// <summary>Runs a real program of this machine (ip, nft, tcpdump, curl, ...) and collects its output.</summary>
public static class HostCommand
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Runs <paramref name="file"/> with <paramref name="arguments"/> and waits for it; kills it after the timeout.</summary>
    public static async Task<CommandResult> RunAsync(string file, IEnumerable<string> arguments, TimeSpan? timeout = null, string? stdin = null)
    {
        var start = new ProcessStartInfo(file);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return await RunAsync(start, timeout, stdin);
    }

    /// <summary>Runs a prepared command (its own environment, say) with its output and error redirected; kills it after the timeout.</summary>
    public static async Task<CommandResult> RunAsync(ProcessStartInfo start, TimeSpan? timeout = null, string? stdin = null)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = stdin is not null;
        start.UseShellExecute = false;
        var command = Describe(start.FileName, start.ArgumentList);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start '{command}'");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
            process.StandardInput.Close();
        }

        using var cancel = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"'{command}' did not finish within {timeout ?? DefaultTimeout}: {await stderr}");
        }

        return new CommandResult(command, process.ExitCode, await stdout, await stderr);
    }

    public static Task<CommandResult> RunAsync(string file, params string[] arguments) => RunAsync(file, (IEnumerable<string>)arguments);

    /// <summary>Runs and throws with the command's stderr when it fails.</summary>
    public static async Task<CommandResult> CheckedAsync(string file, params string[] arguments) =>
        (await RunAsync(file, arguments)).EnsureSuccess();

    /// <summary>Sends a signal to a process (SIGTERM = 15).</summary>
    public static void Signal(int pid, int signal)
    {
        if (Native.Kill(pid, signal) != 0)
        {
            throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public static bool IsRoot => Native.GetEffectiveUserId() == 0;

    internal static string Describe(string file, IEnumerable<string> arguments)
    {
        var text = new StringBuilder(file);
        foreach (var argument in arguments)
        {
            text.Append(' ').Append(argument.Contains(' ', StringComparison.Ordinal) ? $"'{argument}'" : argument);
        }

        return text.ToString();
    }

    private static class Native
    {
        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static extern int Kill(int pid, int signal);

        [DllImport("libc", EntryPoint = "geteuid")]
        public static extern uint GetEffectiveUserId();
    }
}
