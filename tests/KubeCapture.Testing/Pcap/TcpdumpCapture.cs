using System.Collections.Concurrent;
using System.Diagnostics;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Pcap;

/// <summary>
/// tcpdump writing a pcap in a pod (<c>tcpdump -nn -i IFACE -s SNAPLEN --immediate-mode -U -w FILE FILTER</c>):
/// the ground truth a test compares the agent's capture with. <see cref="StartAsync"/> returns
/// once tcpdump says it is listening; <see cref="StopAsync"/> sends SIGTERM and waits for the file.
/// </summary>
public sealed class TcpdumpCapture : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _log = new();

    private TcpdumpCapture(Process process, string path)
    {
        _process = process;
        Path = path;
    }

    public string Path { get; }

    /// <summary>What tcpdump printed on stderr.</summary>
    public string Log => string.Join('\n', _log);

    public static async Task<TcpdumpCapture> StartAsync(NetnsPod pod, string interfaceName, string path, string filter, int snaplen = 128)
    {
        ArgumentNullException.ThrowIfNull(pod);
        var process = pod.Start(["tcpdump", "-nn", "-i", interfaceName, "-s", snaplen.ToString(System.Globalization.CultureInfo.InvariantCulture), "--immediate-mode", "-U", "-w", path, filter]);
        var capture = new TcpdumpCapture(process, path);
        var listening = new TaskCompletionSource();
        process.ErrorDataReceived += (_, e) =>
        {
            capture._log.Enqueue(e.Data ?? "");
            if (e.Data?.Contains("listening on", StringComparison.Ordinal) == true)
            {
                listening.TrySetResult();
            }
        };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            await Task.WhenAny(listening.Task, process.WaitForExitAsync()).WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch (TimeoutException)
        {
            capture.Dispose();
            throw new TimeoutException($"tcpdump did not start listening within 20 s: {capture.Log}");
        }

        if (!listening.Task.IsCompleted)
        {
            capture.Dispose();
            throw new InvalidOperationException($"tcpdump exited before listening: {capture.Log}");
        }

        return capture;
    }

    /// <summary>SIGTERM: tcpdump flushes and closes the file.</summary>
    public async Task StopAsync()
    {
        if (!_process.HasExited)
        {
            HostCommand.Signal(_process.Id, 15);
        }

        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        _process.Dispose();
    }
}
