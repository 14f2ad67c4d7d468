using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using k8s;
using k8s.Models;
using KubeCapture.Testing.Pki;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// The real kube-apiserver (v1.28.7, <c>../shared/envtest/kube-apiserver</c>, or
/// <c>KUBECAPTURE_KUBE_APISERVER</c>) with etcd (Debian's <c>etcd-server</c>), started once per test
/// run on 127.0.0.1 at free ports, with RBAC, Pod Security admission, admission webhooks, API
/// aggregation (front proxy) and an audit log. Tests isolate themselves by namespace
/// (<see cref="CreateNamespaceAsync"/>). No kubelet, scheduler or controller-manager runs: a test
/// plays the kubelet (<see cref="TestKubelet"/>).
///
/// Users: <see cref="AdminToken"/> (system:masters) and the static users of <see cref="UserToken"/>
/// (no rights until a test binds some); service accounts get tokens from the TokenRequest API
/// (<see cref="CreateServiceAccountTokenAsync"/>).
/// </summary>
public sealed class KubeApiServer : IAsyncDisposable
{
    /// <summary>Static users with no rights of their own (token = "NAME-token").</summary>
    public static readonly IReadOnlyList<string> StaticUsers = ["alice", "bob", "mallory"];

    private const string DirectoryPrefix = "kcapi-";
    private static readonly SemaphoreSlim SharedLock = new(1, 1);
    private static KubeApiServer? shared;
    private static int namespaceCounter;
    private readonly List<Process> processes = [];

    private KubeApiServer(string directory, int port, int etcdPort)
    {
        Directory = directory;
        Port = port;
        EtcdPort = etcdPort;
    }

    public string Directory { get; }

    public int Port { get; }

    public int EtcdPort { get; }

    public string Url => $"https://127.0.0.1:{Port}";

    public string AdminToken { get; } = "admin-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    /// <summary>The audit log (JSON lines, level Metadata; SubjectAccessReviews with their request body): who asked what, for request counting.</summary>
    public string AuditLogPath => Path.Combine(Directory, "audit.log");

    /// <summary>The front-proxy CA (PEM) that signs the client certificate kube-apiserver presents to extension API servers.</summary>
    public string FrontProxyCaPem { get; private set; } = "";

    /// <summary>The CA whose certificates the server accepts as x509 client users (CN = user, O = groups).</summary>
    public CertificateAuthority? ClientCa { get; private set; }

    public string ServingCaPem { get; private set; } = "";

    public static string UserToken(string user) => user + "-token";

    /// <summary>Where the kube-apiserver binary is expected: KUBECAPTURE_KUBE_APISERVER, else ../shared/envtest/kube-apiserver beside the repository.</summary>
    public static string BinaryPath
    {
        get
        {
            if (Environment.GetEnvironmentVariable("KUBECAPTURE_KUBE_APISERVER") is { Length: > 0 } configured)
            {
                return configured;
            }

            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "KubeCapture.sln")))
                {
                    return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "envtest", "kube-apiserver"));
                }
            }

            return Path.GetFullPath(Path.Combine("..", "shared", "envtest", "kube-apiserver"));
        }
    }

    public const string EtcdPath = "/usr/bin/etcd";

    /// <summary>
    /// Why the real server cannot run here, or null when it can. Tests call <see cref="Require"/>:
    /// they are skipped with this line, except under CI=true, where a missing binary fails the run.
    /// </summary>
    public static string? Missing =>
        !File.Exists(BinaryPath)
            ? $"the real kube-apiserver is not at {BinaryPath}: it ships in ../shared/envtest/ beside the repository (or set KUBECAPTURE_KUBE_APISERVER)"
            : !File.Exists(EtcdPath)
                ? $"etcd is not installed at {EtcdPath}: scripts/setup.sh installs it (apt-get install etcd-server)"
                : null;

    /// <summary>Skips the calling test when the server cannot run here; under CI=true fails it instead.</summary>
    public static void Require()
    {
        if (Missing is { } why)
        {
            if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException("CI=true and " + why);
            }

            throw new Xunit.SkipException(why);
        }
    }

    /// <summary>The one server of this test run, started on first use and stopped when the process exits.</summary>
    public static async Task<KubeApiServer> SharedAsync()
    {
        Require();
        await SharedLock.WaitAsync();
        try
        {
            if (shared is null)
            {
                var server = await StartAsync();
                AppDomain.CurrentDomain.ProcessExit += (_, _) => server.Stop();
                shared = server;
            }

            return shared;
        }
        finally
        {
            SharedLock.Release();
        }
    }

    /// <summary>A server of its own (for tests that stop it); dispose it.</summary>
    public static async Task<KubeApiServer> StartAsync()
    {
        Require();
        RemoveLeftovers();
        var directory = System.IO.Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"{DirectoryPrefix}{Environment.ProcessId}-{Interlocked.Increment(ref namespaceCounter)}")).FullName;
        var server = new KubeApiServer(directory, FreePort(), FreePort());
        try
        {
            server.WriteConfiguration();
            await server.StartProcessesAsync();
            return server;
        }
        catch
        {
            server.Stop();
            throw;
        }
    }

    public KubernetesClientConfiguration ClientConfiguration(string token) => new()
    {
        Host = Url,
        AccessToken = token,
        SkipTlsVerify = true,
    };

    public IKubernetes AdminClient() => new k8s.Kubernetes(ClientConfiguration(AdminToken));

    public IKubernetes Client(string token) => new k8s.Kubernetes(ClientConfiguration(token));

    /// <summary>A kubeconfig file for <paramref name="token"/> (for kubectl and for an operator process).</summary>
    public string WriteKubeconfig(string token, string name) =>
        KubeconfigFile.Write(Path.Combine(Directory, $"{name}.kubeconfig"), Url, name, token, caPem: null);

    /// <summary>A new namespace of its own for a test: PREFIX-N, with the given labels (e.g. Pod Security).</summary>
    public async Task<string> CreateNamespaceAsync(string prefix, IDictionary<string, string>? labels = null)
    {
        var name = $"{prefix}-{Environment.ProcessId % 10000}-{Interlocked.Increment(ref namespaceCounter)}";
        using var client = AdminClient();
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = name, Labels = labels } });
        return name;
    }

    /// <summary>A token of <paramref name="serviceAccount"/> from the TokenRequest API, as <c>kubectl create token</c> gets one.</summary>
    public async Task<string> CreateServiceAccountTokenAsync(string ns, string serviceAccount, TimeSpan? lifetime = null)
    {
        using var client = AdminClient();
        var request = new Authenticationv1TokenRequest
        {
            Spec = new V1TokenRequestSpec { ExpirationSeconds = (long)(lifetime ?? TimeSpan.FromHours(2)).TotalSeconds, Audiences = ["https://kubernetes.default.svc"] },
        };
        var response = await client.CoreV1.CreateNamespacedServiceAccountTokenAsync(request, serviceAccount, ns);
        return response.Status.Token;
    }

    /// <summary>Runs kubectl (from .tools/bin, installed by scripts/setup.sh) as <paramref name="token"/>'s user against this server.</summary>
    public Task<CommandResult> KubectlAsync(string token, IEnumerable<string> arguments, string? stdin = null) =>
        HostCommand.RunAsync(Tools.Kubectl, ["--kubeconfig", WriteKubeconfig(token, "kubectl-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)))[..8]), .. arguments], TimeSpan.FromSeconds(60), stdin);

    /// <summary>kubectl apply -f - of <paramref name="yaml"/> as admin; throws with kubectl's message on failure.</summary>
    public async Task ApplyAsync(string yaml) =>
        (await KubectlAsync(AdminToken, ["apply", "--server-side", "--force-conflicts", "-f", "-"], yaml)).EnsureSuccess();

    /// <summary>Stops etcd and kube-apiserver (SIGKILL) and keeps the data directory, so <see cref="RestartAsync"/> can bring them back.</summary>
    public async Task StopProcessesAsync()
    {
        foreach (var p in processes)
        {
            try
            {
                p.Kill();
                await p.WaitForExitAsync();
            }
            catch (InvalidOperationException)
            {
            }

            p.Dispose();
        }

        processes.Clear();
    }

    /// <summary>Starts etcd and kube-apiserver again on the same ports and data (after <see cref="StopProcessesAsync"/>).</summary>
    public Task RestartAsync() => StartProcessesAsync();

    public async ValueTask DisposeAsync()
    {
        await StopProcessesAsync();
        Stop();
    }

    private void Stop()
    {
        foreach (var p in processes)
        {
            try
            {
                p.Kill();
                p.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }
        }

        processes.Clear();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void WriteConfiguration()
    {
        var pki = System.IO.Directory.CreateDirectory(Path.Combine(Directory, "pki")).FullName;
        var serving = CertificateAuthority.Create("kcapi-serving-ca");
        ServingCaPem = serving.CertificatePem;
        serving.Issue("kube-apiserver", serverAuth: true, ipAddresses: [IPAddress.Loopback], dnsNames: ["localhost", "kubernetes.default.svc"])
            .Write(Path.Combine(pki, "serving.crt"), Path.Combine(pki, "serving.key"));
        ClientCa = CertificateAuthority.Create("kcapi-client-ca");
        File.WriteAllText(Path.Combine(pki, "client-ca.crt"), ClientCa.CertificatePem);
        var frontProxy = CertificateAuthority.Create("kcapi-front-proxy-ca");
        FrontProxyCaPem = frontProxy.CertificatePem;
        File.WriteAllText(Path.Combine(pki, "front-proxy-ca.crt"), frontProxy.CertificatePem);
        frontProxy.Issue("front-proxy-client", clientAuth: true).Write(Path.Combine(pki, "front-proxy-client.crt"), Path.Combine(pki, "front-proxy-client.key"));
        using (var sa = RSA.Create(2048))
        {
            File.WriteAllText(Path.Combine(pki, "sa.key"), sa.ExportRSAPrivateKeyPem());
            File.WriteAllText(Path.Combine(pki, "sa.pub"), sa.ExportSubjectPublicKeyInfoPem());
        }

        var tokens = new StringBuilder();
        tokens.Append(CultureInfo.InvariantCulture, $"{AdminToken},admin,admin-uid,\"system:masters\"\n");
        foreach (var user in StaticUsers)
        {
            tokens.Append(CultureInfo.InvariantCulture, $"{UserToken(user)},{user},{user}-uid,\"kcapi-users\"\n");
        }

        File.WriteAllText(Path.Combine(pki, "tokens.csv"), tokens.ToString());
        File.WriteAllText(Path.Combine(Directory, "audit-policy.yaml"), """
            apiVersion: audit.k8s.io/v1
            kind: Policy
            omitStages: [RequestReceived]
            rules:
            - level: Request
              resources: [{group: authorization.k8s.io, resources: [subjectaccessreviews]}]
            - level: Metadata
            """);
    }

    private async Task StartProcessesAsync()
    {
        var pki = Path.Combine(Directory, "pki");
        var etcdData = Path.Combine(Directory, "etcd");
        var peer = FreePort();
        processes.Add(Launch(EtcdPath, "etcd",
            "--name", "t", "--data-dir", etcdData,
            "--listen-client-urls", $"http://127.0.0.1:{EtcdPort}", "--advertise-client-urls", $"http://127.0.0.1:{EtcdPort}",
            "--listen-peer-urls", $"http://127.0.0.1:{peer}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{peer}",
            "--initial-cluster", $"t=http://127.0.0.1:{peer}", "--unsafe-no-fsync", "--log-level", "warn"));
        await WaitUntilAsync($"http://127.0.0.1:{EtcdPort}/health", null, "etcd", TimeSpan.FromSeconds(30));
        processes.Add(Launch(BinaryPath, "kube-apiserver",
            $"--etcd-servers=http://127.0.0.1:{EtcdPort}", $"--secure-port={Port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            $"--cert-dir={pki}", $"--tls-cert-file={pki}/serving.crt", $"--tls-private-key-file={pki}/serving.key",
            $"--client-ca-file={pki}/client-ca.crt", $"--token-auth-file={pki}/tokens.csv",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc", $"--service-account-key-file={pki}/sa.pub", $"--service-account-signing-key-file={pki}/sa.key",
            "--service-cluster-ip-range=10.96.0.0/16", "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount", "--allow-privileged=true",
            $"--audit-log-path={AuditLogPath}", $"--audit-policy-file={Directory}/audit-policy.yaml",
            $"--requestheader-client-ca-file={pki}/front-proxy-ca.crt", "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group", "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            $"--proxy-client-cert-file={pki}/front-proxy-client.crt", $"--proxy-client-key-file={pki}/front-proxy-client.key",
            "--enable-aggregator-routing=true", "--v=0"));
        await WaitUntilAsync($"{Url}/readyz", AdminToken, "kube-apiserver", TimeSpan.FromSeconds(60));
    }

    private Process Launch(string file, string name, params string[] arguments)
    {
        var process = LoggedProcess.Start(file, arguments, Path.Combine(Directory, name + ".log"));
        File.AppendAllText(Path.Combine(Directory, "pids"), process.Id.ToString(CultureInfo.InvariantCulture) + "\n");
        return process;
    }

    private async Task WaitUntilAsync(string url, string? token, string what, TimeSpan timeout)
    {
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(3) };
        var deadline = DateTime.UtcNow + timeout;
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            if (processes.FirstOrDefault(p => p.HasExited) is { } dead)
            {
                throw new InvalidOperationException($"{what} exited with {dead.ExitCode} while starting: {Tail(what)}");
            }

            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                if (token is not null)
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                }

                using var response = await http.SendAsync(request);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }

                last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                last = e.Message;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"{what} was not ready at {url} within {timeout}: {last}\n{Tail(what)}");
    }

    /// <summary>The last lines a component logged.</summary>
    public string Tail(string component, int lines = 30)
    {
        var path = Path.Combine(Directory, component + ".log");
        return File.Exists(path) ? string.Join('\n', File.ReadLines(path).TakeLast(lines)) : "";
    }

    /// <summary>Kills the servers of test processes that died without cleaning up, and deletes their directories.</summary>
    private static void RemoveLeftovers()
    {
        foreach (var dir in new DirectoryInfo(Path.GetTempPath()).EnumerateDirectories(DirectoryPrefix + "*"))
        {
            var owner = dir.Name[DirectoryPrefix.Length..].Split('-')[0];
            if (!int.TryParse(owner, CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId || File.Exists($"/proc/{pid}/status"))
            {
                continue;
            }

            var pids = Path.Combine(dir.FullName, "pids");
            if (File.Exists(pids))
            {
                foreach (var line in File.ReadAllLines(pids))
                {
                    if (int.TryParse(line, CultureInfo.InvariantCulture, out var child))
                    {
                        try
                        {
                            using var p = Process.GetProcessById(child);
                            p.Kill();
                        }
                        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
                        {
                        }
                    }
                }
            }

            try
            {
                dir.Delete(recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
