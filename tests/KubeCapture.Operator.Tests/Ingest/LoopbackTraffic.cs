using System.Net;
using System.Net.Sockets;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// Real TCP traffic on lo for the agent to capture: a listener on 127.0.0.1 at a free port that
/// swallows what it receives, and a client that connects and sends.
/// </summary>
public sealed class LoopbackTraffic : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Task _accepting;
    private readonly CancellationTokenSource _stop = new();

    public LoopbackTraffic()
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    _ = Task.Run(async () =>
                    {
                        using (client)
                        {
                            var buffer = new byte[1 << 16];
                            var stream = client.GetStream();
                            try
                            {
                                while (await stream.ReadAsync(buffer, _stop.Token) > 0)
                                {
                                }
                            }
                            catch (Exception e) when (e is IOException or OperationCanceledException)
                            {
                            }
                        }
                    });
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        });
    }

    public int Port { get; }

    /// <summary>The BPF filter that selects exactly this traffic.</summary>
    public string Filter => $"tcp port {Port}";

    /// <summary>Opens one connection and sends <paramref name="bytes"/> in writes of <paramref name="writeSize"/>, pausing between them.</summary>
    public async Task SendAsync(long bytes, int writeSize = 16 << 10, TimeSpan? pause = null, CancellationToken cancellationToken = default)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, Port, cancellationToken);
        var stream = client.GetStream();
        var block = new byte[writeSize];
        Random.Shared.NextBytes(block);
        for (long sent = 0; sent < bytes && !cancellationToken.IsCancellationRequested; sent += writeSize)
        {
            await stream.WriteAsync(block.AsMemory(0, (int)Math.Min(writeSize, bytes - sent)), cancellationToken);
            if (pause is { } p)
            {
                await Task.Delay(p, cancellationToken);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
