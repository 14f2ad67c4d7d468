using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Capture;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;
using KubeCapture.Testing.Containers;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// Plays the kubelet for ephemeral containers: watches the pods (of the emulator, or of the real
/// kube-apiserver through <see cref="ApiServerPods"/>), and for each new
/// ephemeral container starts the command from its args and env inside the pod's network
/// namespace, reporting ephemeralContainerStatuses (running, terminated with the exit code and the
/// tail of stderr as message, or waiting ImagePullBackOff for images configured to fail).
///
/// In <see cref="AgentMode.Local"/> (before the real ingest is wired), the cluster-mode args are
/// rewritten into a local capture (-w FILE --json) and the outcome is reported to an
/// <see cref="InMemoryIngestStatus"/> test double; in <see cref="AgentMode.Cluster"/> the args go to
/// the agent unchanged and the real ingest reports. With <see cref="RunImages"/> each container runs
/// from its image with podman (<see cref="PodmanContainer"/>), as the kubelet's container runtime
/// runs it: an image that is not here waits in ErrImagePull, a spec it cannot honour in
/// CreateContainerConfigError.
/// </summary>
public sealed partial class TestKubelet : IDisposable
{
    private static readonly HashSet<string> IngestOnlyOptions = ["--ingest", "--capture-uid", "--capture-namespace", "--capture-name", "--pod", "--retention", "--token", "--ingest-retry"];
    private readonly IKubeletPods pods;
    private readonly ConcurrentDictionary<string, Started> started = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, PodNetwork> networks = new(StringComparer.Ordinal);
    private readonly string workDirectory;
    private readonly InMemoryIngestStatus? ingest;

    public TestKubelet(KubernetesApiEmulator emulator, string agentDll, AgentMode mode, InMemoryIngestStatus? ingest, string workDirectory)
        : this(new EmulatorPods(emulator), agentDll, mode, ingest, workDirectory)
    {
    }

    public TestKubelet(IKubeletPods pods, string agentDll, AgentMode mode, InMemoryIngestStatus? ingest, string workDirectory)
    {
        this.pods = pods;
        AgentDll = agentDll;
        Mode = mode;
        this.ingest = ingest;
        this.workDirectory = workDirectory;
        pods.PodChanged += OnChange;
        if (ingest is not null)
        {
            ingest.StopRequested += StopCapture;
        }
    }

    public string AgentDll { get; }

    /// <summary>The API side this kubelet watches and reports to.</summary>
    public IKubeletPods Pods => pods;

    public AgentMode Mode { get; }

    /// <summary>
    /// Runs each container from its image with podman in the pod's network namespace, with the
    /// container's securityContext (and the pod's) mapped, instead of the agent binary under
    /// <c>dotnet</c>. Cluster mode only. Set it before the first container appears.
    /// </summary>
    public bool RunImages { get; set; }

    /// <summary>Images whose pull fails: their containers wait in ImagePullBackOff.</summary>
    public ConcurrentDictionary<string, bool> FailingImages { get; } = new(StringComparer.Ordinal);

    /// <summary>When set, replaces the agent: the command run for a container (e.g. a crash), instead of the real agent.</summary>
    public Func<JsonObject, string[]>? CommandOverride { get; set; }

    /// <summary>
    /// For benchmarks: report each container running at once and start nothing (a thousand
    /// captures without a thousand agents).
    /// </summary>
    public bool SimulateRunning { get; set; }

    /// <summary>
    /// Holds the capture containers of a pod (<c>ns/pod</c>) in <c>ContainerCreating</c>, as a slow
    /// image pull would, until <see cref="ReleaseContainersOf"/>: the moment before the agent connects,
    /// made as long as a test needs.
    /// </summary>
    public void HoldContainersOf(string ns, string pod) => held[$"{ns}/{pod}"] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Lets the held containers of the pod start.</summary>
    public void ReleaseContainersOf(string ns, string pod)
    {
        if (held.TryRemove($"{ns}/{pod}", out var hold))
        {
            hold.TrySetResult();
        }
    }

    private readonly ConcurrentDictionary<string, TaskCompletionSource> held = new(StringComparer.Ordinal);

    /// <summary>How many times any container was started (a duplicate injection would start twice).</summary>
    public int Starts => started.Count;

    public IReadOnlyList<string> StartedContainers => [.. started.Keys];

    /// <summary>Runs the pod's containers in this network namespace.</summary>
    public void AttachNetwork(string ns, string pod, PodNetwork network) => networks[$"{ns}/{pod}"] = network;

    /// <summary>The pcap file written for a target in local mode.</summary>
    public string PcapPath(string ns, string pod, string container) => Path.Combine(workDirectory, $"{ns}-{pod}-{container}.pcap");

    public void Dispose()
    {
        pods.PodChanged -= OnChange;
        pods.Dispose();
        if (ingest is not null)
        {
            ingest.StopRequested -= StopCapture;
        }

        foreach (var s in started.Values)
        {
            try
            {
                if (s.Process is { HasExited: false } p)
                {
                    p.Kill(entireProcessTree: true);
                }
            }
            catch (InvalidOperationException)
            {
            }

            if (s.PodmanName is { } container)
            {
                ContainerImages.PodmanAsync(["rm", "--force", "--ignore", "--time", "0", container], TimeSpan.FromSeconds(60)).GetAwaiter().GetResult();
            }
        }
    }

    private void OnChange(JsonObject pod)
    {
        var ns = (string)pod["metadata"]!["namespace"]!;
        var name = (string)pod["metadata"]!["name"]!;
        var podSecurity = pod["spec"]?["securityContext"]?.ToJsonString();
        foreach (var node in pod["spec"]?["ephemeralContainers"] as JsonArray ?? [])
        {
            var container = (JsonObject)node!;
            var key = $"{ns}/{name}/{(string)container["name"]!}";
            var entry = new Started();
            if (started.TryAdd(key, entry))
            {
                _ = Task.Run(() => RunContainerAsync(ns, name, (JsonObject)container.DeepClone(), podSecurity, entry));
            }
        }
    }

    private async Task RunContainerAsync(string ns, string pod, JsonObject container, string? podSecurity, Started entry)
    {
        var name = (string)container["name"]!;
        var image = (string?)container["image"] ?? "";
        try
        {
            if (FailingImages.ContainsKey(image))
            {
                await ReportAsync(ns, pod, name, image, new JsonObject
                {
                    ["waiting"] = new JsonObject { ["reason"] = "ImagePullBackOff", ["message"] = $"Back-off pulling image \"{image}\"" },
                });
                return;
            }

            if (SimulateRunning)
            {
                await ReportAsync(ns, pod, name, image, new JsonObject { ["running"] = new JsonObject { ["startedAt"] = ObjectStore.Timestamp(DateTimeOffset.UtcNow) } });
                return;
            }

            if (held.TryGetValue($"{ns}/{pod}", out var hold))
            {
                await ReportAsync(ns, pod, name, image, new JsonObject { ["waiting"] = new JsonObject { ["reason"] = "ContainerCreating" } });
                await hold.Task;
            }

            // As a kubelet: env values from Secrets are read now and handed to the runtime as plain values.
            try
            {
                await ResolveEnvAsync(ns, container);
            }
            catch (SecretKeyMissingException e)
            {
                await ReportAsync(ns, pod, name, image, new JsonObject
                {
                    ["waiting"] = new JsonObject { ["reason"] = "CreateContainerConfigError", ["message"] = e.Message },
                });
                return;
            }

            var args = (container["args"] as JsonArray ?? []).Select(a => (string)a!).ToList();
            var identity = IdentityFrom(args);
            string? pcap = null;
            networks.TryGetValue($"{ns}/{pod}", out var network);
            ProcessStartInfo info;
            if (RunImages && CommandOverride is null)
            {
                if ((await ContainerImages.PodmanAsync(["image", "exists", image], TimeSpan.FromSeconds(30))).ExitCode != 0)
                {
                    await ReportAsync(ns, pod, name, image, new JsonObject
                    {
                        ["waiting"] = new JsonObject { ["reason"] = "ErrImagePull", ["message"] = $"Failed to pull image \"{image}\": image not known" },
                    });
                    return;
                }

                if (Mode != AgentMode.Cluster)
                {
                    throw new InvalidOperationException("the test kubelet runs images in cluster mode only");
                }

                var spec = KubernetesJson.Deserialize<V1EphemeralContainer>(container.ToJsonString());
                var podSecurityContext = podSecurity is null ? null : KubernetesJson.Deserialize<V1PodSecurityContext>(podSecurity);
                entry.PodmanName = PodmanName($"kc-{ns}-{pod}-{name}");
                try
                {
                    info = PodmanContainer.Command(spec, network?.PodNamespace, ["--name", entry.PodmanName], podSecurityContext);
                }
                catch (ContainerConfigException e)
                {
                    await ReportAsync(ns, pod, name, image, new JsonObject
                    {
                        ["waiting"] = new JsonObject { ["reason"] = "CreateContainerConfigError", ["message"] = e.Message },
                    });
                    return;
                }
            }
            else
            {
                string[] command;
                if (CommandOverride is { } replace)
                {
                    command = replace(container);
                }
                else if (Mode == AgentMode.Local)
                {
                    pcap = PcapPath(ns, pod, name);
                    command = ["dotnet", AgentDll, .. LocalArgs(args, pcap)];
                }
                else
                {
                    command = ["dotnet", AgentDll, .. args];
                }

                if (network is not null)
                {
                    command = ["ip", "netns", "exec", network.PodNamespace, .. command];
                }

                info = new ProcessStartInfo(command[0]) { RedirectStandardError = true, RedirectStandardOutput = true };
                foreach (var a in command.Skip(1))
                {
                    info.ArgumentList.Add(a);
                }

                foreach (var env in container["env"] as JsonArray ?? [])
                {
                    info.Environment[(string)env!["name"]!] = (string?)env["value"] ?? "";
                }
            }

            var process = Process.Start(info)!;
            entry.Process = process;
            entry.CaptureUid = identity?.CaptureUid;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderrLines = entry.Stderr;
            var listening = new TaskCompletionSource();
            var stderr = Task.Run(async () =>
            {
                while (await process.StandardError.ReadLineAsync() is { } line)
                {
                    lock (stderrLines)
                    {
                        stderrLines.Add(line);
                    }

                    if (line.Contains("listening on", StringComparison.Ordinal))
                    {
                        listening.TrySetResult();
                    }
                }
            });
            var startedAt = ObjectStore.Timestamp(DateTimeOffset.UtcNow);
            await ReportAsync(ns, pod, name, image, new JsonObject { ["running"] = new JsonObject { ["startedAt"] = startedAt } });
            if (identity is not null && Mode == AgentMode.Local && ingest is not null)
            {
                await Task.WhenAny(listening.Task, process.WaitForExitAsync());
                ingest.Report(new TargetUpload { Target = identity, Phase = UploadPhase.Streaming, UpdatedAt = DateTimeOffset.UtcNow });
            }

            entry.Listening = listening.Task;
            await process.WaitForExitAsync();
            await stderr;
            await stdout;
            string tail;
            lock (stderrLines)
            {
                tail = string.Join('\n', stderrLines.TakeLast(5));
            }

            if (identity is not null && pcap is not null && ingest is not null && process.ExitCode == 0 && File.Exists(pcap + ".json"))
            {
                var manifest = CaptureManifest.FromJson(await File.ReadAllTextAsync(pcap + ".json"));
                var bytes = await File.ReadAllBytesAsync(pcap);
                ingest.Report(new TargetUpload
                {
                    Target = identity,
                    Phase = UploadPhase.Finished,
                    Packets = manifest.PacketsWritten,
                    Bytes = manifest.BytesWritten,
                    DroppedByKernel = manifest.PacketsDroppedByKernel,
                    Manifest = manifest,
                    Artifact = new StoredArtifact(new Uri(pcap).AbsoluteUri, bytes.Length, Convert.ToHexStringLower(SHA256.HashData(bytes)), DateTimeOffset.UtcNow.AddHours(168)),
                    UpdatedAt = DateTimeOffset.UtcNow,
                });
            }

            await ReportAsync(ns, pod, name, image, new JsonObject
            {
                ["terminated"] = new JsonObject
                {
                    ["exitCode"] = process.ExitCode,
                    ["reason"] = process.ExitCode == 0 ? "Completed" : "Error",
                    ["message"] = process.ExitCode == 0 ? null : tail,
                    ["startedAt"] = startedAt,
                    ["finishedAt"] = ObjectStore.Timestamp(DateTimeOffset.UtcNow),
                },
            });
        }
        catch (Exception e)
        {
            await ReportAsync(ns, pod, name, image, new JsonObject
            {
                ["waiting"] = new JsonObject { ["reason"] = "RunContainerError", ["message"] = e.Message },
            });
        }
    }

    /// <summary>Replaces each env entry's <c>valueFrom.secretKeyRef</c> with the Secret's value, as the kubelet does before it asks the runtime to start the container.</summary>
    private async Task ResolveEnvAsync(string ns, JsonObject container)
    {
        foreach (var env in container["env"] as JsonArray ?? [])
        {
            if (env?["valueFrom"]?["secretKeyRef"] is JsonObject reference)
            {
                var value = await pods.ReadSecretKeyAsync(ns, (string)reference["name"]!, (string)reference["key"]!);
                var entry = (JsonObject)env;
                entry.Remove("valueFrom");
                entry["value"] = value;
            }
            else if (env?["valueFrom"] is not null)
            {
                throw new NotSupportedException($"env {(string?)env["name"]}: only valueFrom.secretKeyRef is resolved by the test kubelet");
            }
        }
    }

    /// <summary>What the container's process wrote to stderr so far (the agent's log), or "" before it started.</summary>
    public string Stderr(string ns, string pod, string container)
    {
        if (!started.TryGetValue($"{ns}/{pod}/{container}", out var s))
        {
            return "";
        }

        lock (s.Stderr)
        {
            return string.Join('\n', s.Stderr);
        }
    }

    /// <summary>Waits until the container's agent printed "listening on" (capture started).</summary>
    public async Task WaitUntilListeningAsync(string ns, string pod, string container, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            if (started.TryGetValue($"{ns}/{pod}/{container}", out var s) && s.Listening is { } listening)
            {
                await listening.WaitAsync(cts.Token);
                return;
            }

            await Task.Delay(25, cts.Token);
        }
    }

    private void StopCapture(string captureUid)
    {
        foreach (var s in started.Values.Where(s => s.CaptureUid == captureUid))
        {
            // Once, as a kubelet stops a container: a second SIGTERM that lands after the agent has
            // finished and let go of its signal handlers would end a clean exit with 143.
            if (s.Process is { HasExited: false } p && Interlocked.Exchange(ref s.Terminated, 1) == 0)
            {
                // SIGTERM: the agent finishes its pcap cleanly (Process.Kill would be SIGKILL).
                using var kill = Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                kill.WaitForExit();
            }
        }
    }

    /// <summary>Cluster-mode args without the ingest options, plus -w FILE --json: the same capture, written locally.</summary>
    public static List<string> LocalArgs(IReadOnlyList<string> args, string pcap)
    {
        var local = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] == "--")
            {
                local.AddRange(args.Skip(i)); // the filter: never an option, whatever its words
                break;
            }

            if (IngestOnlyOptions.Contains(args[i]))
            {
                i++;
                continue;
            }

            local.Add(args[i]);
            if (i == 0)
            {
                local.AddRange(["-w", pcap, "--overwrite", "--json"]);
            }
        }

        return local;
    }

    private static CaptureIdentity? IdentityFrom(IReadOnlyList<string> args)
    {
        string? Value(string option)
        {
            var i = args.ToList().IndexOf(option);
            return i >= 0 && i + 1 < args.Count ? args[i + 1] : null;
        }

        return Value("--capture-uid") is { } uid && Value("--capture-namespace") is { } ns && Value("--capture-name") is { } name && Value("--pod") is { } pod
            ? new CaptureIdentity(uid, ns, name, pod)
            : null;
    }

    /// <summary>A podman container name (<c>[a-zA-Z0-9][a-zA-Z0-9_.-]*</c>) unique to this test process.</summary>
    private static string PodmanName(string name) => $"{PodmanNameInvalid().Replace(name, "-")}-{Environment.ProcessId}";

    [GeneratedRegex("[^a-zA-Z0-9_.-]")]
    private static partial Regex PodmanNameInvalid();

    private Task ReportAsync(string ns, string pod, string container, string image, JsonObject state) =>
        pods.WriteEphemeralContainerStatusAsync(ns, pod, new JsonObject
        {
            ["name"] = container,
            ["image"] = image,
            ["imageID"] = "",
            ["ready"] = false,
            ["restartCount"] = 0,
            ["state"] = state,
        });

    private sealed class Started
    {
        /// <summary>1 once SIGTERM was sent.</summary>
        public int Terminated;

        public Process? Process { get; set; }

        public string? CaptureUid { get; set; }

        /// <summary>The container's podman name, when it runs from its image (removed on dispose).</summary>
        public string? PodmanName { get; set; }

        public Task? Listening { get; set; }

        public List<string> Stderr { get; } = [];
    }
}

public enum AgentMode
{
    /// <summary>The agent writes the pcap locally; the kubelet reports to an <see cref="InMemoryIngestStatus"/>.</summary>
    Local,

    /// <summary>The agent gets the cluster-mode args unchanged and streams to the real ingest.</summary>
    Cluster,
}
