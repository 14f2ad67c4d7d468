using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Bench.Operator;

/// <summary>
/// N PacketCaptures against the API emulator. The parent process runs the emulator and a test
/// kubelet that reports each capture container running at once; the operator runs alone in a
/// child process (so its peak RSS is its own). Prints: time until all are Running, reconcile
/// latency p50/p99 (measured in the operator), operator peak RSS (VmHWM).
/// usage: OperatorBench [captures=1000] [namespaces=50] [workers=4]
///        OperatorBench operator URL WORKERS   (the child)
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args is ["operator", var url, var workers])
        {
            return await RunOperatorAsync(url, int.Parse(workers, CultureInfo.InvariantCulture));
        }

        var captures = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1000;
        var namespaces = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 50;
        var workerCount = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 4;
        return await RunBenchmarkAsync(captures, namespaces, workerCount);
    }

    private static async Task<int> RunBenchmarkAsync(int captures, int namespaces, int workers)
    {
        await using var emulator = await KubernetesApiEmulator.StartAsync();
        using var kubelet = new TestKubelet(emulator, "", AgentMode.Cluster, null, Path.GetTempPath()) { SimulateRunning = true };
        for (var n = 0; n < namespaces; n++)
        {
            emulator.AddNamespace($"ns-{n}");
        }

        for (var i = 0; i < captures; i++)
        {
            emulator.AddPod($"ns-{i % namespaces}", $"pod-{i}");
        }

        var self = Environment.ProcessPath!;
        var info = new ProcessStartInfo(self) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = false };
        if (self.EndsWith("dotnet", StringComparison.Ordinal))
        {
            info.ArgumentList.Add(typeof(Program).Assembly.Location);
        }

        foreach (var a in new[] { "operator", emulator.Url, workers.ToString(CultureInfo.InvariantCulture) })
        {
            info.ArgumentList.Add(a);
        }

        using var child = Process.Start(info)!;
        if (await child.StandardOutput.ReadLineAsync() != "ready")
        {
            throw new InvalidOperationException("the operator process did not start");
        }

        using var client = emulator.CreateClient();
        var started = Stopwatch.StartNew();
        var creates = Enumerable.Range(0, captures).Select(i => client.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(new PacketCapture
        {
            Metadata = new k8s.Models.V1ObjectMeta { Name = $"capture-{i}" },
            Spec = new PacketCaptureSpec { Reason = "benchmark", Duration = "1h", Filter = "tcp port 443", Target = new CaptureTarget { PodName = $"pod-{i}" } },
        }, PacketCapture.Group, PacketCapture.Version, $"ns-{i % namespaces}", PacketCapture.Plural));
        await Task.WhenAll(creates);
        var created = started.Elapsed;

        long peakRss = 0;
        var running = 0;
        while (started.Elapsed < TimeSpan.FromMinutes(10))
        {
            peakRss = Math.Max(peakRss, PeakRss(child.Id));
            var (items, _) = emulator.Store.List(ResourceType.PacketCaptures, null, _ => true);
            running = items.Count(o => (string?)o["status"]?["phase"] == CapturePhase.Running);
            if (running == captures)
            {
                break;
            }

            await Task.Delay(100);
        }

        var allRunning = started.Elapsed;
        await Task.Delay(TimeSpan.FromSeconds(3)); // resyncs of Running captures, at steady state
        peakRss = Math.Max(peakRss, PeakRss(child.Id));
        await child.StandardInput.WriteLineAsync("report");
        var report = JsonNode.Parse((await child.StandardOutput.ReadLineAsync())!)!;
        await child.WaitForExitAsync();

        var failed = emulator.Store.List(ResourceType.PacketCaptures, null, o => (string?)o["status"]?["phase"] == CapturePhase.Failed).Items.Count;
        var result = new JsonObject
        {
            ["captures"] = captures,
            ["namespaces"] = namespaces,
            ["workers"] = workers,
            ["createdSeconds"] = Math.Round(created.TotalSeconds, 2),
            ["allRunningSeconds"] = running == captures ? Math.Round(allRunning.TotalSeconds, 2) : null,
            ["running"] = running,
            ["failed"] = failed,
            ["reconciles"] = report["count"]!.DeepClone(),
            ["reconcileP50Ms"] = report["p50"]!.DeepClone(),
            ["reconcileP99Ms"] = report["p99"]!.DeepClone(),
            ["operatorPeakRssMiB"] = Math.Round(peakRss / 1024.0, 1),
            ["machine"] = $"{Environment.ProcessorCount} cores, .NET {Environment.Version}",
        };
        Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return running == captures ? 0 : 1;
    }

    private static async Task<int> RunOperatorAsync(string url, int workers)
    {
        using var client = new k8s.Kubernetes(new KubernetesClientConfiguration { Host = url });
        var ingest = new InMemoryIngestStatus();
        var policy = new CapturePolicy { MaxConcurrentInCluster = 100_000, MaxConcurrentPerNamespace = 100_000 };
        // Against the API emulator: no admission webhook runs, so nothing is stamped.
        var options = new ReconcilerOptions { AgentImage = "kubecapture/agent:bench", IngestUrl = "http://ingest:8081", Workers = workers, RequireRequesterStamp = false, TokenDelivery = TokenDelivery.Secret };
        await using var services = OperatorServices.Build(client, ingest, ingest, ingest, policy, options, NullLoggerFactory.Instance);
        var captureOperator = services.GetRequiredService<CaptureOperator>();
        using var cts = new CancellationTokenSource();
        var run = Task.Run(() => captureOperator.RunAsync(cts.Token));
        Console.WriteLine("ready");
        await Console.In.ReadLineAsync();
        var (count, p50, p99) = captureOperator.Timings.Percentiles();
        Console.WriteLine(new JsonObject { ["count"] = count, ["p50"] = Math.Round(p50, 2), ["p99"] = Math.Round(p99, 2) }.ToJsonString());
        await cts.CancelAsync();
        try
        {
            await run;
        }
        catch (OperationCanceledException)
        {
        }

        return 0;
    }

    /// <summary>VmHWM of a process, in KiB: its peak resident set size.</summary>
    private static long PeakRss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}
