using System.Diagnostics;
using System.Globalization;
using System.Net;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Netns;

/// <summary>
/// One "pod": a network namespace with loopback up and one end of the lab's veth pair, holding an
/// IPv4 link-local address and an IPv6 ULA.
/// </summary>
public sealed class NetnsPod
{
    internal NetnsPod(string name, string interfaceName, IPAddress ipv4, IPAddress ipv6)
    {
        Name = name;
        Interface = interfaceName;
        IPv4 = ipv4;
        IPv6 = ipv6;
    }

    /// <summary>The network namespace's name (ip netns).</summary>
    public string Name { get; }

    /// <summary>This pod's end of the veth pair.</summary>
    public string Interface { get; }

    public IPAddress IPv4 { get; }

    public IPAddress IPv6 { get; }

    /// <summary>The address of the given family, as it goes into a URL host ("169.254.1.1" or "[fd01::1]").</summary>
    public string UrlHost(bool ipv6) => ipv6 ? $"[{IPv6}]" : IPv4.ToString();

    public IPAddress Address(bool ipv6) => ipv6 ? IPv6 : IPv4;

    /// <summary>Runs a command inside this namespace (<c>ip netns exec</c>) and waits for it.</summary>
    public Task<CommandResult> ExecAsync(IEnumerable<string> command, TimeSpan? timeout = null, string? stdin = null) =>
        HostCommand.RunAsync("ip", ["netns", "exec", Name, .. command], timeout, stdin);

    public Task<CommandResult> ExecAsync(params string[] command) => ExecAsync((IEnumerable<string>)command);

    /// <summary>Starts a long-running command inside this namespace; the caller owns the process.</summary>
    public Process Start(IEnumerable<string> command, bool redirect = true)
    {
        var start = new ProcessStartInfo("ip")
        {
            RedirectStandardOutput = redirect,
            RedirectStandardError = redirect,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])["netns", "exec", Name, .. command])
        {
            start.ArgumentList.Add(argument);
        }

        return Process.Start(start) ?? throw new InvalidOperationException($"could not start {string.Join(' ', command)} in {Name}");
    }

    /// <summary>Starts a server (a long-running command) in this pod and returns once it listens on <paramref name="port"/>; the caller owns the process.</summary>
    public async Task<Process> StartListeningAsync(IEnumerable<string> command, int port)
    {
        var process = Start(command);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!await IsListeningAsync(port))
        {
            if (process.HasExited || DateTime.UtcNow > deadline)
            {
                var why = process.HasExited ? $"it exited {process.ExitCode}" : "timed out";
                process.Dispose();
                throw new InvalidOperationException($"{string.Join(' ', command).Split('\n')[0]} did not listen on port {port} in {Name}: {why}");
            }

            await Task.Delay(20);
        }

        return process;
    }

    /// <summary>Loads an nftables ruleset (nft -f syntax) into this namespace.</summary>
    public async Task AddNftablesAsync(string ruleset) =>
        (await ExecAsync(["nft", "-f", "-"], stdin: ruleset)).EnsureSuccess();

    /// <summary>The packets counted by the <c>counter</c> statements of <paramref name="chain"/> in table inet <paramref name="table"/> (nft -j).</summary>
    public async Task<long> NftablesCounterPacketsAsync(string table, string chain)
    {
        var listed = (await ExecAsync(["nft", "-j", "list", "chain", "inet", table, chain])).EnsureSuccess().Stdout;
        using var json = System.Text.Json.JsonDocument.Parse(listed);
        long packets = 0;
        foreach (var item in json.RootElement.GetProperty("nftables").EnumerateArray())
        {
            if (item.TryGetProperty("rule", out var rule))
            {
                foreach (var statement in rule.GetProperty("expr").EnumerateArray())
                {
                    if (statement.TryGetProperty("counter", out var counter))
                    {
                        packets += counter.GetProperty("packets").GetInt64();
                    }
                }
            }
        }

        return packets;
    }

    /// <summary>
    /// Makes this pod's link carry BIG TCP, as a node with BIG TCP enabled does (Cilium's option,
    /// <c>ip link set ... gso_max_size</c>): segmentation offload (TSO/GSO: the stack sends packets up
    /// to <paramref name="maxSize"/> bytes and the capture sees them whole) and receive offload (GRO:
    /// received segments merged up to <paramref name="maxSize"/>) as asked, with the largest GSO and GRO
    /// packet raised for IPv6 (<c>gso_max_size</c>, <c>gro_max_size</c>) and IPv4
    /// (<c>gso_ipv4_max_size</c>, <c>gro_ipv4_max_size</c>, set by netlink: this iproute2 lacks them).
    /// Takes effect for connections made afterwards.
    /// </summary>
    public async Task EnableBigTcpAsync(int maxSize, bool segmentationOffload, bool receiveOffload)
    {
        var size = maxSize.ToString(System.Globalization.CultureInfo.InvariantCulture);
        (await ExecAsync("ethtool", "-K", Interface, "tso", segmentationOffload ? "on" : "off", "gso", segmentationOffload ? "on" : "off", "gro", receiveOffload ? "on" : "off")).EnsureSuccess();
        (await HostCommand.RunAsync("ip", "-n", Name, "link", "set", Interface, "gso_max_size", size, "gro_max_size", size)).EnsureSuccess();
        (await ExecAsync("python3", "-c", SetIPv4GsoGroMaxSize, Interface, size)).EnsureSuccess();
    }

    /// <summary>RTM_NEWLINK with IFLA_GSO_IPV4_MAX_SIZE (63) and IFLA_GRO_IPV4_MAX_SIZE (64): argv[1] the interface, argv[2] the size.</summary>
    private const string SetIPv4GsoGroMaxSize = """
        import socket, struct, sys
        index, size = socket.if_nametoindex(sys.argv[1]), int(sys.argv[2])
        def attr(kind, value):
            a = struct.pack('=HH', 4 + len(value), kind) + value
            return a + bytes(-len(a) % 4)
        body = struct.pack('=BxHiII', socket.AF_UNSPEC, 0, index, 0, 0) + attr(63, struct.pack('=I', size)) + attr(64, struct.pack('=I', size))
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        s.send(struct.pack('=IHHII', 16 + len(body), 16, 1 | 4, 1, 0) + body)
        error = struct.unpack('=i', s.recv(65536)[16:20])[0]
        sys.exit(f'netlink: error {error}' if error else 0)
        """;

    /// <summary>Sets the MTU of this pod's veth end.</summary>
    public async Task SetMtuAsync(int mtu) =>
        (await HostCommand.RunAsync("ip", "-n", Name, "link", "set", Interface, "mtu", mtu.ToString(System.Globalization.CultureInfo.InvariantCulture))).EnsureSuccess();

    /// <summary>
    /// Makes this pod advertise <paramref name="ipv4Mss"/> (IPv4) and <paramref name="ipv4Mss"/> - 20
    /// (IPv6) in its SYNs whatever its MTU (<c>ip route ... advmss</c> on its link routes): with a
    /// lowered MTU, the broken MSS clamp of an MTU blackhole.
    /// </summary>
    public async Task AdvertiseMssAsync(int ipv4Mss)
    {
        var v4 = IPv4.GetAddressBytes();
        v4[3] &= 0xfc; // the /30
        var v6 = IPv6.GetAddressBytes();
        Array.Clear(v6, 8, 8); // the /64
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        (await HostCommand.RunAsync("ip", "-n", Name, "route", "change", $"{new IPAddress(v4)}/30", "dev", Interface,
            "proto", "kernel", "scope", "link", "src", IPv4.ToString(), "advmss", ipv4Mss.ToString(inv))).EnsureSuccess();
        (await HostCommand.RunAsync("ip", "-n", Name, "-6", "route", "change", $"{new IPAddress(v6)}/64", "dev", Interface,
            "proto", "kernel", "metric", "256", "advmss", (ipv4Mss - 20).ToString(inv))).EnsureSuccess();
    }

    /// <summary>
    /// curl from this pod: returns curl's result (exit 0 and the HTTP code on stdout; 7 when refused,
    /// 28 on timeout). Requests carry a fixed User-Agent so their length is known.
    /// </summary>
    public Task<CommandResult> CurlAsync(string url, TimeSpan? maxTime = null) =>
        ExecAsync(
            ["curl", "-s", "-o", "/dev/null", "-A", CurlUserAgent, "--max-time", ((maxTime ?? TimeSpan.FromSeconds(5)).TotalSeconds).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture), "-w", "%{http_code}", url],
            timeout: (maxTime ?? TimeSpan.FromSeconds(5)) + TimeSpan.FromSeconds(10));

    /// <summary>The User-Agent of <see cref="CurlAsync"/>.</summary>
    public const string CurlUserAgent = "kubecapture-test";

    /// <summary>The exact request <see cref="CurlAsync"/> sends for <paramref name="path"/> to host:port.</summary>
    public static string CurlRequest(string path, string urlHost, int port) =>
        $"GET {path} HTTP/1.1\r\nHost: {urlHost}:{port}\r\nUser-Agent: {CurlUserAgent}\r\nAccept: */*\r\n\r\n";

    /// <summary>Whether a TCP socket listens on <paramref name="port"/> in this namespace.</summary>
    public async Task<bool> IsListeningAsync(int port)
    {
        var result = await ExecAsync("ss", "-Hltn", $"sport = :{port}");
        return result.ExitCode == 0 && result.Stdout.Trim().Length > 0;
    }

    /// <summary>Starts a throwaway HTTP server (python3 -m http.server, bound to ::) in this pod.</summary>
    public Task<HttpFileServer> StartHttpServerAsync(int port, IReadOnlyDictionary<string, int> filesBySize) =>
        HttpFileServer.StartAsync(this, port, filesBySize);

    /// <summary>
    /// An HTTP server on <paramref name="port"/> (IPv4 and IPv6) that reads each request, answers it
    /// <paramref name="delay"/> after it came (200, "ready") and closes: an application slow to answer
    /// a request its TCP acknowledged at once. Returned once it listens; kill it when done.
    /// </summary>
    public Task<Process> StartSlowHttpServerAsync(int port, TimeSpan delay) =>
        StartListeningAsync(["python3", "-c", SlowHttpServer, port.ToString(CultureInfo.InvariantCulture), delay.TotalSeconds.ToString(CultureInfo.InvariantCulture)], port);

    private const string SlowHttpServer = """
        import socket, sys, threading, time
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('::', int(sys.argv[1])))
        s.listen()
        def answer(c):
            c.recv(65536)
            time.sleep(float(sys.argv[2]))
            c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nready')
            c.close()
        while True:
            threading.Thread(target=answer, args=(s.accept()[0],)).start()
        """;
}
