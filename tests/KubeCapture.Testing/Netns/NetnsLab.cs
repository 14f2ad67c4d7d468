using System.Globalization;
using System.Net;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Netns;

/// <summary>
/// Two network namespaces as pods, a server and a client, joined by a veth pair:
/// 169.254.N.1/30 and fdNN::1/64 (server), .2 and ::2 (client), loopback up, IPv6 without DAD,
/// segmentation and receive offloads off so captures show the real segments on the wire.
/// Names are unique per process and instance (prefix, pid, counter) so parallel tests never
/// collide; everything is deleted on dispose, and namespaces left behind by a killed test run
/// (its pid no longer alive) are deleted by the next lab created. Needs root.
/// </summary>
public sealed class NetnsLab : IAsyncDisposable, IDisposable
{
    private static int _counter;
    private bool _disposed;

    private NetnsLab(string prefix, string id, int subnet)
    {
        Prefix = prefix;
        Id = id;
        Server = new NetnsPod($"{prefix}-{id}-srv", $"{prefix}{id}s",
            IPAddress.Parse($"169.254.{subnet}.1"), IPAddress.Parse($"fd{subnet:x2}::1"));
        Client = new NetnsPod($"{prefix}-{id}-cli", $"{prefix}{id}c",
            IPAddress.Parse($"169.254.{subnet}.2"), IPAddress.Parse($"fd{subnet:x2}::2"));
    }

    public string Prefix { get; }

    public string Id { get; }

    /// <summary>The pod where servers listen and the agent usually captures.</summary>
    public NetnsPod Server { get; }

    /// <summary>The pod that makes requests.</summary>
    public NetnsPod Client { get; }

    /// <summary>
    /// Creates the lab. <paramref name="prefix"/> is the caller's own short prefix (e.g. kcAT);
    /// interface names are prefix + id + one letter, so keep the prefix at most 5 characters.
    /// </summary>
    public static async Task<NetnsLab> CreateAsync(string prefix = "kcAT")
    {
        if (prefix.Length is 0 or > 5 || !prefix.All(char.IsAsciiLetterOrDigit))
        {
            throw new ArgumentException("the prefix must be 1 to 5 letters or digits", nameof(prefix));
        }

        await RemoveStaleAsync(prefix);
        var n = Interlocked.Increment(ref _counter);
        var id = string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId:x}x{n:x}");
        if (prefix.Length + id.Length + 1 > 15)
        {
            id = id[^(14 - prefix.Length)..];
        }

        var lab = new NetnsLab(prefix, id, 100 + (n % 150));
        try
        {
            await lab.BuildAsync();
        }
        catch
        {
            await lab.DisposeAsync();
            throw;
        }

        return lab;
    }

    private async Task BuildAsync()
    {
        var s = Server;
        var c = Client;
        await Ip("netns", "add", s.Name);
        await Ip("netns", "add", c.Name);
        await Ip("link", "add", s.Interface, "netns", s.Name, "type", "veth", "peer", "name", c.Interface, "netns", c.Name);
        foreach (var pod in (NetnsPod[])[s, c])
        {
            await Ip("-n", pod.Name, "addr", "add", $"{pod.IPv4}/30", "dev", pod.Interface);
            await Ip("-n", pod.Name, "addr", "add", $"{pod.IPv6}/64", "dev", pod.Interface, "nodad");
            await Ip("-n", pod.Name, "link", "set", "lo", "up");
            await Ip("-n", pod.Name, "link", "set", pod.Interface, "up");
            (await pod.ExecAsync("ethtool", "-K", pod.Interface, "tso", "off", "gso", "off", "gro", "off")).EnsureSuccess();
        }
    }

    private static Task<CommandResult> Ip(params string[] arguments) => HostCommand.CheckedAsync("ip", arguments);

    /// <summary>Deletes namespaces of this prefix whose creating process is gone.</summary>
    private static async Task RemoveStaleAsync(string prefix)
    {
        var list = await HostCommand.RunAsync("ip", "netns", "list");
        foreach (var line in list.StdoutLines)
        {
            var name = line.Split(' ')[0];
            var parts = name.Split('-');
            if (parts.Length != 3 || parts[0] != prefix)
            {
                continue;
            }

            var pidText = parts[1].Split('x')[0];
            if (int.TryParse(pidText, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var pid) &&
                pid != Environment.ProcessId && !Directory.Exists($"/proc/{pid}"))
            {
                await HostCommand.RunAsync("ip", "netns", "del", name);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        // Deleting a namespace kills nothing in it, but its veth end goes with it, and the peer too.
        foreach (var pod in (NetnsPod[])[Server, Client])
        {
            await KillProcessesInAsync(pod);
            await HostCommand.RunAsync("ip", "netns", "del", pod.Name);
        }
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private static async Task KillProcessesInAsync(NetnsPod pod)
    {
        var pids = await HostCommand.RunAsync("ip", "netns", "pids", pod.Name);
        foreach (var line in pids.StdoutLines)
        {
            if (int.TryParse(line, out var pid))
            {
                try
                {
                    HostCommand.Signal(pid, 9);
                }
                catch (InvalidOperationException)
                {
                    // already gone
                }
            }
        }
    }
}
