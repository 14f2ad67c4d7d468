using System.Globalization;
using System.Net;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Netns;

/// <summary>
/// Network namespaces as pods: a server and one or more clients, each client joined to the server
/// by its own veth pair. The first pair has 169.254.N.1/30 and fdNN::1/64 (server), .2 and ::2
/// (client); pair k has 169.254.N.(4k+1)/30 and fdNN:0:0:k::1/64 and so on. Loopback up, IPv6
/// without DAD, segmentation and receive offloads off so captures show the real segments on the
/// wire. Names are unique per process and instance (prefix, pid, counter) so parallel tests never
/// collide; everything is deleted on dispose (processes left in the namespaces are killed), and
/// namespaces left behind by a killed test run (its pid no longer alive) are deleted by the next
/// lab created with the same prefix. Needs root.
/// </summary>
public sealed class NetnsLab : IAsyncDisposable, IDisposable
{
    public const int MaxClients = 9;
    private static int _counter;
    private readonly List<(string ServerInterface, NetnsPod Client, IPAddress ServerIPv4, IPAddress ServerIPv6)> _links = [];
    private bool _disposed;

    private NetnsLab(string prefix, string id, string interfaceId, int subnet, int clients)
    {
        Prefix = prefix;
        Id = id;
        Server = new NetnsPod($"{prefix}-{id}-srv", $"{prefix}{interfaceId}s",
            IPAddress.Parse($"169.254.{subnet}.1"), IPAddress.Parse($"fd{subnet:x2}::1"));
        var all = new List<NetnsPod>();
        for (var k = 0; k < clients; k++)
        {
            var suffix = k == 0 ? "" : k.ToString(CultureInfo.InvariantCulture);
            var serverIPv4 = IPAddress.Parse($"169.254.{subnet}.{(4 * k) + 1}");
            var serverIPv6 = IPAddress.Parse($"fd{subnet:x2}:0:0:{k:x}::1");
            var client = new NetnsPod($"{prefix}-{id}-cli{suffix}", $"{prefix}{interfaceId}c{suffix}",
                IPAddress.Parse($"169.254.{subnet}.{(4 * k) + 2}"), IPAddress.Parse($"fd{subnet:x2}:0:0:{k:x}::2"));
            all.Add(client);
            _links.Add(($"{prefix}{interfaceId}s{suffix}", client, serverIPv4, serverIPv6));
        }

        Clients = all;
    }

    public string Prefix { get; }

    public string Id { get; }

    /// <summary>The pod where servers listen and the agent usually captures.</summary>
    public NetnsPod Server { get; }

    /// <summary>The (first) pod that makes requests.</summary>
    public NetnsPod Client => Clients[0];

    /// <summary>Every client pod, each on its own veth pair to the server.</summary>
    public IReadOnlyList<NetnsPod> Clients { get; }

    /// <summary>The server's interface toward <paramref name="client"/> (for the first client: Server.Interface).</summary>
    public string ServerInterfaceFor(NetnsPod client) => _links.Single(l => l.Client == client).ServerInterface;

    /// <summary>The server's address on the link to <paramref name="client"/>: what that client connects to.</summary>
    public IPAddress ServerAddressFor(NetnsPod client, bool ipv6)
    {
        var link = _links.Single(l => l.Client == client);
        return ipv6 ? link.ServerIPv6 : link.ServerIPv4;
    }

    /// <summary>
    /// Creates the lab. <paramref name="prefix"/> is the caller's own short prefix (e.g. kcAT), at
    /// most 5 letters or digits; <paramref name="clients"/> is 1 to <see cref="MaxClients"/>.
    /// </summary>
    public static async Task<NetnsLab> CreateAsync(string prefix = "kcAT", int clients = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(clients, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(clients, MaxClients);
        var names = await ReserveAsync(prefix);
        var lab = new NetnsLab(prefix, names.Id, names.InterfaceId, 100 + (names.Number % 150), clients);
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
        await Ip("netns", "add", s.Name);
        await Ip("-n", s.Name, "link", "set", "lo", "up");
        foreach (var (serverInterface, client, serverIPv4, serverIPv6) in _links)
        {
            await Ip("netns", "add", client.Name);
            await Ip("link", "add", serverInterface, "netns", s.Name, "type", "veth", "peer", "name", client.Interface, "netns", client.Name);
            await Ip("-n", s.Name, "addr", "add", $"{serverIPv4}/30", "dev", serverInterface);
            await Ip("-n", s.Name, "addr", "add", $"{serverIPv6}/64", "dev", serverInterface, "nodad");
            await Ip("-n", client.Name, "addr", "add", $"{client.IPv4}/30", "dev", client.Interface);
            await Ip("-n", client.Name, "addr", "add", $"{client.IPv6}/64", "dev", client.Interface, "nodad");
            await Ip("-n", client.Name, "link", "set", "lo", "up");
            await Ip("-n", s.Name, "link", "set", serverInterface, "up");
            await Ip("-n", client.Name, "link", "set", client.Interface, "up");
            (await s.ExecAsync("ethtool", "-K", serverInterface, "tso", "off", "gso", "off", "gro", "off")).EnsureSuccess();
            (await client.ExecAsync("ethtool", "-K", client.Interface, "tso", "off", "gso", "off", "gro", "off")).EnsureSuccess();
        }
    }

    private static Task<CommandResult> Ip(params string[] arguments) => HostCommand.CheckedAsync("ip", arguments);

    /// <summary><see cref="Reserve"/>, after deleting the namespaces of this prefix that dead processes left.</summary>
    internal static async Task<LabNames> ReserveAsync(string prefix)
    {
        var names = Reserve(prefix);
        await RemoveStaleAsync(prefix);
        return names;
    }

    /// <summary>
    /// The names of a new lab of <paramref name="prefix"/> (1 to 5 letters or digits), unique per
    /// process and lab (namespaces <c>PREFIX-ID-role</c>), and the id cut to fit interface names
    /// (at most 15 characters: prefix + id + a role letter + one digit).
    /// </summary>
    internal static LabNames Reserve(string prefix)
    {
        if (prefix.Length is 0 or > 5 || !prefix.All(char.IsAsciiLetterOrDigit))
        {
            throw new ArgumentException("the prefix must be 1 to 5 letters or digits", nameof(prefix));
        }

        var n = Interlocked.Increment(ref _counter);
        var id = string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId:x}x{n:x}");
        return new LabNames(id, id.Length > 13 - prefix.Length ? id[^(13 - prefix.Length)..] : id, n);
    }

    /// <summary>Deletes namespaces of this prefix whose creating process is gone.</summary>
    private static async Task RemoveStaleAsync(string prefix)
    {
        var list = await HostCommand.RunAsync("ip", "netns", "list");
        foreach (var line in list.StdoutLines)
        {
            var name = line.Split(' ')[0];
            var parts = name.Split('-');
            if (parts.Length != 3 || parts[0] != prefix || !parts[1].Contains('x', StringComparison.Ordinal))
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
        foreach (var pod in (NetnsPod[])[Server, .. Clients])
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

/// <summary>A lab's id (<c>PID x N</c>), the id as it fits interface names, and N.</summary>
internal readonly record struct LabNames(string Id, string InterfaceId, int Number);
