using KubeCapture.Testing.Processes;
using KubeCapture.Testing.S3;
using Microsoft.AspNetCore.Builder;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// The operator under test, on 127.0.0.1 at free ports (health over HTTP/1.1, ingest over TLS as the
/// chart serves it, or h2c with Ingest:Tls=false): either in this process (to reach its services) or
/// as a real process started with <c>dotnet exec</c> of its built dll (to kill it, and to measure its
/// memory). Without ServingCertificate settings of the test's own, the ingest serves a certificate of
/// the operator's own issuer (ECDSA, as Managed mode issues) for its address and 127.0.0.1, mounted
/// from files, with the CA (<see cref="IngestCaPem"/>) the agents are given.
/// </summary>
public sealed class OperatorHost : IAsyncDisposable
{
    public const string TokenSecret = "kcI-test-secret";
    private readonly List<string> _args;
    private readonly Dictionary<string, string> _environment = [];
    private readonly Uri _ingestEndpoint;
    private WebApplication? _app;
    private MemoryCgroup? _cgroup;

    private OperatorHost(IReadOnlyDictionary<string, string> settings, string address = "127.0.0.1")
    {
        Address = address;
        HttpPort = S3rverFixture.FreeTcpPort();
        IngestPort = S3rverFixture.FreeTcpPort();
        Tls = !(settings.TryGetValue("Ingest:Tls", out var tls) && tls == "false");
        var all = new Dictionary<string, string>
        {
            ["Kestrel:Endpoints:Http:Url"] = $"http://127.0.0.1:{HttpPort}",
            ["Kestrel:Endpoints:Http:Protocols"] = "Http1",
            ["Kestrel:Endpoints:Ingest:Url"] = $"{(Tls ? "https" : "http")}://{address}:{IngestPort}",
            ["Kestrel:Endpoints:Ingest:Protocols"] = "Http2",
            ["Ingest:TokenSecret"] = TokenSecret,
            ["Reconciler:Enabled"] = "false", // these tests drive the ingest alone, with no Kubernetes API
            ["Ingest:BindToPodAddress"] = "false", // ... so no reconciler tells it pod addresses; the binding's tests turn it on
            ["Logging:LogLevel:Default"] = "Information",
            ["Logging:LogLevel:Microsoft"] = "Warning",
        };
        if (Tls && !settings.Keys.Any(k => k.StartsWith("ServingCertificate:", StringComparison.Ordinal)))
        {
            var files = IngestCertificateFiles.Issue(address);
            IngestCaPem = files.AuthorityPem;
            all["ServingCertificate:Mode"] = "Mounted";
            all["ServingCertificate:CertificateFile"] = files.CertificateFile;
            all["ServingCertificate:KeyFile"] = files.KeyFile;
            all["ServingCertificate:CaFile"] = files.AuthorityFile;
        }

        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        if (settings.ContainsKey("Ingest:TokenKeySecret"))
        {
            all.Remove("Ingest:TokenSecret"); // the key comes from the Secret, as in the cluster
        }

        _args = [.. all.Select(kv => $"--{kv.Key}={kv.Value}")];
        _ingestEndpoint = new Uri(all["Kestrel:Endpoints:Ingest:Url"]);
    }

    public int HttpPort { get; }

    public int IngestPort { get; }

    /// <summary>Where the ingest listens (127.0.0.1, or the host side of a pod's veth).</summary>
    public string Address { get; }

    /// <summary>Whether the ingest serves TLS (the default; Ingest:Tls=false: h2c).</summary>
    public bool Tls { get; }

    /// <summary>The CA of the ingest's certificate (PEM), when this host issued it; agents get it as --ingest-ca-pem.</summary>
    public string? IngestCaPem { get; }

    public Uri IngestUrl => new($"{(Tls ? "https" : "http")}://{Address}:{IngestPort}");

    public ChildProcess? Process { get; private set; }

    public IServiceProvider Services => _app?.Services ?? throw new InvalidOperationException("only an in-process operator exposes its services");

    /// <summary>Settings that store in the test's S3 server (s3rver or a Ceph RGW bucket).</summary>
    public static Dictionary<string, string> S3Settings(IS3TestServer s3, int partSize = 64 << 10) => new()
    {
        ["Storage:S3:Endpoint"] = s3.Endpoint,
        ["Storage:S3:Bucket"] = s3.Bucket,
        ["Storage:S3:AccessKey"] = s3.AccessKey,
        ["Storage:S3:SecretKey"] = s3.SecretKey,
        ["Storage:PartSize"] = partSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Storage:RetryBudget"] = "00:00:20",
    };

    /// <param name="waitForIngest">false: return once /healthz answers, even if the TLS ingest never gets its certificate.</param>
    public static async Task<OperatorHost> StartInProcessAsync(IReadOnlyDictionary<string, string> settings, string ingestAddress = "127.0.0.1", bool waitForIngest = true)
    {
        // The ports are found free by binding port 0 and letting go: until Kestrel binds them, another process's
        // outgoing connection may take one (seen: 'address already in use'). Then the host starts on new ports.
        for (var attempt = 1; ; attempt++)
        {
            var host = new OperatorHost(settings, ingestAddress);
            host._app = Program.Build([.. host._args]);
            try
            {
                await host._app.StartAsync();
            }
            catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException && attempt < 3)
            {
                await host._app.DisposeAsync();
                continue;
            }

            await host.WaitHealthyAsync(waitForIngest);
            return host;
        }
    }

    /// <summary>The memory cgroup the operator process runs in (a memory limit given), else null.</summary>
    public MemoryCgroup? Cgroup => _cgroup;

    public static async Task<OperatorHost> StartProcessAsync(IReadOnlyDictionary<string, string> settings, IReadOnlyDictionary<string, string>? environment = null, long? memoryLimitBytes = null)
    {
        var host = new OperatorHost(settings) { _cgroup = memoryLimitBytes is { } limit ? MemoryCgroup.Create(limit) : null };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            host._environment[name] = value;
        }

        await host.StartProcessAsync();
        return host;
    }

    /// <summary>Starts the operator process (again, after a kill) on the same ports and settings.</summary>
    public async Task StartProcessAsync()
    {
        if (Process is not null)
        {
            await Process.DisposeAsync();
        }

        var (fileName, args) = _cgroup?.Wrap("dotnet", ["exec", Builds.OperatorDll, .. _args]) ?? ("dotnet", ["exec", Builds.OperatorDll, .. _args]);
        Process = ChildProcess.Start(fileName, args, _environment);
        await WaitHealthyAsync();
    }

    /// <summary>
    /// A rollout of the chart's Deployment (strategy Recreate): the running process gets SIGTERM and
    /// its exit is waited for (within <paramref name="grace"/>, terminationGracePeriodSeconds), then the
    /// new pod's process starts on the same ports with <paramref name="settings"/> changed and
    /// <paramref name="environment"/> added (the env the upgraded Deployment gives it). Returns the old
    /// process's exit code. <paramref name="whileNoneRuns"/> runs between the two.
    /// </summary>
    public async Task<int> RollOutAsync(IReadOnlyDictionary<string, string> settings, IReadOnlyDictionary<string, string> environment, TimeSpan grace, Action? whileNoneRuns = null)
    {
        var old = Process ?? throw new InvalidOperationException("only an operator process is rolled out");
        old.Signal("TERM");
        var exit = await old.WaitForExitAsync(grace);
        whileNoneRuns?.Invoke();
        foreach (var (key, value) in settings)
        {
            _args.RemoveAll(a => a.StartsWith($"--{key}=", StringComparison.Ordinal));
            _args.Add($"--{key}={value}");
        }

        foreach (var (name, value) in environment)
        {
            _environment[name] = value;
        }

        PreviousOutput = old.Output;
        await StartProcessAsync();
        return exit;
    }

    /// <summary>What the process before the last rollout printed.</summary>
    public string PreviousOutput { get; private set; } = "";

    /// <summary>SIGKILL: no graceful shutdown, nothing flushed.</summary>
    public Task KillAsync() => Process?.KillAsync() ?? throw new InvalidOperationException("only an operator process can be killed");

    public string Output => Process?.Output ?? "";

    /// <summary>Until /healthz answers and, with TLS, the ingest completes a handshake (its certificate is loaded by a background service).</summary>
    private async Task WaitHealthyAsync(bool waitForIngest = true)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                if ((await http.GetAsync($"http://127.0.0.1:{HttpPort}/healthz")).IsSuccessStatusCode && (_ingestEndpoint.Scheme != "https" || !waitForIngest || await IngestHandshakesAsync()))
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException or System.Net.Sockets.SocketException or System.Security.Authentication.AuthenticationException)
            {
                if (DateTime.UtcNow > deadline || Process?.HasExited == true)
                {
                    throw new TimeoutException($"the operator did not become healthy: {e.Message}\n{Output}");
                }
            }

            await Task.Delay(100);
        }
    }

    private async Task<bool> IngestHandshakesAsync()
    {
        // Where the ingest really listens (a test may move it, e.g. to a node address the pods reach).
        var address = System.Net.IPAddress.Parse(_ingestEndpoint.Host.Trim('[', ']'));
        var connectTo = address.Equals(System.Net.IPAddress.Any) || address.Equals(System.Net.IPAddress.IPv6Any) ? System.Net.IPAddress.Loopback : address;
        using var tcp = new System.Net.Sockets.TcpClient(connectTo.AddressFamily);
        await tcp.ConnectAsync(connectTo, _ingestEndpoint.Port);
        await using var tls = new System.Net.Security.SslStream(tcp.GetStream(), false, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions { TargetHost = connectTo.ToString(), ApplicationProtocols = [System.Net.Security.SslApplicationProtocol.Http2] });
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        if (Process is not null)
        {
            await Process.DisposeAsync();
        }

        _cgroup?.Dispose();
    }
}
