using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Testing.Agent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// The operator against the emulator with a test kubelet: everything but a real cluster. By default
/// the ingest is the <see cref="InMemoryIngestStatus"/> test double fed by the kubelet (agent in
/// local mode); pass a real <see cref="IIngestStatus"/> and <see cref="ICaptureTokenIssuer"/> (and
/// <see cref="AgentMode.Cluster"/>) for the end-to-end run through the gRPC ingest and S3.
/// The operator can be killed and started again (a new instance, as after a crash).
/// </summary>
public sealed class OperatorHarness : IAsyncDisposable
{
    private CancellationTokenSource? running;
    private Task? operatorTask;
    private ServiceProvider? services;

    private OperatorHarness(KubernetesApiEmulator emulator, IIngestStatus ingest, ICaptureTokenIssuer tokens, IAgentAddresses addresses, TestKubelet kubelet,
        CapturePolicy policy, ReconcilerOptions options, string workDirectory)
    {
        Emulator = emulator;
        Ingest = ingest;
        Tokens = tokens;
        Addresses = addresses;
        Kubelet = kubelet;
        Policy = policy;
        Options = options;
        WorkDirectory = workDirectory;
        Client = emulator.CreateClient();
    }

    public KubernetesApiEmulator Emulator { get; }

    public IKubernetes Client { get; }

    /// <summary>The ingest the operator reports to (replaced by <see cref="UseIngest"/>, as after an operator restart).</summary>
    public IIngestStatus Ingest { get; private set; }

    public ICaptureTokenIssuer Tokens { get; private set; }

    /// <summary>Where the reconciler tells the ingest each target's pod addresses.</summary>
    public IAgentAddresses Addresses { get; private set; }

    public TestKubelet Kubelet { get; }

    public CapturePolicy Policy { get; }

    public ReconcilerOptions Options { get; }

    public string WorkDirectory { get; }

    public CaptureOperator? Operator { get; private set; }

    public ILoggerFactory Loggers { get; set; } = NullLoggerFactory.Instance;

    public static async Task<OperatorHarness> StartAsync(
        Action<CapturePolicy>? policy = null,
        Action<ReconcilerOptions>? options = null,
        IIngestStatus? ingest = null,
        ICaptureTokenIssuer? tokens = null,
        IAgentAddresses? addresses = null,
        AgentMode mode = AgentMode.Local,
        bool startOperator = true)
    {
        var emulator = await KubernetesApiEmulator.StartAsync();
        var capturePolicy = new CapturePolicy { MaxConcurrentPerNamespace = 5, MaxConcurrentInCluster = 20 };
        policy?.Invoke(capturePolicy);
        // Grace: an agent process (JIT) on a loaded 2-core machine may take seconds to start; the
        // deadline tests wait for it, the others should never meet it. No admission webhook can run in
        // front of the emulator: nothing stamps the requester.
        // Secret, as on a cluster with the fix of kubernetes/kubernetes#114984 (the emulator serves no /version for Auto).
        var reconcilerOptions = new ReconcilerOptions { AgentImage = "kubecapture/agent:test", IngestUrl = "http://127.0.0.1:1", Grace = "10s", ResyncPeriod = "1s", RequireRequesterStamp = false, TokenDelivery = TokenDelivery.Secret };
        options?.Invoke(reconcilerOptions);
        var work = Directory.CreateTempSubdirectory("kcK-").FullName;
        var double_ = ingest is null ? new InMemoryIngestStatus() : null;
        var kubelet = new TestKubelet(emulator, AgentDll(), mode, double_, work);
        var harness = new OperatorHarness(emulator, ingest ?? double_!, tokens ?? double_ ?? throw new ArgumentNullException(nameof(tokens)),
            addresses ?? double_ ?? throw new ArgumentNullException(nameof(addresses)), kubelet, capturePolicy, reconcilerOptions, work);
        if (startOperator)
        {
            harness.StartOperator();
        }

        return harness;
    }

    /// <summary>The in-memory ingest double, when the harness uses it.</summary>
    public InMemoryIngestStatus IngestDouble => Ingest as InMemoryIngestStatus ?? throw new InvalidOperationException("this harness uses a real ingest");

    /// <summary>
    /// The agent's own build output (with its own deps.json: in cluster mode it needs gRPC's
    /// dependencies, which the copy beside the tests cannot resolve).
    /// </summary>
    public static string AgentDll() => AgentBinary.Path + ".dll";

    public void StartOperator()
    {
        if (operatorTask is not null)
        {
            throw new InvalidOperationException("the operator is already running");
        }

        running = new CancellationTokenSource();
        // A new instance, as after a crash: its own caches, slots and steps.
        services = OperatorServices.Build(Client, Ingest, Tokens, Addresses, Policy, Options, Loggers);
        Operator = services.GetRequiredService<CaptureOperator>();
        var token = running.Token;
        var instance = Operator;
        operatorTask = Task.Run(() => instance.RunAsync(token), CancellationToken.None);
    }

    /// <summary>
    /// The next <see cref="StartOperator"/> uses this ingest: a restarted operator process (or a new
    /// leader) has a new ingest that remembers nothing but what storage holds.
    /// </summary>
    public void UseIngest(IIngestStatus ingest, ICaptureTokenIssuer tokens, IAgentAddresses addresses)
    {
        if (operatorTask is not null)
        {
            throw new InvalidOperationException("kill the operator before replacing its ingest");
        }

        Ingest = ingest;
        Tokens = tokens;
        Addresses = addresses;
    }

    /// <summary>Stops the operator mid-whatever (as a crash or a lost Lease would, without goodbyes).</summary>
    public async Task KillOperatorAsync()
    {
        if (running is null || operatorTask is null)
        {
            return;
        }

        await running.CancelAsync();
        try
        {
            await operatorTask;
        }
        catch (OperationCanceledException)
        {
        }

        running.Dispose();
        running = null;
        operatorTask = null;
        await services!.DisposeAsync();
        services = null;
    }

    public Task<PacketCapture> CreateCaptureAsync(string ns, string name, PacketCaptureSpec spec) => Client.CreatePacketCaptureAsync(ns, name, spec);

    public Task<PacketCapture?> GetCaptureAsync(string ns, string name) => Client.GetPacketCaptureAsync(ns, name);

    /// <summary>
    /// Creates a capture and waits until it is Running and its agent on each of <paramref name="pods"/>
    /// (by default the spec's one pod) captures (printed "listening on"): traffic sent after this is in the pcap.
    /// </summary>
    public async Task<PacketCapture> StartCaptureAsync(string ns, string name, PacketCaptureSpec spec, params string[] pods)
    {
        var timeout = TimeSpan.FromSeconds(30);
        var created = await CreateCaptureAsync(ns, name, spec);
        await WaitForPhaseAsync(ns, name, CapturePhase.Running, timeout);
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        foreach (var pod in pods.Length > 0 ? pods : [spec.Target.PodName ?? throw new ArgumentException("name the pods of a capture by selector", nameof(pods))])
        {
            await Kubelet.WaitUntilListeningAsync(ns, pod, container, timeout);
        }

        return created;
    }

    /// <summary>Polls the capture until <paramref name="until"/> holds; on timeout, fails with the last status seen.</summary>
    public Task<PacketCapture> WaitForAsync(string ns, string name, Func<PacketCapture, bool> until, TimeSpan? timeout = null) =>
        Client.WaitForPacketCaptureAsync(ns, name, until, timeout);

    public Task<PacketCapture> WaitForPhaseAsync(string ns, string name, string phase, TimeSpan? timeout = null) =>
        Client.WaitForPhaseAsync(ns, name, phase, timeout);

    public async ValueTask DisposeAsync()
    {
        await KillOperatorAsync();
        Kubelet.Dispose();
        Client.Dispose();
        await Emulator.DisposeAsync();
        try
        {
            Directory.Delete(WorkDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
