using KubeCapture.Testing.Netns;

namespace KubeCapture.Agent.Tests;

/// <summary>One lab (two pods on a veth pair) with an HTTP server on port 8000, shared by a test class.</summary>
public sealed class LabFixture : IAsyncLifetime
{
    public const int HttpPort = 8000;
    public const int ClosedPort = 8001;

    private NetnsLab? _lab;
    private HttpFileServer? _http;

    public NetnsLab Lab => _lab ?? throw new InvalidOperationException("not initialized");

    public HttpFileServer Http => _http ?? throw new InvalidOperationException("not initialized");

    public NetnsPod Server => Lab.Server;

    public NetnsPod Client => Lab.Client;

    public async Task InitializeAsync()
    {
        _lab = await NetnsLab.CreateAsync("kcAT");
        _http = await _lab.Server.StartHttpServerAsync(HttpPort, new Dictionary<string, int>
        {
            ["small.txt"] = 1000,
            ["30k.bin"] = 30_000,
            ["200k.bin"] = 200_000,
        });
    }

    public async Task DisposeAsync()
    {
        if (_http is not null)
        {
            await _http.DisposeAsync();
        }

        if (_lab is not null)
        {
            await _lab.DisposeAsync();
        }
    }
}
