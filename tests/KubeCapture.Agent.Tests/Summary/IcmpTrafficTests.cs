using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>
/// ICMP errors as evidence, with real traffic through the middlebox lab: a firewall's rejection, an
/// unreachable host or network, a TTL that runs out, a UDP port nothing listens on, path MTU discovery.
/// The agents capture with the filters users type (<c>tcp port 8000</c>, <c>udp port 5353</c>), which
/// no ICMP packet matches: the capture keeps the errors about the flows they select, and only those.
/// tcpdump and tshark reading the same pcaps are the ground truth.
/// </summary>
public sealed class IcmpTrafficTests : IAsyncLifetime
{
    private const int Port = 8000;
    private MiddleboxLab _lab = null!;
    private HttpFileServer _http = null!;
    private readonly CaptureFiles _files = new();

    public async Task InitializeAsync()
    {
        _lab = await MiddleboxLab.CreateAsync("kcIC");
        _http = await _lab.Server.StartHttpServerAsync(Port, new Dictionary<string, int> { ["small.txt"] = 1000, ["200k.bin"] = 204_800 });
    }

    public async Task DisposeAsync()
    {
        await _http.DisposeAsync();
        await _lab.DisposeAsync();
        _files.Dispose();
    }

    private string Middlebox(bool ipv6) => ipv6 ? _lab.Middlebox.IPv6.ToString() : _lab.Middlebox.IPv4.ToString();

    private string ServerAddress(bool ipv6) => _lab.Server.Address(ipv6).ToString();

    private string ServerEndpoint(bool ipv6) => ipv6 ? $"[{_lab.Server.IPv6}]:{Port}" : $"{_lab.Server.IPv4}:{Port}";

    [Theory]
    [InlineData(false, "icmp type admin-prohibited", 3, 13, "destination unreachable, administratively prohibited (type 3, code 13)", "a firewall or network policy rejects it")]
    [InlineData(true, "icmpv6 type admin-prohibited", 1, 1, "destination unreachable, administratively prohibited (type 1, code 1)", "a firewall or network policy rejects it")]
    [InlineData(false, "icmp type host-unreachable", 3, 1, "destination unreachable, host unreachable (type 3, code 1)", "the destination host cannot be reached")]
    [InlineData(true, "icmpv6 type addr-unreachable", 1, 3, "destination unreachable, address unreachable (type 1, code 3)", "the destination host cannot be reached")]
    [InlineData(false, "icmp type net-unreachable", 3, 0, "destination unreachable, network unreachable (type 3, code 0)", "no route to the destination's network from that router")]
    [InlineData(true, "icmpv6 type no-route", 1, 0, "destination unreachable, no route to destination (type 1, code 0)", "no route to the destination's network from that router")]
    public async Task ASynRejectedWithAnIcmpErrorIsThatErrorNamedWithItsSenderNotASilentDropAtTheClientOrInTheComparison(
        bool ipv6, string reject, int type, int code, string what, string meaning)
    {
        // A firewall between the pods answers the SYN with an ICMP error instead of passing it.
        await _lab.Middlebox.AddNftablesAsync($$"""
            table inet kcic {
              chain relay { type filter hook forward priority 0; tcp dport {{Port}} meta nfproto {{(ipv6 ? "ipv6" : "ipv4")}} reject with {{reject}}; }
            }
            """);
        var (client, server) = await BothEndsCapture.CaptureAsync(_lab, _files, $"tcp port {Port}", async () =>
            Assert.NotEqual(0, (await _lab.Client.CurlAsync(_http.Url("small.txt", ipv6), TimeSpan.FromSeconds(2.5))).ExitCode));

        // Ground truth: the ICMP errors are in the client's pcap (the filter alone matches none of them), nothing reached the server.
        var icmp = ipv6 ? $"icmpv6.type == {type} && icmpv6.code == {code}" : $"icmp.type == {type} && icmp.code == {code}";
        var errors = await BothEndsCapture.FramesAsync(client.Pcap, icmp);
        Assert.NotEmpty(errors);
        Assert.Equal(errors.Count, client.Manifest.PacketsAdded);
        Assert.Equal(errors.Count, client.Summary.IcmpErrors);
        Assert.Equal(WidenedFilter(client), client.Manifest.CaptureFilter);
        Assert.Equal(errors.Count, (await Tcpdump.ReadAsync(client.Pcap)).Lines.Count(l => l.Contains(ipv6 ? " ICMP6, destination unreachable" : " ICMP ", StringComparison.Ordinal)));
        Assert.Empty((await Tcpdump.ReadAsync(server.Pcap)).Lines);

        var finding = Assert.Single(client.Summary.BesideLatency());
        Assert.Equal((FindingTypes.IcmpDestinationUnreachable, FindingSeverity.Error), (finding.Type, finding.Severity));
        Assert.Equal(
            $"1 connection attempt to {ServerEndpoint(ipv6)} ({finding.Evidence.Flows[0]}) answered with ICMP {what} by {Middlebox(ipv6)}, a device on the path (not the destination {ServerAddress(ipv6)}), quoting its SYN: {meaning}{(meaning.EndsWith("reached", StringComparison.Ordinal) ? " (down, or its address unused: no ARP or neighbour answer)" : "")}. Not dropped silently: the answer came from the path.",
            finding.Message);
        var syns = await BothEndsCapture.FramesAsync(client.Pcap, "tcp.flags.syn == 1");
        Assert.Equal([syns[0], errors[0]], finding.Evidence.PacketNumbers);
        Assert.Equal(1, client.Summary.SynsAnsweredByIcmp);
        Assert.Equal(0, client.Summary.SynsUnanswered);
        Assert.DoesNotContain(client.Summary.Findings, f => f.Type == FindingTypes.SynUnanswered);

        // Both ends compared: the server never saw the SYNs, but they were rejected on the way, not dropped silently.
        Assert.Empty(EndComparison.Compare(client.Summary, server.Summary));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ATtlThatRunsOutOnTheWayIsTimeExceededFromTheRouterWhereItRanOut(bool ipv6)
    {
        // The client sends with a TTL (hop limit) of 1: the middlebox, one hop away, cannot forward it.
        var setting = ipv6 ? $"net.ipv6.conf.{_lab.Client.Interface}.hop_limit=1" : "net.ipv4.ip_default_ttl=1";
        (await _lab.Client.ExecAsync("sysctl", "-qw", setting)).EnsureSuccess();
        var (client, _) = await BothEndsCapture.CaptureAsync(_lab, _files, $"tcp port {Port}", async () =>
            Assert.NotEqual(0, (await _lab.Client.CurlAsync(_http.Url("small.txt", ipv6), TimeSpan.FromSeconds(2.5))).ExitCode));

        var errors = await BothEndsCapture.FramesAsync(client.Pcap, ipv6 ? "icmpv6.type == 3 && icmpv6.code == 0" : "icmp.type == 11 && icmp.code == 0");
        Assert.NotEmpty(errors);
        var finding = Assert.Single(client.Summary.BesideLatency());
        Assert.Equal((FindingTypes.IcmpTimeExceeded, FindingSeverity.Error), (finding.Type, finding.Severity));
        var ttl = ipv6 ? "hop limit" : "TTL";
        Assert.Contains($"answered with ICMP time exceeded, {ttl} exceeded in transit (type {(ipv6 ? 3 : 11)}, code 0) by {Middlebox(ipv6)}, a device on the path", finding.Message);
        Assert.Contains($"the packet's {ttl} ran out on the way: a routing loop, or a {ttl} set too low for the path", finding.Message);
        Assert.Contains(errors[0], finding.Evidence.PacketNumbers);
    }

    [Fact]
    public async Task AUdpPortNothingListensOnIsPortUnreachableFromTheServerItselfAtBothEnds()
    {
        var (client, server) = await BothEndsCapture.CaptureAsync(_lab, _files, "udp port 5353", async () =>
            (await _lab.Client.ExecAsync("python3", "-c", $"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'query', ('{_lab.Server.IPv4}', 5353))")).EnsureSuccess());

        foreach (var (end, by) in new[] { (client, $"by {_lab.Server.IPv4}, the destination itself"), (server, $"by this host ({_lab.Server.IPv4})") })
        {
            var errors = await BothEndsCapture.FramesAsync(end.Pcap, "icmp.type == 3 && icmp.code == 3");
            var finding = Assert.Single(end.Summary.Findings);
            Assert.Equal((FindingTypes.IcmpDestinationUnreachable, FindingSeverity.Warning), (finding.Type, finding.Severity));
            Assert.StartsWith($"{errors.Count} UDP packet to {_lab.Server.IPv4}:5353 ({_lab.Client.IPv4}:", finding.Message);
            Assert.EndsWith($"answered with ICMP destination unreachable, port unreachable (type 3, code 3) {by}: nothing listens on UDP port 5353 there.", finding.Message);
            Assert.Equal(errors, finding.Evidence.PacketNumbers);
        }
    }

    [Theory]
    [InlineData(false, "icmp.type == 3 && icmp.code == 4")]
    [InlineData(true, "icmpv6.type == 2")]
    public async Task FragmentationNeededThatReachesTheSenderIsPathMtuDiscoveryAtWorkNotABlackhole(bool ipv6, string tooBig)
    {
        // The middlebox's link toward the client carries 1280 bytes; its ICMP is not dropped this time.
        await _lab.Middlebox.SetMtuAsync(1280);
        var (client, server) = await BothEndsCapture.CaptureAsync(_lab, _files, $"tcp port {Port}", async () =>
            Assert.Equal("200", (await _lab.Client.CurlAsync(_http.Url("200k.bin", ipv6), TimeSpan.FromSeconds(10))).Stdout));

        var errors = await BothEndsCapture.FramesAsync(server.Pcap, tooBig);
        Assert.NotEmpty(errors);
        Assert.Equal(errors.Count, server.Manifest.PacketsAdded);
        var finding = Assert.Single(server.Summary.Findings, f => f.Type == FindingTypes.IcmpPacketTooBig);
        Assert.Equal(FindingSeverity.Info, finding.Severity);
        Assert.Contains($"by {(ipv6 ? _lab.MiddleboxServerIPv6 : _lab.MiddleboxServerIPv4)}, a device on the path (not the destination {_lab.Client.Address(ipv6)})", finding.Message);
        Assert.Contains("the path carries packets of at most 1280 bytes", finding.Message);
        Assert.Contains(errors[0], finding.Evidence.PacketNumbers);
        foreach (var end in (CapturedEnd[])[client, server])
        {
            Assert.DoesNotContain(end.Summary.Findings, f => f.Severity != FindingSeverity.Info && f.Type != FindingTypes.Retransmissions);
            Assert.DoesNotContain(end.Summary.Findings, f => f.Type is FindingTypes.MtuBlackhole or FindingTypes.DataStalled);
        }
    }

    [Fact]
    public async Task AnIcmpErrorTheFilterSelectsByItsLengthOnTheWireIsKeptThoughTheSnaplenCutsIt()
    {
        // Fragmentation needed quotes up to 576 bytes: ~590 on the wire, 128 captured (the default
        // snaplen). The kernel's filter reads the wire length, so `greater 500` selects them; the
        // agent's second look at what the widening let through must read it too, not the cut length.
        await _lab.Middlebox.SetMtuAsync(1280);
        var (_, server) = await BothEndsCapture.CaptureAsync(_lab, _files, "icmp and greater 500", async () =>
            Assert.Equal("200", (await _lab.Client.CurlAsync(_http.Url("200k.bin"), TimeSpan.FromSeconds(10))).Stdout));

        var tooBig = await BothEndsCapture.FramesAsync(server.Pcap, "icmp.type == 3 && icmp.code == 4 && frame.len > 500 && frame.cap_len == 128");
        Assert.NotEmpty(tooBig);
        Assert.Equal(tooBig, await BothEndsCapture.FramesAsync(server.Pcap, "frame"));
        Assert.Equal((0, 0), (server.Manifest.PacketsAdded, server.Manifest.PacketsDiscarded));
    }

    [Fact]
    public async Task IcmpErrorsAboutFlowsTheFilterDoesNotSelectAreDiscardedAndExactFilterKeepsNone()
    {
        // A UDP port unreachable, while the client captures only TCP port 8000: not about its flows.
        var pcap = _files.Pcap("exact.pcap");
        var (client, _) = await BothEndsCapture.CaptureAsync(_lab, _files, $"tcp port {Port}", async () =>
        {
            (await _lab.Client.ExecAsync("python3", "-c", $"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'query', ('{_lab.Server.IPv4}', 5353))")).EnsureSuccess();
            Assert.Equal("200", (await _lab.Client.CurlAsync(_http.Url("small.txt"))).Stdout);
        });
        Assert.Empty(await BothEndsCapture.FramesAsync(client.Pcap, "icmp"));
        Assert.Equal(0, client.Manifest.PacketsAdded);
        Assert.True(client.Manifest.PacketsDiscarded >= 1, $"{client.Manifest.PacketsDiscarded} discarded");

        // --exact-filter: the kernel runs the filter as given, as tcpdump would.
        await using var exact = AgentProcess.Start(_lab.Client, ["capture", "-i", _lab.Client.Interface, "--json", "--exact-filter", "-w", pcap, $"tcp port {Port}"]);
        await exact.WaitUntilListeningAsync();
        var exit = await exact.StopAsync();
        var manifest = CaptureManifest.FromJson(exit.Stdout);
        Assert.Null(manifest.CaptureFilter);
        Assert.Equal((0, 0), (manifest.PacketsAdded, manifest.PacketsDiscarded));
    }

    private static string WidenedFilter(CapturedEnd end) => KubeCapture.Agent.Capture.WidenedFilter.Widen(end.Manifest.Filter);
}
