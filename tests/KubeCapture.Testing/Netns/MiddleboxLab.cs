using System.Globalization;
using System.Net;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Netns;

/// <summary>
/// Three network namespaces in a row, client — middlebox — server: the middlebox forwards between
/// its two links (IPv4 and IPv6), and the tests make trouble there (<see cref="NetnsPod.AddNftablesAsync"/>
/// on <see cref="Middlebox"/>, a lower MTU on one of its links) while an agent captures at each end.
/// Client link 169.254.N.0/30 and fdNN:0:0:1::/64 (middlebox .1 and ::1, client .2 and ::2); server link
/// 169.254.N.4/30 and fdNN:0:0:2::/64 (middlebox .5 and ::1, server .6 and ::2); the ends route
/// everything through the middlebox, so the server's packets arrive at the client one hop older (TTL
/// and hop limit 63) and packets the middlebox makes itself do not. Offloads off, IPv6 without DAD.
/// Names <c>PREFIX-&lt;pid&gt;x&lt;n&gt;-cli|mbx|srv</c>; everything is deleted on dispose. Needs root.
/// </summary>
public sealed class MiddleboxLab : IAsyncDisposable
{
    private readonly bool _joined;
    private bool _disposed;

    private MiddleboxLab(NetnsPod client, NetnsPod middlebox, string middleboxServerInterface, IPAddress middleboxServerIPv4, IPAddress middleboxServerIPv6, NetnsPod server)
    {
        (Client, Middlebox, Server) = (client, middlebox, server);
        (MiddleboxServerInterface, MiddleboxServerIPv4, MiddleboxServerIPv6) = (middleboxServerInterface, middleboxServerIPv4, middleboxServerIPv6);
        _joined = true;
    }

    private MiddleboxLab(string prefix, LabNames names, int subnet)
    {
        var (id, interfaceId) = (names.Id, names.InterfaceId);
        Client = new NetnsPod($"{prefix}-{id}-cli", $"{prefix}{interfaceId}c",
            IPAddress.Parse($"169.254.{subnet}.2"), IPAddress.Parse($"fd{subnet:x2}:0:0:1::2"));
        Middlebox = new NetnsPod($"{prefix}-{id}-mbx", $"{prefix}{interfaceId}a",
            IPAddress.Parse($"169.254.{subnet}.1"), IPAddress.Parse($"fd{subnet:x2}:0:0:1::1"));
        MiddleboxServerInterface = $"{prefix}{interfaceId}b";
        MiddleboxServerIPv4 = IPAddress.Parse($"169.254.{subnet}.5");
        MiddleboxServerIPv6 = IPAddress.Parse($"fd{subnet:x2}:0:0:2::1");
        Server = new NetnsPod($"{prefix}-{id}-srv", $"{prefix}{interfaceId}s",
            IPAddress.Parse($"169.254.{subnet}.6"), IPAddress.Parse($"fd{subnet:x2}:0:0:2::2"));
    }

    /// <summary>The pod that makes requests; its gateway is the middlebox.</summary>
    public NetnsPod Client { get; }

    /// <summary>The device in between; its <see cref="NetnsPod.Interface"/> and addresses face the client.</summary>
    public NetnsPod Middlebox { get; }

    /// <summary>The middlebox's interface toward the server.</summary>
    public string MiddleboxServerInterface { get; }

    public IPAddress MiddleboxServerIPv4 { get; }

    public IPAddress MiddleboxServerIPv6 { get; }

    /// <summary>The pod where servers listen; its gateway is the middlebox.</summary>
    public NetnsPod Server { get; }

    /// <summary>Creates the lab; <paramref name="prefix"/> is the caller's own, 1 to 5 letters or digits.</summary>
    public static async Task<MiddleboxLab> CreateAsync(string prefix = "kcMB")
    {
        var names = NetnsLab.Reserve(prefix);
        var lab = new MiddleboxLab(prefix, names, 100 + (names.Number % 150));
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

    /// <summary>
    /// Puts a middlebox between two namespaces that exist already (two pods of the Kubernetes test
    /// bed): each gets a link to it on 198.18.N.0/30 (client .2, middlebox .1) and 198.18.N.4/30
    /// (middlebox .5, server .6) and fd18:N:1::/64, fd18:N:2::/64, and a route to the other's link
    /// through it; their other routes stay. Dispose deletes the middlebox (and the links with it),
    /// never the two namespaces.
    /// </summary>
    public static async Task<MiddleboxLab> JoinAsync(string clientNamespace, string serverNamespace, string prefix = "kcMJ")
    {
        var (id, interfaceId, n) = NetnsLab.Reserve(prefix);
        var subnet = n % 250;
        var lab = new MiddleboxLab(
            new NetnsPod(clientNamespace, $"{prefix}{interfaceId}c", IPAddress.Parse($"198.18.{subnet}.2"), IPAddress.Parse($"fd18:{subnet:x}:1::2")),
            new NetnsPod($"{prefix}-{id}-mbx", $"{prefix}{interfaceId}a", IPAddress.Parse($"198.18.{subnet}.1"), IPAddress.Parse($"fd18:{subnet:x}:1::1")),
            $"{prefix}{interfaceId}b", IPAddress.Parse($"198.18.{subnet}.5"), IPAddress.Parse($"fd18:{subnet:x}:2::1"),
            new NetnsPod(serverNamespace, $"{prefix}{interfaceId}s", IPAddress.Parse($"198.18.{subnet}.6"), IPAddress.Parse($"fd18:{subnet:x}:2::2")));
        try
        {
            var m = lab.Middlebox;
            await Ip("netns", "add", m.Name);
            await Ip("-n", m.Name, "link", "set", "lo", "up");
            await LinkAsync(m, m.Interface, m.IPv4, m.IPv6, lab.Client);
            await LinkAsync(m, lab.MiddleboxServerInterface, lab.MiddleboxServerIPv4, lab.MiddleboxServerIPv6, lab.Server);
            (await m.ExecAsync("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")).EnsureSuccess();
            await Ip("-n", clientNamespace, "route", "add", $"198.18.{subnet}.4/30", "via", m.IPv4.ToString());
            await Ip("-n", serverNamespace, "route", "add", $"198.18.{subnet}.0/30", "via", lab.MiddleboxServerIPv4.ToString());
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
        var (c, m, s) = (Client, Middlebox, Server);
        foreach (var pod in (NetnsPod[])[c, m, s])
        {
            await Ip("netns", "add", pod.Name);
            await Ip("-n", pod.Name, "link", "set", "lo", "up");
        }

        await LinkAsync(m, m.Interface, m.IPv4, m.IPv6, c);
        await LinkAsync(m, MiddleboxServerInterface, MiddleboxServerIPv4, MiddleboxServerIPv6, s);
        (await m.ExecAsync("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")).EnsureSuccess();
        await Ip("-n", c.Name, "route", "add", "default", "via", m.IPv4.ToString());
        await Ip("-n", c.Name, "-6", "route", "add", "default", "via", m.IPv6.ToString());
        await Ip("-n", s.Name, "route", "add", "default", "via", MiddleboxServerIPv4.ToString());
        await Ip("-n", s.Name, "-6", "route", "add", "default", "via", MiddleboxServerIPv6.ToString());
    }

    private static async Task LinkAsync(NetnsPod middlebox, string middleboxInterface, IPAddress middleboxIPv4, IPAddress middleboxIPv6, NetnsPod end)
    {
        await Ip("link", "add", middleboxInterface, "netns", middlebox.Name, "type", "veth", "peer", "name", end.Interface, "netns", end.Name);
        await Ip("-n", middlebox.Name, "addr", "add", $"{middleboxIPv4}/30", "dev", middleboxInterface);
        await Ip("-n", middlebox.Name, "addr", "add", $"{middleboxIPv6}/64", "dev", middleboxInterface, "nodad");
        await Ip("-n", end.Name, "addr", "add", $"{end.IPv4}/30", "dev", end.Interface);
        await Ip("-n", end.Name, "addr", "add", $"{end.IPv6}/64", "dev", end.Interface, "nodad");
        await Ip("-n", middlebox.Name, "link", "set", middleboxInterface, "up");
        await Ip("-n", end.Name, "link", "set", end.Interface, "up");
        (await middlebox.ExecAsync("ethtool", "-K", middleboxInterface, "tso", "off", "gso", "off", "gro", "off")).EnsureSuccess();
        (await end.ExecAsync("ethtool", "-K", end.Interface, "tso", "off", "gso", "off", "gro", "off")).EnsureSuccess();
    }

    private static Task<CommandResult> Ip(params string[] arguments) => HostCommand.CheckedAsync("ip", arguments);

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var pod in _joined ? [Middlebox] : (NetnsPod[])[Client, Middlebox, Server])
        {
            foreach (var line in (await HostCommand.RunAsync("ip", "netns", "pids", pod.Name)).StdoutLines)
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

            await HostCommand.RunAsync("ip", "netns", "del", pod.Name);
        }
    }
}
