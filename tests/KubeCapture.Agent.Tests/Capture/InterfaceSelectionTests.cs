using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Capture;

/// <summary>A pod with two links: -i any sees both, a named interface only its own.</summary>
public sealed class InterfaceSelectionTests : IAsyncLifetime
{
    private const int Port = 8000;
    private NetnsLab _lab = null!;
    private HttpFileServer _http = null!;

    public async Task InitializeAsync()
    {
        _lab = await NetnsLab.CreateAsync("kcAT", clients: 2);
        _http = await _lab.Server.StartHttpServerAsync(Port, new Dictionary<string, int> { ["small.txt"] = 500 });
    }

    public async Task DisposeAsync()
    {
        await _http.DisposeAsync();
        await _lab.DisposeAsync();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AnyCapturesEveryInterfaceAndANamedOneOnlyItself(bool any)
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        var second = _lab.Clients[1];
        var iface = any ? "any" : _lab.ServerInterfaceFor(second);
        await using var agent = AgentProcess.Start(_lab.Server, ["capture", "-i", iface, "--duration", "20s", "-w", pcap, $"tcp port {Port}"]);
        await agent.WaitUntilListeningAsync();
        foreach (var client in _lab.Clients)
        {
            var url = $"http://{_lab.ServerAddressFor(client, ipv6: false)}:{Port}/small.txt";
            Assert.Equal("200", (await client.CurlAsync(url)).Stdout);
        }

        await Task.Delay(300);
        Assert.Equal(0, (await agent.StopAsync()).ExitCode);

        var sources = (await Tcpdump.ReadAsync(pcap)).Tcp.Where(l => l.Flags == "S").Select(l => l.Source).ToList();
        Assert.Equal(any ? [_lab.Clients[0].IPv4.ToString(), second.IPv4.ToString()] : [second.IPv4.ToString()], sources);
        var manifest = CaptureFiles.Manifest(pcap);
        Assert.Equal(any ? 2 : 1, manifest.Summary!.HandshakesCompleted);
        Assert.Equal(iface, manifest.Interface);
    }
}
