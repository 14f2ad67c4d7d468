using System.Globalization;
using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Findings;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Pcap;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// The whole product on the real kube-apiserver: a PacketCapture applied, the operator (a real
/// process, as its ServiceAccount) injecting the ephemeral container through the real admission
/// chain, the test kubelet starting the real agent in the pod's network namespace, the pcap streamed
/// over gRPC to the real ingest and stored in s3rver, and a status that says what happened.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class PacketCaptureEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task A_user_replaying_the_upload_token_from_outside_the_pod_is_refused_and_the_real_capture_Succeeds()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-e2e-forged");
        var pod = await cluster.StartPodAsync(ns, "api");
        var attacker = cluster.CreateNodeReachingNetwork();
        // mallory may read pods and Secrets in the namespace (not exec into them): enough to see the capture container's args and token.
        using var admin = cluster.Install.Server.AdminClient();
        await admin.RbacAuthorizationV1.CreateNamespacedRoleAsync(new V1Role
        {
            Metadata = new V1ObjectMeta { Name = "pod-reader" },
            Rules = [new V1PolicyRule { ApiGroups = [""], Resources = ["pods", "secrets"], Verbs = ["get"] }],
        }, ns);
        await admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { Name = "mallory-reads-pods" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = "pod-reader" },
            Subjects = [new Rbacv1Subject { Kind = "User", Name = "mallory", ApiGroup = "rbac.authorization.k8s.io" }],
        }, ns);
        using var mallory = cluster.Install.Server.Client(KubeApiServer.UserToken("mallory"));

        var created = await cluster.StartCaptureAsync(ns, "forged", Icmp("evidence under attack", "api", maxPackets: 8), Long);
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        var (exit, output) = await ForgedUpload.RunAsync(mallory, ns, "api", created.Metadata.Uid, attacker.PodNamespace, OperatorHarness.AgentDll());
        var counted = await cluster.Admin.WaitForPacketCaptureAsync(ns, "forged", c => ForgedUpload.RefusedUploads(c, "api") == 1, Long);
        pod.PingFromClient(4);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "forged", CapturePhase.Succeeded, Long);

        Assert.Equal(1, exit);
        Assert.Contains("the ingest refused the upload (PermissionDenied)", output, StringComparison.Ordinal);
        Assert.Contains($"it comes from {attacker.NodeLinkAddress}, but the pod's addresses are {pod.NodeLinkAddress} (status.podIPs)", output, StringComparison.Ordinal);
        Assert.Equal(CapturePhase.Running, counted.Status!.Phase); // a refusal never ends the capture
        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal((8L, "count", 1L), (target.Packets, target.StopReason, target.RefusedUploads));
        Assert.Contains($"it comes from {attacker.NodeLinkAddress}", target.LastRefusal, StringComparison.Ordinal);
        Assert.Equal("True", CaptureConditions.Find(done.Status, CaptureConditions.Complete)?.Status);
        Assert.StartsWith("s3://", target.Artifact!.Uri, StringComparison.Ordinal);
        Assert.EndsWith($"/captures/{ns}/forged/api.pcap", target.Artifact.Uri, StringComparison.Ordinal);
        var downloaded = await cluster.DownloadAsync(target.Artifact);
        Assert.Equal(Evidence.Sha256Of(downloaded), target.Artifact.Sha256);
        Assert.Equal(new FileInfo(downloaded).Length, target.Artifact.Size);
        var lines = Evidence.TcpdumpLines(downloaded);
        Assert.Equal(8, lines.Count(l => l.Contains("ICMP echo", StringComparison.Ordinal) && l.Contains(pod.PodAddress, StringComparison.Ordinal)));
        Assert.Equal(8, lines.Count);
        Assert.DoesNotContain("upload interrupted", cluster.Kubelet.Stderr(ns, "api", container), StringComparison.Ordinal);
        var warning = Assert.Single(await ForgedUpload.RefusalEventsAsync(cluster.Admin, ns, "forged"));
        Assert.Contains("pod api: 1 upload(s) refused", warning.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Connections_refused_in_the_pod_are_findings_in_the_status_bounded_with_packet_numbers_of_the_stored_pcap_and_shown_by_kubectl()
    {
        const int Ports = 40;
        var ns = await cluster.CreateNamespaceAsync("kc-e2e-findings");
        var pod = await cluster.StartPodAsync(ns, "api");
        var spec = new PacketCaptureSpec
        {
            Reason = "calls to api are refused",
            Target = new CaptureTarget { PodName = "api" },
            Filter = $"tcp portrange 9001-{9000 + Ports}",
            MaxPackets = 2 * Ports, // a SYN and its RST per port
            Duration = "60s",
            Snaplen = 128,
        };
        var created = await cluster.StartCaptureAsync(ns, "refused", spec, Long, pods: ["api"]);
        // One connection to each of 40 closed ports: 40 findings, more than the status keeps.
        var connect = $$"""
            import socket
            for port in range(9001, {{9001 + Ports}}):
                try:
                    socket.create_connection(('{{pod.PodAddress}}', port), timeout=2).close()
                    raise SystemExit(f'port {port} accepted')
                except ConnectionRefusedError:
                    pass
            """;
        (await HostCommand.RunAsync("ip", ["netns", "exec", pod.ClientNamespace, "python3", "-c", connect], TimeSpan.FromSeconds(30))).EnsureSuccess();
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "refused", CapturePhase.Succeeded, Long);

        var status = done.Status!;
        var target = Assert.Single(status.Targets);
        Assert.Equal(Ports, status.FindingCount);
        Assert.Equal(StatusFindings.MaxPerTarget, target.Findings!.Count);
        Assert.Equal(Ports - StatusFindings.MaxPerTarget, target.FindingsOmitted);
        Assert.Equal(StatusFindings.MaxPerCapture, status.Findings!.Count);
        Assert.All(status.Findings, f => Assert.Equal(("api", FindingTypes.ConnectionRefused, FindingSeverity.Warning), (f.Target!, f.Type, f.Severity)));
        Assert.False(target.Summary!.Value.TryGetProperty("findings", out var inSummary) && inSummary.GetArrayLength() > 0); // not twice

        // The packet numbers point at the SYN and the RST of the finding's port in the stored pcap.
        var downloaded = await cluster.DownloadAsync(target.Artifact!);
        foreach (var finding in target.Findings)
        {
            var port = finding.Message.Split(' ')[3].Split(':')[^1];
            Assert.StartsWith($"1 connection to {pod.PodAddress}:{port} refused", finding.Message);
            var frames = await Tshark.FieldsAsync(downloaded, ["frame.number"], $"tcp.port == {port} && (tcp.flags.syn == 1 || tcp.flags.reset == 1)");
            Assert.Equal(frames.Select(f => long.Parse(f[0], CultureInfo.InvariantCulture)), finding.Evidence.PacketNumbers);
            Assert.Equal(1, finding.Evidence.Connections);
        }

        // kubectl: the printer column, and describe shows the sentence with its evidence.
        var server = cluster.Install.Server;
        var get = (await server.KubectlAsync(server.AdminToken, ["get", "packetcaptures", "refused", "-n", ns])).EnsureSuccess().StdoutLines;
        var columns = get[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal($"{Ports}", get[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[Array.IndexOf(columns, "FINDINGS")]);
        var describe = (await server.KubectlAsync(server.AdminToken, ["describe", "packetcapture", "refused", "-n", ns])).EnsureSuccess().Stdout;
        Assert.Contains(status.Findings[0].Message[..40], describe, StringComparison.Ordinal);
        Assert.Contains("Packet Numbers:", describe, StringComparison.Ordinal);
        Assert.Contains("Finding Count:", describe, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task An_invalid_filter_fails_with_InvalidFilter_and_libpcaps_message()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-e2e-filter");
        await cluster.StartPodAsync(ns, "api");

        await cluster.Admin.CreatePacketCaptureAsync(ns, "typo", new PacketCaptureSpec { Reason = "typo", Target = new CaptureTarget { PodName = "api" }, Duration = "30s", Filter = "tcp port eighty" });
        var failed = await cluster.Admin.WaitForPhaseAsync(ns, "typo", CapturePhase.Failed, Long);

        var accepted = CaptureConditions.Find(failed.Status, CaptureConditions.Accepted)!;
        Assert.Equal(("False", "InvalidFilter"), (accepted.Status, accepted.Reason));
        Assert.Contains("eighty", accepted.Message, StringComparison.Ordinal);
        Assert.Empty(await cluster.CaptureContainersAsync(ns, "api"));
        // The operator's /metrics counts it among the failed captures, by reason, from its cache.
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync($"http://127.0.0.1:{cluster.Operator.HttpPort}/metrics");
        Assert.Matches(@"(?m)^kubecapture_captures\{[^}]*phase=""Failed""[^}]*reason=""InvalidFilter""[^}]*\} [1-9]", metrics);
        Assert.Matches(@"(?m)^kubecapture_reconcile_duration_seconds_count\{[^}]*outcome=""ok""[^}]*\} [1-9]", metrics);
        // ... counts its end among the captures ended Failed, and says this replica leads.
        Assert.Matches(@"(?m)^kubecapture_captures_ended_total\{[^}]*phase=""Failed""[^}]*\} [1-9]", metrics);
        Assert.Matches(@"(?m)^kubecapture_leader(\{[^}]*\})? 1( |\r?$)", metrics);
    }

    [SkippableFact]
    public async Task A_missing_pod_fails_with_PodNotFound()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-e2e-missing");

        await cluster.Admin.CreatePacketCaptureAsync(ns, "nobody", Icmp("who is there", "no-such-pod"));
        var failed = await cluster.Admin.WaitForPhaseAsync(ns, "nobody", CapturePhase.Failed, Long);

        var ready = CaptureConditions.Find(failed.Status, CaptureConditions.TargetsReady)!;
        Assert.Equal(("False", "PodNotFound"), (ready.Status, ready.Reason));
        Assert.Contains("no-such-pod", ready.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Stopping_a_capture_early_keeps_the_packets_captured_so_far()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-e2e-stop");
        var pod = await cluster.StartPodAsync(ns, "api");

        var created = await cluster.StartCaptureAsync(ns, "early", Icmp("stop early", "api", duration: "5m"), Long);
        pod.PingFromClient(3);
        await Task.Delay(500);
        await cluster.Admin.StopPacketCaptureAsync(ns, "early");
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "early", CapturePhase.Succeeded, Long);

        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal("requested", target.StopReason);
        var downloaded = await cluster.DownloadAsync(target.Artifact!);
        Assert.Equal(6, Evidence.TcpdumpLines(downloaded).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        Assert.Equal(Evidence.Sha256Of(downloaded), target.Artifact!.Sha256);
    }

    [SkippableFact]
    public async Task An_operator_SIGKILLed_mid_capture_comes_back_and_the_capture_Succeeds_with_one_capture_container()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-e2e-kill");
        var pod = await cluster.StartPodAsync(ns, "api");

        var created = await cluster.StartCaptureAsync(ns, "survivor", Icmp("operator crash", "api", maxPackets: 20, duration: "5m"), Long);
        pod.PingFromClient(5);
        await cluster.Operator.KillAsync();
        pod.PingFromClient(5); // while no operator runs: the agent keeps what it has not delivered
        await cluster.Operator.StartProcessAsync();
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "survivor", CapturePhase.Succeeded, Long);

        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal((20L, "count"), (target.Packets, target.StopReason));
        var downloaded = await cluster.DownloadAsync(target.Artifact!);
        Assert.Equal(20, Evidence.TcpdumpLines(downloaded).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        Assert.Equal(Evidence.Sha256Of(downloaded), target.Artifact!.Sha256);
        Assert.Single(await cluster.CaptureContainersAsync(ns, "api"));
    }

    [SkippableFact]
    public async Task Deleting_a_running_capture_releases_its_finalizer_and_the_object_goes_away()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-e2e-delete");
        await cluster.StartPodAsync(ns, "api");

        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, "doomed", Icmp("deleted while running", "api", duration: "5m"));
        var running = await cluster.Admin.WaitForPhaseAsync(ns, "doomed", CapturePhase.Running, Long);
        Assert.NotEmpty(running.Metadata.Finalizers ?? []);
        await cluster.Admin.CustomObjects.DeleteNamespacedCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, "doomed");

        var deadline = DateTime.UtcNow + Long;
        while (await cluster.Admin.GetPacketCaptureAsync(ns, "doomed") is { } still)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the capture is still there with finalizers [{string.Join(", ", still.Metadata.Finalizers ?? [])}], status {KubernetesJson.Serialize(still.Status)}\nagent: {cluster.Kubelet.Stderr(ns, "api", EphemeralContainerSpec.ContainerName(created.Metadata.Uid))}\n{cluster.OperatorLog()}");
            await Task.Delay(100);
        }
    }

    /// <summary>An ICMP capture of one pod, headers only.</summary>
    internal static PacketCaptureSpec Icmp(string reason, string pod, long? maxPackets = null, string duration = "60s") => new()
    {
        Reason = reason,
        Target = new CaptureTarget { PodName = pod },
        Filter = "icmp",
        MaxPackets = maxPackets,
        Duration = duration,
        Snaplen = 128,
    };
}
