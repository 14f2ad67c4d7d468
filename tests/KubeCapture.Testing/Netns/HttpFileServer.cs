using System.Diagnostics;

namespace KubeCapture.Testing.Netns;

/// <summary>
/// A throwaway HTTP server in a pod: <c>python3 -m http.server</c> bound to :: (IPv4 and IPv6),
/// serving a temporary directory of files of chosen sizes. Stopped and deleted on dispose.
/// </summary>
public sealed class HttpFileServer : IAsyncDisposable
{
    private readonly Process _process;

    private HttpFileServer(NetnsPod pod, int port, string root, Process process)
    {
        Pod = pod;
        Port = port;
        Root = root;
        _process = process;
    }

    public NetnsPod Pod { get; }

    public int Port { get; }

    /// <summary>The directory served.</summary>
    public string Root { get; }

    /// <summary>http://host:port/name on the server pod's address of the given family.</summary>
    public string Url(string name, bool ipv6 = false) => $"http://{Pod.UrlHost(ipv6)}:{Port}/{name}";

    internal static async Task<HttpFileServer> StartAsync(NetnsPod pod, int port, IReadOnlyDictionary<string, int> filesBySize)
    {
        var root = Directory.CreateTempSubdirectory("kcAT-www-").FullName;
        foreach (var (name, size) in filesBySize)
        {
            var bytes = new byte[size];
            Random.Shared.NextBytes(bytes);
            await File.WriteAllBytesAsync(Path.Combine(root, name), bytes);
        }

        var process = pod.Start(["python3", "-m", "http.server", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "::", "--directory", root]);
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        process.ErrorDataReceived += (_, e) => log.Enqueue(e.Data ?? "");
        process.OutputDataReceived += (_, e) => log.Enqueue(e.Data ?? "");
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var server = new HttpFileServer(pod, port, root, process);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!await pod.IsListeningAsync(port))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                var error = process.HasExited ? string.Join(" ", log) : "timed out";
                await server.DisposeAsync();
                throw new InvalidOperationException($"the HTTP server on port {port} in {pod.Name} did not start: {error}");
            }

            await Task.Delay(30);
        }

        return server;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }

        _process.Dispose();
        Directory.Delete(Root, recursive: true);
    }
}
