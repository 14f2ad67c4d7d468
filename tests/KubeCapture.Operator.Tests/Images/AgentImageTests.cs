using k8s.Models;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;
using KubeCapture.Testing.Containers;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Operator.Tests.Images;

/// <summary>
/// The agent image (bash scripts/images.sh) run as a kubelet runs the ephemeral container the
/// operator asks for: the exact container of <see cref="EphemeralContainerSpec.Build"/>, in a pod's
/// network namespace, with its securityContext mapped by <see cref="PodmanContainer"/>. Local mode
/// (the args rewritten as the test kubelet does) with a test-only writable mount for the pcap.
/// </summary>
public sealed class AgentImageTests : IAsyncLifetime
{
    private const int HttpPort = 8000;
    private const string ContainerUid = "1654"; // the images' non-root user "app"
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly string _captures = Directory.CreateTempSubdirectory("kcIM-captures-").FullName;
    private readonly string _name = $"kcim-agent-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40];
    private NetnsLab? _lab;
    private HttpFileServer? _http;

    private NetnsLab Lab => _lab ?? throw new InvalidOperationException("not initialized");

    public async Task InitializeAsync()
    {
        if (ContainerImages.SkipReason is not null)
        {
            return;
        }

        ContainerImages.Require();
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("containers run on Linux");
        }

        // The container's user writes the pcap: the mount is writable by every user, as an emptyDir is.
        File.SetUnixFileMode(_captures, (UnixFileMode)0x1FF);
        _lab = await NetnsLab.CreateAsync("kcIM");
        _http = await _lab.Server.StartHttpServerAsync(HttpPort, new Dictionary<string, int> { ["small.txt"] = 1000 });
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

        Directory.Delete(_captures, recursive: true);
    }

    [ImagesFact]
    public async Task The_operators_capture_container_captures_a_TCP_handshake_in_the_pods_network_namespace()
    {
        var container = LocalMode(Build(addNetRaw: true), "handshake.pcap");
        Assert.Equal(["NET_RAW"], container.SecurityContext.Capabilities.Add);
        Assert.Equal(["ALL"], container.SecurityContext.Capabilities.Drop);

        var pcap = await CaptureOneRequestAsync(container);

        var dump = await Tcpdump.ReadAsync(pcap);
        var client = Lab.Client.IPv4.ToString();
        var server = Lab.Server.IPv4.ToString();
        Assert.Contains(dump.Tcp, l => l.Flags == "S" && l.Source == client && l.Destination == server && l.DestinationPort == HttpPort);
        Assert.Contains(dump.Tcp, l => l.Flags == "S." && l.Source == server && l.SourcePort == HttpPort && l.Destination == client);
        Assert.Contains(dump.Tcp, l => l.Flags == "." && l.Source == client && l.DestinationPort == HttpPort);
        Assert.Contains(dump.Tcp, l => l.Flags == "P." && l.Source == client && l.DestinationPort == HttpPort);
        Assert.Equal("LINUX_SLL", dump.LinkType);
    }

    [ImagesFact]
    public async Task Without_NET_RAW_the_agent_exits_2_with_the_privilege_message()
    {
        var container = LocalMode(Build(addNetRaw: true), "refused.pcap");
        container.SecurityContext.Capabilities = new V1Capabilities { Drop = ["ALL"] };

        var exit = await ContainerProcess.RunAsync(PodmanContainer.Command(container, Lab.Server.Name, Mounts()), Patience, _name);

        Assert.True(exit.ExitCode == 2, $"exit {exit.ExitCode}: {exit.Stderr}");
        Assert.Contains("kubecapture-agent: cannot capture on 'any': capture needs root or CAP_NET_RAW", exit.Stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_captures));
    }

    [ImagesFact]
    public async Task A_non_root_container_gets_no_ambient_or_inheritable_capabilities_as_under_a_kubelet()
    {
        // The operator's container as a non-root user, running cat instead of the agent: a program
        // without file capabilities. Under containerd it holds no capability at all after exec.
        var container = NonRoot(Build(addNetRaw: true));
        container.Command = ["cat", "/proc/self/status"];
        container.Args = null;

        var kubelet = Capabilities(await ContainerProcess.RunAsync(PodmanContainer.Command(container, Lab.Server.Name), Patience, _name));

        const ulong netRaw = 1UL << 13;
        Assert.Equal(netRaw, kubelet["CapBnd"]);
        Assert.Equal(0UL, kubelet["CapAmb"]);
        Assert.Equal(0UL, kubelet["CapInh"]);
        Assert.Equal(0UL, kubelet["CapPrm"]);
        Assert.Equal(0UL, kubelet["CapEff"]);

        // Plain podman (runc without the wrapper) differs: the added capability is ambient, so any
        // program would capture. This is why PodmanContainer runs the kubelet runtime.
        var plain = PodmanContainer.Command(container, Lab.Server.Name);
        var runtime = plain.ArgumentList.IndexOf("--runtime");
        plain.ArgumentList[runtime + 1] = "runc";
        var podman = Capabilities(await ContainerProcess.RunAsync(plain, Patience, _name));
        Assert.Equal(netRaw, podman["CapAmb"]);
        Assert.Equal(netRaw, podman["CapEff"]);
    }

    [ImagesFact]
    public async Task A_non_root_user_captures_through_the_images_own_file_capability()
    {
        // No ambient capabilities (previous test): the agent holds NET_RAW after exec only because
        // /app/kubecapture-agent carries cap_net_raw+p in the image
        // (and the agent makes it effective).
        var container = LocalMode(NonRoot(Build(addNetRaw: true)), "non-root.pcap");

        var pcap = await CaptureOneRequestAsync(container);

        Assert.Equal(ContainerUid, await OwnerAsync(pcap)); // written by the container's non-root user
        var dump = await Tcpdump.ReadAsync(pcap);
        Assert.Contains(dump.Tcp, l => l.Flags == "S" && l.DestinationPort == HttpPort);
        Assert.Contains(dump.Tcp, l => l.Flags == "S." && l.SourcePort == HttpPort);
    }

    [ImagesFact]
    public async Task Without_its_file_capability_the_same_agent_binary_cannot_capture_as_a_non_root_user()
    {
        // The control for the test above: a copy of /app/kubecapture-agent (a copy has no file
        // capability), same container otherwise (root filesystem writable for the copy).
        var container = NonRoot(Build(addNetRaw: true));
        container.SecurityContext.ReadOnlyRootFilesystem = false;
        container.Command = ["bash", "-c", "cp /app/kubecapture-agent /tmp/agent && exec /tmp/agent \"$@\"", "agent"];
        container.Args = ["capture", "-i", "any", "--duration", "5s", "-w", "/tmp/copy.pcap"];

        var exit = await ContainerProcess.RunAsync(PodmanContainer.Command(container, Lab.Server.Name), Patience, _name);

        Assert.True(exit.ExitCode == 2, $"exit {exit.ExitCode}: {exit.Stderr}");
        Assert.Contains("capture needs root or CAP_NET_RAW", exit.Stderr, StringComparison.Ordinal);
    }

    [ImagesFact]
    public async Task A_non_root_user_without_NET_RAW_gets_the_privilege_message_too()
    {
        // With cap_net_raw+ep the kernel would refuse to exec the agent at all ("operation not
        // permitted"); +p lets it start and say what is missing.
        var container = LocalMode(NonRoot(Build(addNetRaw: true)), "none.pcap");
        container.SecurityContext.Capabilities = new V1Capabilities { Drop = ["ALL"] };

        var exit = await ContainerProcess.RunAsync(PodmanContainer.Command(container, Lab.Server.Name, Mounts()), Patience, _name);

        Assert.True(exit.ExitCode == 2, $"exit {exit.ExitCode}: {exit.Stderr}");
        Assert.Contains("capture needs root or CAP_NET_RAW", exit.Stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_captures));
    }

    private static V1EphemeralContainer Build(bool addNetRaw)
    {
        var capture = new PacketCapture
        {
            Metadata = new V1ObjectMeta { Name = "image-test", NamespaceProperty = "shop", Uid = Guid.NewGuid().ToString() },
            Spec = new PacketCaptureSpec
            {
                Reason = "does the agent image capture?",
                Target = new CaptureTarget { PodName = "api-1" },
                Filter = $"tcp port {HttpPort}",
                Snaplen = 128,
                Duration = "60s",
            },
        };
        return EphemeralContainerSpec.Build(capture, "api-1", ContainerImages.Agent, "http://kubecapture-ingest.kubecapture-system.svc:8081", EphemeralContainerSpec.TokenInSpec("test-token"), addNetRaw);
    }

    /// <summary>The cluster-mode args rewritten into a local capture to /captures/NAME, as the test kubelet does.</summary>
    private static V1EphemeralContainer LocalMode(V1EphemeralContainer container, string pcap)
    {
        container.Args = TestKubelet.LocalArgs([.. container.Args], $"/captures/{pcap}");
        return container;
    }

    private static V1EphemeralContainer NonRoot(V1EphemeralContainer container)
    {
        container.SecurityContext.RunAsUser = long.Parse(ContainerUid, System.Globalization.CultureInfo.InvariantCulture);
        container.SecurityContext.RunAsGroup = container.SecurityContext.RunAsUser;
        container.SecurityContext.RunAsNonRoot = true;
        return container;
    }

    private string[] Mounts() => ["--volume", $"{_captures}:/captures:rw"];

    /// <summary>Starts the container, makes one HTTP request from the client pod, stops the container (SIGTERM) and returns the pcap on the host.</summary>
    private async Task<string> CaptureOneRequestAsync(V1EphemeralContainer container)
    {
        var pcap = Path.Combine(_captures, Path.GetFileName(container.Args[container.Args.IndexOf("-w") + 1]));
        await using (var running = ContainerProcess.Start(PodmanContainer.Command(container, Lab.Server.Name, Mounts()), _name))
        {
            await running.WaitForStderrAsync("listening on", Patience);
            Assert.Equal("200", (await Lab.Client.CurlAsync(_http!.Url("small.txt"))).Stdout);
            await Task.Delay(300);
            var exit = await running.StopAsync(Patience);
            Assert.True(exit.ExitCode == 0, $"exit {exit.ExitCode}: {exit.Stderr}");
        }

        Assert.True(File.Exists(pcap), $"no pcap at {pcap}");
        return pcap;
    }

    private static Dictionary<string, ulong> Capabilities(ContainerExit exit)
    {
        Assert.True(exit.ExitCode == 0, $"exit {exit.ExitCode}: {exit.Stderr}");
        return exit.Stdout.Split('\n')
            .Where(l => l.StartsWith("Cap", StringComparison.Ordinal))
            .Select(l => l.Split(':', 2))
            .ToDictionary(p => p[0], p => ulong.Parse(p[1].Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture), StringComparer.Ordinal);
    }

    private static async Task<string> OwnerAsync(string path) =>
        (await KubeCapture.Testing.Processes.HostCommand.CheckedAsync("stat", "-c", "%u", path)).Stdout.Trim();
}
