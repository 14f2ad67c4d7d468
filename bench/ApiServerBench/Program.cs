using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Bench.ApiServer;

/// <summary>
/// The operator process (its built dll, as its ServiceAccount: API Priority and Fairness applies)
/// against the real kube-apiserver with etcd: NAMESPACES x PODS Running pods (the test kubelet binds
/// them and reports each capture container running at once, no agents), then one PacketCapture per
/// pod created at once. Prints, per operator build: time until all are Running, creation-to-Running
/// p50/p99 per capture, reconcile p50/p99 (the operator logs them at shutdown), the operator's
/// requests per capture from the audit log, its reads per second over an idle window with all
/// captures Running, its RSS idle (pods cached, no capture) and at the end, and the CPU seconds of
/// kube-apiserver, etcd and the operator over the run. Each build gets a fresh server.
/// usage: ApiServerBench [namespaces=50] [pods=20] [LABEL=OPERATOR.dll[,Key=Value...] ...] (default: current=this repository's build);
/// the Key=Value pairs are operator settings for that run (e.g. <c>current16=op.dll,Reconciler:Workers=16</c>).
/// </summary>
public static partial class Program
{
    // The idle window over which reads per second are counted: 20 s, or KCB_IDLE_SECONDS (bench/smoke.sh runs it short).
    private static readonly TimeSpan IdleWindow = TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("KCB_IDLE_SECONDS"), CultureInfo.InvariantCulture, out var seconds) && seconds > 0 ? seconds : 20);

    public static async Task<int> Main(string[] args)
    {
        var namespaces = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 50;
        var podsPerNamespace = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 20;
        var builds = args.Skip(2).Select(a => a.Split('=', 2)).Select(p => ParseBuild(p[0], p[1])).ToList();
        if (builds.Count == 0)
        {
            builds.Add(("current", Path.Combine(RepositoryRoot(), "operator", "bin", "Release", "net10.0", "kubecapture-operator.dll"), []));
        }

        var results = new JsonArray();
        var ok = true;
        foreach (var (label, dll, settings) in builds)
        {
            var result = await RunAsync(label, dll, settings, namespaces, podsPerNamespace);
            ok &= (int)result["running"]! == namespaces * podsPerNamespace;
            results.Add(result);
            Console.Error.WriteLine(result.ToJsonString());
        }

        Console.WriteLine(results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return ok ? 0 : 1;
    }

    private static (string Label, string Dll, Dictionary<string, string> Settings) ParseBuild(string label, string value)
    {
        var parts = value.Split(',');
        var settings = parts.Skip(1).Select(s => s.Split('=', 2)).ToDictionary(
            kv => kv[0], kv => kv.Length == 2 ? kv[1] : throw new ArgumentException($"{label}: setting '{kv[0]}' has no '=VALUE'"), StringComparer.Ordinal);
        return (label, Path.GetFullPath(parts[0]), settings);
    }

    private static async Task<JsonObject> RunAsync(string label, string dll, Dictionary<string, string> extraSettings, int namespaces, int podsPerNamespace)
    {
        var captures = namespaces * podsPerNamespace;
        await using var server = await KubeApiServer.StartAsync();
        // The operator's own requests are measured: no webhook serving here (kube-apiserver's calls to it are not the operator's), so no stamp either.
        var install = await KubeCaptureInstall.InstallWithoutWebhooksAsync(server);
        using var admin = server.AdminClient();
        var work = Directory.CreateTempSubdirectory("kcB-").FullName;
        var pods = new ApiServerPods(server.AdminClient());
        using var kubelet = new TestKubelet(pods, "", AgentMode.Cluster, null, work) { SimulateRunning = true };
        Log($"{label}: {namespaces} namespaces x {podsPerNamespace} Running pods");
        await ParallelAsync(Enumerable.Range(0, namespaces), 8, n => admin.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = $"ns-{n}" } }));
        await ParallelAsync(Enumerable.Range(0, captures), 16, i => pods.StartPodAsync($"ns-{i % namespaces}", $"pod-{i}", $"10.{(i + 1) / 65536 % 256}.{(i + 1) / 256 % 256}.{(i + 1) % 256}"));

        var audit = new AuditLog(server.AuditLogPath);
        var (etcdPid, apiserverPid) = ServerPids(server);
        var httpPort = FreePort();
        var ingestPort = FreePort();
        using var op = StartOperator(dll, extraSettings, install.OperatorKubeconfig, httpPort, ingestPort, work);
        var output = new System.Text.StringBuilder();
        op.OutputDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        op.ErrorDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        op.BeginOutputReadLine();
        op.BeginErrorReadLine();
        await WaitReadyAsync(httpPort, op);
        await Task.Delay(TimeSpan.FromSeconds(10)); // caches filled, JIT settled: idle
        var idleRss = Rss(op.Id, "VmRSS");
        var idleMap = MemoryMap(op.Id);
        Log($"{label}: operator idle at {idleRss / 1024.0:F1} MiB ({idleMap.ToJsonString()}); creating {captures} captures");

        var cpuBefore = (Cpu(apiserverPid), Cpu(etcdPid), Cpu(op.Id));
        var mark = audit.Mark();
        var created = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        var running = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        using var watching = new CancellationTokenSource();
        var initial = await admin.CustomObjects.ListClusterCustomObjectAsync<PacketCaptureList>(PacketCapture.Group, PacketCapture.Version, PacketCapture.Plural);
        var watch = WatchRunningAsync(admin, initial.Metadata.ResourceVersion, running, watching.Token);
        var started = Stopwatch.StartNew();
        await ParallelAsync(Enumerable.Range(0, captures), 32, async i =>
        {
            await admin.CreatePacketCaptureAsync($"ns-{i % namespaces}", $"capture-{i}", new PacketCaptureSpec
            {
                Reason = "benchmark",
                Target = new CaptureTarget { PodName = $"pod-{i}" },
                Duration = "1h",
                Filter = "tcp port 443",
            });
            lock (created)
            {
                created[$"ns-{i % namespaces}/capture-{i}"] = DateTimeOffset.UtcNow;
            }
        });
        var createdIn = started.Elapsed;
        while (started.Elapsed < TimeSpan.FromMinutes(10) && Count(running) < captures && !op.HasExited)
        {
            await Task.Delay(100);
        }

        var allRunning = started.Elapsed;
        var peakRss = Rss(op.Id, "VmHWM");
        var rssAtAll = Rss(op.Id, "VmRSS");
        var mapAtAll = MemoryMap(op.Id);
        await Task.Delay(500);
        var toRunning = audit.Since(mark, KubeCaptureInstall.OperatorUser).Where(r => r.Resource != "leases" && r.Verb != "watch").ToList();
        var cpuAfter = (Cpu(apiserverPid), Cpu(etcdPid), Cpu(op.Id));
        Log($"{label}: {Count(running)} Running after {allRunning.TotalSeconds:F1} s; idle window of {IdleWindow.TotalSeconds} s");

        var idleMark = audit.Mark();
        await Task.Delay(IdleWindow);
        var idle = audit.Since(idleMark, KubeCaptureInstall.OperatorUser).Where(r => r.Resource != "leases").ToList();
        var rssEnd = Rss(op.Id, "VmRSS");
        await watching.CancelAsync();
        await watch;

        Signal(op.Id, 15);
        if (!op.WaitForExit(30_000))
        {
            op.Kill();
        }

        op.WaitForExit();
        string log;
        lock (output)
        {
            log = output.ToString();
        }

        var reconciles = ReconcileLine().Match(log);
        var latencies = created.Where(c => running.ContainsKey(c.Key)).Select(c => (running[c.Key] - c.Value).TotalMilliseconds).Order().ToList();
        try
        {
            Directory.Delete(work, recursive: true);
        }
        catch (IOException)
        {
        }

        return new JsonObject
        {
            ["build"] = label,
            ["captures"] = captures,
            ["namespaces"] = namespaces,
            ["createdSeconds"] = Math.Round(createdIn.TotalSeconds, 2),
            ["running"] = Count(running),
            ["allRunningSeconds"] = Math.Round(allRunning.TotalSeconds, 2),
            ["toRunningP50Ms"] = Percentile(latencies, 0.50),
            ["toRunningP99Ms"] = Percentile(latencies, 0.99),
            ["reconciles"] = reconciles.Success ? reconciles.Groups[1].Value : "not logged",
            ["reconcileP50Ms"] = reconciles.Success ? reconciles.Groups[2].Value : null,
            ["reconcileP99Ms"] = reconciles.Success ? reconciles.Groups[3].Value : null,
            ["requestsPerCapture"] = Math.Round(toRunning.Count / (double)captures, 2),
            ["requestsToRunning"] = new JsonObject(toRunning.GroupBy(r => r.What).OrderByDescending(g => g.Count())
                .Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count()))),
            ["throttled429"] = toRunning.Count(r => r.Code == (int)HttpStatusCode.TooManyRequests),
            ["idleReadsPerSecond"] = Math.Round(idle.Count(r => r.IsRead) / IdleWindow.TotalSeconds, 2),
            ["idleRequests"] = new JsonObject(idle.GroupBy(r => r.What).Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count()))),
            ["operatorRssIdleMiB"] = Math.Round(idleRss / 1024.0, 1),
            ["operatorRssIdleByKindMiB"] = idleMap,
            ["operatorRssAtAllRunningByKindMiB"] = mapAtAll,
            ["operatorRssAllRunningMiB"] = Math.Round(rssAtAll / 1024.0, 1),
            ["operatorRssAfterIdleMiB"] = Math.Round(rssEnd / 1024.0, 1),
            ["operatorPeakRssMiB"] = Math.Round(peakRss / 1024.0, 1),
            ["cpuSecondsToAllRunning"] = new JsonObject
            {
                ["kubeApiserver"] = Math.Round(cpuAfter.Item1 - cpuBefore.Item1, 1),
                ["etcd"] = Math.Round(cpuAfter.Item2 - cpuBefore.Item2, 1),
                ["operator"] = Math.Round(cpuAfter.Item3 - cpuBefore.Item3, 1),
            },
            ["machine"] = $"{Environment.ProcessorCount} cores, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}, .NET {Environment.Version}",
        };
    }

    /// <summary>Records when each capture is first seen Running (an admin watch: the bench's own reads are not the operator's).</summary>
    private static async Task WatchRunningAsync(IKubernetes admin, string resourceVersion, Dictionary<string, DateTimeOffset> running, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var events = admin.CustomObjects.WatchListClusterCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, PacketCapture.Plural,
                    resourceVersion: resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 600, cancellationToken: cancellationToken);
                await foreach (var (_, raw) in events.WithCancellation(cancellationToken))
                {
                    var capture = KubernetesJson.Deserialize<PacketCapture>(raw is JsonElement element ? element.GetRawText() : KubernetesJson.Serialize(raw));
                    resourceVersion = capture.Metadata.ResourceVersion ?? resourceVersion;
                    if (capture.Status?.Phase == CapturePhase.Running)
                    {
                        lock (running)
                        {
                            running.TryAdd(capture.Key, DateTimeOffset.UtcNow);
                        }
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is HttpRequestException or IOException or KubernetesException or k8s.Autorest.HttpOperationException)
            {
                await Task.Delay(200, CancellationToken.None);
            }
        }
    }

    private static Process StartOperator(string dll, Dictionary<string, string> extraSettings, string kubeconfig, int httpPort, int ingestPort, string work)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("exec");
        info.ArgumentList.Add(dll);
        var settings = new Dictionary<string, string>
        {
            ["Kestrel:Endpoints:Http:Url"] = $"http://127.0.0.1:{httpPort}",
            ["Kestrel:Endpoints:Ingest:Url"] = $"http://127.0.0.1:{ingestPort}",
            ["Reconciler:IngestUrl"] = $"http://127.0.0.1:{ingestPort}",
            ["Ingest:Tls"] = "false", // no agents run: the API requests are measured, not the ingest
            ["Reconciler:AgentImage"] = "kubecapture/agent:bench",
            ["Reconciler:RequireRequesterStamp"] = "false",
            ["Ingest:TokenSecret"] = "bench-secret",
            ["Storage:LocalPath"] = Path.Combine(work, "store"),
            ["Policy:MaxConcurrentPerNamespace"] = "100000",
            ["Policy:MaxConcurrentInCluster"] = "100000",
            ["LeaderElection:Namespace"] = KubeCaptureInstall.Namespace,
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:KubeCapture.Operator.Reconciliation.CaptureOperator"] = "Information",
        };
        foreach (var (key, value) in extraSettings)
        {
            settings[key] = value;
        }

        foreach (var (key, value) in settings)
        {
            info.ArgumentList.Add($"--{key}={value}");
        }

        info.Environment["KUBECONFIG"] = kubeconfig;
        return Process.Start(info) ?? throw new InvalidOperationException("could not start the operator");
    }

    private static async Task WaitReadyAsync(int httpPort, Process op)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var deadline = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < deadline && !op.HasExited; await Task.Delay(200))
        {
            try
            {
                if ((await http.GetAsync($"http://127.0.0.1:{httpPort}/readyz")).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
            }
        }

        throw new InvalidOperationException("the operator did not become ready within 60 s");
    }

    private static async Task ParallelAsync(IEnumerable<int> items, int parallel, Func<int, Task> body) =>
        await Parallel.ForEachAsync(items, new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (i, _) => await body(i));

    private static int Count(Dictionary<string, DateTimeOffset> running)
    {
        lock (running)
        {
            return running.Count;
        }
    }

    private static double? Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? null : Math.Round(sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * p))], 1);

    /// <summary>etcd and kube-apiserver, in the order the fixture started them.</summary>
    private static (int Etcd, int ApiServer) ServerPids(KubeApiServer server)
    {
        var pids = File.ReadAllLines(Path.Combine(server.Directory, "pids")).Select(l => int.Parse(l, CultureInfo.InvariantCulture)).ToList();
        return (pids[0], pids[1]);
    }

    /// <summary>User + system CPU seconds of a process so far.</summary>
    private static double Cpu(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    /// <summary>A line of /proc/PID/status in KiB (VmRSS now, VmHWM peak).</summary>
    private static long Rss(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    /// <summary>
    /// Resident MiB by kind of mapping (/proc/PID/smaps): the GC heap and other anonymous memory, the
    /// JIT's code (memfd:doublemapper), managed assemblies (.dll, ReadyToRun code included), native libraries (.so).
    /// </summary>
    private static JsonObject MemoryMap(int pid)
    {
        var kinds = new Dictionary<string, long>(StringComparer.Ordinal) { ["anonymous"] = 0, ["jitCode"] = 0, ["assemblies"] = 0, ["nativeLibraries"] = 0, ["other"] = 0 };
        var kind = "other";
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 5 && fields[0].Contains('-', StringComparison.Ordinal) && !fields[0].EndsWith(':'))
            {
                var name = fields.Length >= 6 ? fields[5] : "";
                kind = name.Length == 0 || name.StartsWith("[heap", StringComparison.Ordinal) || name.StartsWith("[anon", StringComparison.Ordinal) ? "anonymous"
                    : name.Contains("doublemapper", StringComparison.Ordinal) ? "jitCode"
                    : name.EndsWith(".dll", StringComparison.Ordinal) ? "assemblies"
                    : name.Contains(".so", StringComparison.Ordinal) ? "nativeLibraries"
                    : "other";
            }
            else if (fields.Length >= 2 && fields[0] == "Rss:")
            {
                kinds[kind] += long.Parse(fields[1], CultureInfo.InvariantCulture);
            }
        }

        return new JsonObject(kinds.Select(k => KeyValuePair.Create(k.Key, (JsonNode?)Math.Round(k.Value / 1024.0, 1))));
    }

    private static void Signal(int pid, int signal)
    {
        using var kill = Process.Start("kill", [$"-{signal}", pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "KubeCapture.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("run from inside the repository");
    }

    private static void Log(string line) => Console.Error.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {line}");

    [GeneratedRegex(@"reconciles: (\d+), p50 ([\d.]+) ms, p99 ([\d.]+) ms")]
    private static partial Regex ReconcileLine();
}
