using System.Net;
using System.Security.Cryptography;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Subresources;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Pcap;
using KubeCapture.Testing.Processes;
using Xunit.Abstractions;

namespace KubeCapture.Operator.Tests.RealNode;

/// <summary>
/// The whole journey on the real node, as users run it (issue 19, section 2): the chart installed by
/// helm as README says, the operator pod and every capture container started by the kubelet from
/// their images, the agents' streams carried by kube-proxy to the ingest Service, users' rights from
/// the built-in roles the controller-manager aggregates, and the real admission chain.
/// </summary>
[Collection(RealNodeCollection.Name)]
public sealed class JourneyTests(RealNodeCluster cluster, ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    [SkippableFact]
    public async Task Installed_as_README_says_the_operator_pod_runs_Ready_from_its_image_the_APIService_is_Available_and_the_webhooks_carry_its_CA()
    {
        cluster.Require();
        output.WriteLine(cluster.Timings);

        var pod = await cluster.WaitForOperatorAsync();
        var apiService = await cluster.Admin.ApiregistrationV1.ReadAPIServiceAsync($"{ExtensionApi.Version}.{ExtensionApi.Group}");
        var mutating = await cluster.Admin.AdmissionregistrationV1.ReadMutatingWebhookConfigurationAsync($"{RealNodeCluster.Release}-requester-stamp");
        var validating = await cluster.Admin.AdmissionregistrationV1.ReadValidatingWebhookConfigurationAsync($"{RealNodeCluster.Release}-requester-stamp");
        var authority = Pem((await cluster.Admin.CoreV1.ReadNamespacedSecretAsync($"{RealNodeCluster.Release}-serving-certificate", RealNodeCluster.Namespace)).Data["ca.crt"]);
        var tokenKey = await cluster.Admin.CoreV1.ReadNamespacedSecretAsync($"{RealNodeCluster.Release}-ingest-token", RealNodeCluster.Namespace);

        var container = Assert.Single(pod.Status.ContainerStatuses);
        Assert.Equal((cluster.Node.NodeName, RealNodeCluster.OperatorImage, true), (pod.Spec.NodeName, container.Image, container.Ready));
        Assert.NotNull(container.State.Running);
        // The chart's two replicas, both on the one node (their anti-affinity is preferred, never required).
        var replicas = await RealNodeCluster.WaitForAsync("both operator replicas Ready", async () =>
        {
            var pods = (await cluster.Admin.CoreV1.ListNamespacedPodAsync(RealNodeCluster.Namespace, labelSelector: $"app.kubernetes.io/instance={RealNodeCluster.Release}")).Items
                .Where(p => p.Metadata.DeletionTimestamp is null && p.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true).ToList();
            return pods.Count == 2 ? pods : null;
        });
        Assert.All(replicas, p => Assert.Equal(cluster.Node.NodeName, p.Spec.NodeName));
        Assert.Contains("Available", apiService.Status.Conditions.Where(c => c.Status == "True").Select(c => c.Type));
        Assert.Equal(authority, Pem(apiService.Spec.CaBundle));
        Assert.All(mutating.Webhooks, w => Assert.Equal(authority, Pem(w.ClientConfig.CaBundle)));
        Assert.All(validating.Webhooks, w => Assert.Equal(authority, Pem(w.ClientConfig.CaBundle)));
        // The upload token key the chart names, created by the operator (the chart renders no Secret),
        // and followed with the rights the chart gives (list and watch of that one name): no error reading it.
        Assert.Equal(32, tokenKey.Data[IngestTokenKeySecret.CurrentEntry].Length);
        Assert.Equal("kubecapture-operator", tokenKey.Metadata.Labels["app.kubernetes.io/managed-by"]);
        var log = (await cluster.KubectlAsync(cluster.Node.AdminKubeconfig, ["logs", "-n", RealNodeCluster.Namespace, pod.Metadata.Name])).Stdout;
        Assert.Contains("ingest token key", log, StringComparison.Ordinal);
        Assert.DoesNotContain("reading it again", log, StringComparison.Ordinal);
        Assert.DoesNotContain("Forbidden", log, StringComparison.Ordinal);
        // The chart's Ingest:TokenDelivery Auto, on this node's kube-apiserver (before 1.33: kubernetes/kubernetes#114984):
        // the token in the pod spec, said once at start with the version and the issue (the journey's captures start).
        var version = (await cluster.Admin.Version.GetCodeAsync()).GitVersion;
        var choice = TokenDeliveryChoice.ForServer(version);
        Assert.Contains($"kube-apiserver is {version}: upload tokens reach capture containers by {choice.Delivery} (Ingest:TokenDelivery Auto)", log, StringComparison.Ordinal);
        if (choice.Delivery == TokenDelivery.PodSpec)
        {
            Assert.Contains($"kube-apiserver is v{TokenDeliveryChoice.Parse(version)}, before 1.33", log, StringComparison.Ordinal);
            Assert.Contains(TokenDeliveryChoice.Issue, log, StringComparison.Ordinal);
        }
    }

    [SkippableFact]
    public async Task An_edit_user_captures_a_Deployments_pod_follows_it_live_downloads_and_verifies_it_and_a_view_user_gets_403()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-journey");
        var (web, client) = await cluster.StartWebAndClientAsync(ns);
        var alice = cluster.KubeconfigOf("alice");
        var bob = cluster.KubeconfigOf("bob");

        // alice, with the built-in edit role only (the chart's roles aggregated into it by the controller-manager).
        var applied = await cluster.KubectlAsync(alice, ["apply", "-f", "-"], $$"""
            apiVersion: kubecapture.io/v1alpha1
            kind: PacketCapture
            metadata: {name: web-requests, namespace: {{ns}}}
            spec:
              reason: "the web pod's requests, as users see them"
              target: {podName: {{web.Metadata.Name}}}
              duration: 5m
            """);
        Assert.True(applied.ExitCode == 0, applied.Stderr);
        var running = await cluster.Admin.WaitForPhaseAsync(ns, "web-requests", CapturePhase.Running, Long);
        var uid = running.Metadata.Uid;
        var name = EphemeralContainerSpec.ContainerName(uid);
        await cluster.WaitUntilListeningAsync(ns, web.Metadata.Name, name);
        var runningState = (await cluster.Admin.CoreV1.ReadNamespacedPodAsync(web.Metadata.Name, ns)).Status.EphemeralContainerStatuses.Single(s => s.Name == name).State;
        var follow = StartFollow(alice, ns, "web-requests");
        await RealNodeCluster.WaitForAsync("alice's follow to reach the operator", async () =>
            (await cluster.Admin.CoreV1.ListNamespacedEventAsync(ns, fieldSelector: "involvedObject.name=web-requests")).Items
                .FirstOrDefault(e => e.Reason == "Followed" && e.Message.StartsWith("alice ", StringComparison.Ordinal)));

        var requests = await cluster.RequestsAsync(ns, "web", 3); // by the Service's name: cluster DNS, then kube-proxy
        await WaitForFileAsync(follow.Lines, text => Syns(text) >= 3, "follow to stream the SYNs while the capture runs", follow);
        // kube-apiserver ends the request after its request timeout (1 minute): the plugin follows again, one pcap goes on.
        await RealNodeCluster.WaitForAsync("the follow to be cut by kube-apiserver and followed again", () => Task.FromResult(follow.Said.Contains("following again", StringComparison.Ordinal) ? follow : null), Long);
        var later = await cluster.RequestsAsync(ns, "web", 2);
        // The later requests went through (else no SYN to follow: a failure here is not the follow's).
        Assert.True(later.ExitCode == 0, $"the later requests failed: {later.Stdout}{later.Stderr}");
        await WaitForFileAsync(follow.Lines, text => Syns(text) >= 5, "follow to stream the later SYNs after it was cut", follow);
        var stop = await cluster.PluginAsync(alice, ns, "stop", "web-requests");
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "web-requests", CapturePhase.Succeeded, Long);
        var followed = await follow.ExitAsync();
        var target = Assert.Single(done.Status!.Targets);
        var stored = await cluster.StoredAsync(target.Artifact!.Uri);
        var download = await cluster.PluginAsync(alice, ns, "download", "web-requests", "-o", "journey.pcap");
        var pcap = Path.Combine(cluster.WorkDirectory, "journey.pcap");
        var publicKey = Path.Combine(cluster.WorkDirectory, "operator.pub");
        await File.WriteAllTextAsync(publicKey, (await cluster.Admin.CoreV1.ReadNamespacedConfigMapAsync(SecretSigningKey.Name, RealNodeCluster.Namespace)).Data[SecretSigningKey.PublicKeyEntry]);
        var verify = await cluster.PluginAsync(alice, ns, "verify", "journey.pcap", "--public-key", publicKey);
        var refused = await cluster.PluginAsync(bob, ns, "download", "web-requests", "-o", "bob.pcap");
        string[] canI = ["auth", "can-i", "get", "packetcaptures.subresources.kubecapture.io", "--subresource=pcap", "-n", ns];
        var aliceMay = await cluster.KubectlAsync(alice, canI);
        var bobMay = await cluster.KubectlAsync(bob, canI);
        var pod = await cluster.WaitForCaptureContainerExitAsync(ns, web.Metadata.Name, name);

        // The requester stamp names alice, as kube-apiserver authenticated her.
        Assert.Equal("alice", running.Metadata.Annotations[RequesterStamp.Username]);
        Assert.Contains("kcnode-users", running.Metadata.Annotations[RequesterStamp.Groups], StringComparison.Ordinal);
        // The kubelet started the capture container from the agent image, running, then terminated 0.
        Assert.NotNull(runningState.Running);
        var container = Assert.Single(pod.Spec.EphemeralContainers);
        Assert.Equal((name, RealNodeCluster.AgentImage), (container.Name, container.Image));
        Assert.Equal(["NET_RAW"], container.SecurityContext.Capabilities.Add);
        Assert.Equal(["ALL"], container.SecurityContext.Capabilities.Drop);
        // Streamed over TLS to the ingest Service by name, trusting the CA of the operator's Secret and nothing else.
        var args = container.Args.ToList();
        Assert.Equal($"https://{RealNodeCluster.Release}-ingest.{RealNodeCluster.Namespace}.svc:8081", args[args.IndexOf("--ingest") + 1]);
        Assert.Equal(Pem((await cluster.Admin.CoreV1.ReadNamespacedSecretAsync($"{RealNodeCluster.Release}-serving-certificate", RealNodeCluster.Namespace)).Data["ca.crt"]),
            Pem(Convert.FromBase64String(args[args.IndexOf(EphemeralContainerSpec.IngestCaOption) + 1])));
        var terminated = pod.Status.EphemeralContainerStatuses.Single(s => s.Name == name).State.Terminated;
        Assert.True(terminated?.ExitCode == 0, $"{KubernetesJson.Serialize(pod.Status.EphemeralContainerStatuses)}\n{await cluster.LogsAsync(ns, web.Metadata.Name, name)}");
        // The traffic went through: three answers, and the capture holds the three connections from the client pod.
        Assert.True(requests.ExitCode == 0 && later.ExitCode == 0, requests.Stderr + later.Stderr);
        Assert.Equal(5, requests.StdoutLines.Concat(later.StdoutLines).Count(l => l == "hello from the web pod"));
        Assert.Equal((0, ""), (stop.ExitCode, stop.Stderr));
        Assert.Equal("requested", target.StopReason);
        // Succeeded with the SHA-256 of the object stored in RGW; download through the aggregated API returns those bytes.
        Assert.Equal((Convert.ToHexStringLower(SHA256.HashData(stored)), stored.LongLength), (target.Artifact.Sha256, target.Artifact.Size));
        Assert.True(download.ExitCode == 0, download.Stderr);
        Assert.Equal(stored, await File.ReadAllBytesAsync(pcap));
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);
        var tcp = (await Tcpdump.ReadAsync(pcap)).Tcp;
        var syns = tcp.Where(l => l.Flags == "S" && l.Destination == web.Status.PodIP && l.DestinationPort == 8080).ToList();
        Assert.Equal(5, syns.Count);
        Assert.All(syns, s => Assert.Equal(client.Status.PodIP, s.Source));
        // No filter was given, yet the agent's own upload from this pod to the ingest Service is not in its pcap.
        Assert.All(tcp, l => Assert.Equal(8080, l.SourcePort == 8080 ? l.SourcePort : l.DestinationPort));
        // follow streamed the packets while the capture ran, across kube-apiserver's cut, as one pcap tcpdump read whole, each packet once; it ended when the capture ended.
        Assert.True(followed == 0, follow.Said);
        Assert.Equal(5, Syns(await File.ReadAllTextAsync(follow.Lines)));
        // bob may view captures, not their packets: kube-apiserver says 403.
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("Error from server (Forbidden)", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("User \"bob\" cannot get resource \"packetcaptures/pcap\" in API group \"subresources.kubecapture.io\"", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal(("yes", "no"), (aliceMay.Stdout.Trim(), bobMay.Stdout.Trim()));
        Assert.Equal("", aliceMay.Stderr.Trim() + bobMay.Stderr.Trim());
    }

    [SkippableFact]
    public async Task Both_ends_of_a_client_server_pair_selected_together_are_compared_and_a_return_path_dropped_by_the_node_is_found()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-ends");
        var (web, client) = await cluster.StartWebAndClientAsync(ns, extraLabels: new Dictionary<string, string> { ["pair"] = "ends" });
        var capture = await cluster.Admin.CreatePacketCaptureAsync(ns, "ends", new PacketCaptureSpec
        {
            Reason = "connections from the client to web hang",
            Target = new CaptureTarget { PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["pair"] = "ends" } } },
            Filter = "tcp port 8080",
            Duration = "5m",
        });
        await cluster.Admin.WaitForPhaseAsync(ns, "ends", CapturePhase.Running, Long);
        var container = EphemeralContainerSpec.ContainerName(capture.Metadata.Uid);
        await cluster.WaitUntilListeningAsync(ns, web.Metadata.Name, container);
        await cluster.WaitUntilListeningAsync(ns, client.Metadata.Name, container);

        // The node's firewall drops the server's SYN-ACKs toward the client (the bridge's traffic passes iptables' FORWARD chain).
        string[] rule = ["-w", "-I", "FORWARD", "1", "-s", web.Status.PodIP, "-d", client.Status.PodIP, "-p", "tcp", "--sport", "8080",
            "--tcp-flags", "SYN,ACK", "SYN,ACK", "-m", "comment", "--comment", "kubecapture-test-return-path", "-j", "DROP"];
        (await HostCommand.RunAsync("iptables", rule)).EnsureSuccess();
        CommandResult connect;
        PacketCapture done;
        try
        {
            connect = await cluster.KubectlAsync(cluster.Node.AdminKubeconfig, ["exec", "-n", ns, "client", "--", "sh", "-c", $"echo hello | nc -w 2 {web.Status.PodIP} 8080"]);
            // The rule stays until both captures have ended: the server sends its SYN-ACK again (1, 3, 7 s ...),
            // and one let through before then reaches the client, which answers it with a RST.
            await cluster.Admin.StopPacketCaptureAsync(ns, "ends");
            done = await cluster.Admin.WaitForPhaseAsync(ns, "ends", CapturePhase.Succeeded, Long);
        }
        finally
        {
            (await HostCommand.RunAsync("iptables", rule.Select(a => a == "-I" ? "-D" : a).Where(a => a != "1"))).EnsureSuccess();
        }

        Assert.NotEqual(0, connect.ExitCode);
        var status = done.Status!;
        Assert.Equal([client.Metadata.Name, web.Metadata.Name], status.Targets.Select(t => t.Pod).Order(StringComparer.Ordinal));
        var serverEnd = status.Targets.Single(t => t.Pod == web.Metadata.Name);
        var clientEnd = status.Targets.Single(t => t.Pod == client.Metadata.Name);
        Assert.Contains(clientEnd.Findings!, f => f.Type == FindingTypes.SynUnanswered);
        Assert.Contains(serverEnd.Findings!, f => f.Type == FindingTypes.HandshakeIncomplete);
        var compared = Assert.Single(status.Findings!, f => f.Type == FindingTypes.ReturnPath);
        Assert.Contains("none reached the client", compared.Message, StringComparison.Ordinal);
        // The stored pcaps agree: SYN-ACKs left the server, none reached the client.
        var serverPcap = await SaveAsync(await cluster.StoredAsync(serverEnd.Artifact!.Uri), "server.pcap");
        var clientPcap = await SaveAsync(await cluster.StoredAsync(clientEnd.Artifact!.Uri), "client.pcap");
        Assert.Contains((await Tcpdump.ReadAsync(serverPcap)).Tcp, l => l.Flags == "S." && l.Source == web.Status.PodIP);
        Assert.DoesNotContain((await Tcpdump.ReadAsync(clientPcap)).Tcp, l => l.Flags == "S.");
        Assert.Contains((await Tcpdump.ReadAsync(clientPcap)).Tcp, l => l.Flags == "S" && l.Source == client.Status.PodIP);
    }

    [SkippableFact]
    public async Task Deleting_the_operator_pod_mid_capture_as_a_drain_does_the_Deployments_new_pod_takes_over_and_the_capture_Succeeds_with_every_packet()
    {
        var replaced = await CaptureWhileTheOperatorIsReplacedAsync("kc-drain", old =>
            cluster.Admin.CoreV1.DeleteNamespacedPodAsync(old.Metadata.Name, RealNodeCluster.Namespace));

        Assert.NotEqual(replaced.Old.Metadata.Name, replaced.Replacement.Metadata.Name);
    }

    [SkippableFact]
    public async Task An_operator_SIGKILLed_mid_capture_right_after_a_token_key_rotation_is_restarted_in_place_by_the_kubelet_and_the_capture_Succeeds_with_every_packet()
    {
        var secret = $"{RealNodeCluster.Release}-ingest-token";
        byte[]? rotatedAway = null;
        var replaced = await CaptureWhileTheOperatorIsReplacedAsync("kc-kill",
            async old =>
            {
                // The rotation README gives (current to previous, a new current), then the OOM killer: the
                // restarted process knows the running agent's token only through the previous key.
                var key = await cluster.Admin.CoreV1.ReadNamespacedSecretAsync(secret, RealNodeCluster.Namespace);
                rotatedAway = key.Data[IngestTokenKeySecret.CurrentEntry];
                key.Data[IngestTokenKeySecret.PreviousEntry] = rotatedAway;
                key.Data[IngestTokenKeySecret.CurrentEntry] = RandomNumberGenerator.GetBytes(32);
                await cluster.Admin.CoreV1.ReplaceNamespacedSecretAsync(key, secret, RealNodeCluster.Namespace);
                (await HostCommand.RunAsync("ctr", "--address", cluster.Node.ContainerdSocket, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL",
                    old.Status.ContainerStatuses.Single().ContainerID.Split("://")[1])).EnsureSuccess();
            },
            async old =>
            {
                // The same pod, its container restarted by the kubelet (no graceful shutdown, no Lease released),
                // and Ready again; the chart's other replica may have taken the agent's resume meanwhile.
                var restarted = await RealNodeCluster.WaitForAsync("the operator container restarted and Ready", async () =>
                {
                    var pod = await cluster.Admin.CoreV1.ReadNamespacedPodAsync(old.Metadata.Name, RealNodeCluster.Namespace);
                    return pod.Status.ContainerStatuses.Single().RestartCount >= 1 && pod.Status.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true ? pod : null;
                });
                await cluster.WaitForOperatorAsync(); // the APIService and the webhooks answer
                return restarted;
            });

        Assert.Equal(replaced.Old.Metadata.Name, replaced.Replacement.Metadata.Name);
        var restarted = replaced.Replacement.Status.ContainerStatuses.Single();
        Assert.Equal(1, restarted.RestartCount);
        Assert.Equal(137, restarted.LastState.Terminated.ExitCode);
        var rotated = await cluster.Admin.CoreV1.ReadNamespacedSecretAsync(secret, RealNodeCluster.Namespace);
        Assert.Equal(rotatedAway, rotated.Data[IngestTokenKeySecret.PreviousEntry]);
        Assert.NotEqual(rotatedAway, rotated.Data[IngestTokenKeySecret.CurrentEntry]);
    }

    [SkippableFact]
    public async Task Helm_upgrade_mid_capture_rolls_the_operator_out_and_the_capture_Succeeds_with_every_packet_then_the_new_value_is_in_force()
    {
        CommandResult? upgraded = null;
        var replaced = await CaptureWhileTheOperatorIsReplacedAsync("kc-upgrade", async _ =>
            upgraded = await cluster.HelmAsync(["upgrade", RealNodeCluster.Release, Tools.Chart, "-n", RealNodeCluster.Namespace, "--reuse-values", "--set", "policy.maxDuration=30m"]));
        await cluster.Admin.CreatePacketCaptureAsync(replaced.Namespace, "too-long", new PacketCaptureSpec { Reason = "longer than the upgraded policy", Target = new CaptureTarget { PodName = replaced.Web }, Duration = "45m" });
        var refused = await cluster.Admin.WaitForPhaseAsync(replaced.Namespace, "too-long", CapturePhase.Failed, Long);

        Assert.True(upgraded!.ExitCode == 0, upgraded.Stdout + upgraded.Stderr);
        var accepted = CaptureConditions.Find(refused.Status, CaptureConditions.Accepted)!;
        Assert.Equal(("False", "PolicyExceeded"), (accepted.Status, accepted.Reason));
        Assert.EndsWith("the policy's maximum 30m", accepted.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_restricted_namespace_is_refused_with_PodSecurityRestricted_and_the_real_admission_refuses_the_capture_container_too()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-restricted", new Dictionary<string, string> { [PodSecurityPreflight.EnforceLabel] = "restricted" });
        var restricted = new V1SecurityContext { RunAsNonRoot = true, RunAsUser = 1000, AllowPrivilegeEscalation = false, Capabilities = new V1Capabilities { Drop = ["ALL"] }, SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" } };
        var (web, _) = await cluster.StartWebAndClientAsync(ns, security: restricted);

        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, "refused", new PacketCaptureSpec { Reason = "restricted", Target = new CaptureTarget { PodName = web.Metadata.Name }, Duration = "30s" });
        var failed = await cluster.Admin.WaitForPhaseAsync(ns, "refused", CapturePhase.Failed, Long);
        var container = EphemeralContainerSpec.Build(created, web.Metadata.Name, RealNodeCluster.AgentImage, "http://127.0.0.1:1", EphemeralContainerSpec.TokenFromSecret("t"), addNetRaw: true);
        var denied = await Assert.ThrowsAsync<HttpOperationException>(() => cluster.Admin.CoreV1.PatchNamespacedPodEphemeralcontainersAsync(
            new V1Patch(new { spec = new { ephemeralContainers = new[] { container } } }, V1Patch.PatchType.StrategicMergePatch), web.Metadata.Name, ns));

        var ready = CaptureConditions.Find(failed.Status, CaptureConditions.TargetsReady)!;
        Assert.Equal(("False", "PodSecurityRestricted"), (ready.Status, ready.Reason));
        Assert.Null((await cluster.Admin.CoreV1.ReadNamespacedPodAsync(web.Metadata.Name, ns)).Spec.EphemeralContainers);
        Assert.Equal(HttpStatusCode.Forbidden, denied.Response.StatusCode);
        Assert.Contains("violates PodSecurity \\\"restricted:", denied.Response.Content, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task In_a_baseline_namespace_the_capture_container_adds_no_capability_and_captures_with_the_NET_RAW_containerd_grants_by_default()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-baseline", new Dictionary<string, string> { [PodSecurityPreflight.EnforceLabel] = "baseline" });
        var (web, _) = await cluster.StartWebAndClientAsync(ns);

        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, "baseline", new PacketCaptureSpec { Reason = "baseline", Target = new CaptureTarget { PodName = web.Metadata.Name }, Filter = "icmp", MaxPackets = 4, Duration = "60s" });
        await cluster.Admin.WaitForPhaseAsync(ns, "baseline", CapturePhase.Running, Long);
        var name = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        await cluster.WaitUntilListeningAsync(ns, web.Metadata.Name, name);
        var ping = await cluster.PingAsync(ns, web.Status.PodIP, 2);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "baseline", CapturePhase.Succeeded, Long);
        var pod = await cluster.WaitForCaptureContainerExitAsync(ns, web.Metadata.Name, name);

        Assert.True(ping.ExitCode == 0, ping.Stderr);
        Assert.Equal(4L, Assert.Single(done.Status!.Targets).Packets);
        var container = Assert.Single(pod.Spec.EphemeralContainers);
        Assert.Null(container.SecurityContext.Capabilities.Add);
        Assert.DoesNotContain("NET_RAW", container.SecurityContext.Capabilities.Drop);
        Assert.Contains("SETUID", container.SecurityContext.Capabilities.Drop);
        Assert.Equal(0, pod.Status.EphemeralContainerStatuses.Single().State.Terminated.ExitCode);
    }

    [SkippableFact]
    public async Task Helm_uninstall_leaves_nothing_running_keeps_the_CRD_the_captures_and_the_token_key_and_a_new_install_serves_again()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-uninstall");
        await cluster.Admin.CreatePacketCaptureAsync(ns, "evidence", new PacketCaptureSpec { Reason = "kept across uninstall", Target = new CaptureTarget { PodName = "nobody" }, Duration = "30s" });
        var key = (await cluster.Admin.CoreV1.ReadNamespacedSecretAsync($"{RealNodeCluster.Release}-ingest-token", RealNodeCluster.Namespace)).Data[IngestTokenKeySecret.CurrentEntry];

        var uninstalled = await cluster.HelmAsync(["uninstall", RealNodeCluster.Release, "-n", RealNodeCluster.Namespace, "--wait"]);
        await RealNodeCluster.WaitForAsync("the operator pod gone", async () =>
            (await cluster.Admin.CoreV1.ListNamespacedPodAsync(RealNodeCluster.Namespace)).Items.Count == 0 ? "gone" : null);
        // The pod is gone from the API once the kubelet has stopped its containers; their records stay in containerd
        // until the kubelet's container GC, so "nothing running" is read from containerd's tasks.
        var containers = await HostCommand.RunAsync("ctr", "--address", cluster.Node.ContainerdSocket, "-n", "k8s.io", "containers", "ls");
        var tasks = await HostCommand.RunAsync("ctr", "--address", cluster.Node.ContainerdSocket, "-n", "k8s.io", "tasks", "ls");
        var clusterRoles = (await cluster.Admin.RbacAuthorizationV1.ListClusterRoleAsync()).Items.Select(r => r.Metadata.Name).ToList();
        var apiServiceGone = await Assert.ThrowsAsync<HttpOperationException>(() => cluster.Admin.ApiregistrationV1.ReadAPIServiceAsync($"{ExtensionApi.Version}.{ExtensionApi.Group}"));
        var webhooks = (await cluster.Admin.AdmissionregistrationV1.ListMutatingWebhookConfigurationAsync()).Items;
        var kept = await cluster.Admin.GetPacketCaptureAsync(ns, "evidence");
        var keyAfter = (await cluster.Admin.CoreV1.ReadNamespacedSecretAsync($"{RealNodeCluster.Release}-ingest-token", RealNodeCluster.Namespace)).Data[IngestTokenKeySecret.CurrentEntry];
        await cluster.InstallAsync();

        Assert.True(uninstalled.ExitCode == 0, uninstalled.Stdout + uninstalled.Stderr);
        var operatorContainers = containers.Stdout.Split('\n').Where(l => l.Contains(RealNodeCluster.OperatorImage, StringComparison.Ordinal))
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0]).ToHashSet();
        Assert.True(tasks.ExitCode == 0, tasks.Stderr);
        Assert.DoesNotContain(tasks.Stdout.Split('\n'), l => l.Contains("RUNNING", StringComparison.Ordinal)
            && operatorContainers.Contains(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0])); // nothing of it runs in containerd
        Assert.DoesNotContain(clusterRoles, r => r.StartsWith($"{RealNodeCluster.Release}-", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.NotFound, apiServiceGone.Response.StatusCode);
        Assert.Empty(webhooks);
        Assert.NotNull(await cluster.Admin.ApiextensionsV1.ReadCustomResourceDefinitionAsync("packetcaptures.kubecapture.io"));
        Assert.Equal("kept across uninstall", kept!.Spec.Reason);
        Assert.Equal(key, keyAfter); // a reinstall signs with the same key
    }

    /// <summary>
    /// An 18-packet ICMP capture of a web pod while <paramref name="replace"/> takes the operator pod
    /// holding its stream away: 6 packets streamed to it, 6 while the agent has none to stream to (it
    /// keeps them until the other replica takes the target: at once after a graceful stop, once the
    /// upload Lease went silent after a kill), 6 once the replacement serves. Then the capture must
    /// have Succeeded with all 18 stored once, from one capture container, with exactly the
    /// configuration the chart renders (the upload token key from its Secret: nothing injected), and a
    /// running replica leads.
    /// </summary>
    private async Task<Replaced> CaptureWhileTheOperatorIsReplacedAsync(string prefix, Func<V1Pod, Task> replace, Func<V1Pod, Task<V1Pod>>? replacedBy = null)
    {
        var ns = await cluster.CreateNamespaceAsync(prefix);
        var (web, _) = await cluster.StartWebAndClientAsync(ns);
        var old = await cluster.WaitForOperatorAsync();
        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, "across", new PacketCaptureSpec
        {
            Reason = "the operator goes away while this runs",
            Target = new CaptureTarget { PodName = web.Metadata.Name },
            Filter = "icmp",
            MaxPackets = 18,
            Duration = "5m",
        });
        await cluster.Admin.WaitForPhaseAsync(ns, "across", CapturePhase.Running, Long);
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        await cluster.WaitUntilListeningAsync(ns, web.Metadata.Name, container);
        (await cluster.PingAsync(ns, web.Status.PodIP, 3)).EnsureSuccess();
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "across", c => c.Status?.Targets.SingleOrDefault()?.Packets >= 6, Long);
        // Of the chart's two replicas, the one holding the stream (its upload Lease names the pod) goes; the agent resumes on the other or the new pod.
        var upload = await cluster.Admin.CoordinationV1.ReadNamespacedLeaseAsync(UploadOwnership.LeaseNameOf(new CaptureIdentity(created.Metadata.Uid, ns, "across", web.Metadata.Name)), RealNodeCluster.Namespace);
        old = await cluster.Admin.CoreV1.ReadNamespacedPodAsync(upload.Spec.HolderIdentity, RealNodeCluster.Namespace);

        await replace(old);
        (await cluster.PingAsync(ns, web.Status.PodIP, 3)).EnsureSuccess(); // the agent keeps what no operator acknowledged
        var replacement = await (replacedBy ?? (o => cluster.WaitForOperatorAsync(notPod: o.Metadata.Name)))(old);
        (await cluster.PingAsync(ns, web.Status.PodIP, 3)).EnsureSuccess();
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "across", CapturePhase.Succeeded, Long);

        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal((18L, "count"), (target.Packets, target.StopReason));
        var stored = await cluster.StoredAsync(target.Artifact!.Uri);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(stored)), target.Artifact.Sha256);
        var lines = Evidence.TcpdumpLines(await SaveAsync(stored, $"{prefix}.pcap"));
        Assert.True(lines.Count == 18 && lines.All(l => l.Contains("ICMP echo", StringComparison.Ordinal)), string.Join('\n', lines));
        var pod = await cluster.WaitForCaptureContainerExitAsync(ns, web.Metadata.Name, container);
        Assert.Equal(container, Assert.Single(pod.Spec.EphemeralContainers).Name);
        Assert.Equal(0, pod.Status.EphemeralContainerStatuses.Single().State.Terminated.ExitCode);
        // A replica running now leads (the one that stayed, or the one that replaced the old one). A rolling
        // update may still be taking an old pod away: a leader being terminated holds the Lease until it
        // exits and releases it, so the Lease is looked at until it names a pod not being deleted.
        var (leader, running) = await LeaderAmongRunningAsync();
        Assert.Contains(leader, running);
        return new Replaced(ns, web.Metadata.Name, old, replacement);
    }

    /// <summary>The leader Lease's holder and the operator pods not being deleted, once the holder is one of them or after <see cref="Long"/>.</summary>
    private async Task<(string? Leader, IReadOnlyList<string> Running)> LeaderAmongRunningAsync()
    {
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            var lease = await cluster.Admin.CoordinationV1.ReadNamespacedLeaseAsync("kubecapture-operator", RealNodeCluster.Namespace);
            var running = (await cluster.Admin.CoreV1.ListNamespacedPodAsync(RealNodeCluster.Namespace, labelSelector: $"app.kubernetes.io/instance={RealNodeCluster.Release}")).Items
                .Where(p => p.Metadata.DeletionTimestamp is null).Select(p => p.Metadata.Name).ToList();
            if (running.Contains(lease.Spec.HolderIdentity) || DateTime.UtcNow > deadline)
            {
                return (lease.Spec.HolderIdentity, running);
            }

            await Task.Delay(500);
        }
    }

    private static string Pem(byte[] bytes) => System.Text.Encoding.ASCII.GetString(bytes).Trim();

    private async Task<string> SaveAsync(byte[] content, string name)
    {
        var path = Path.Combine(cluster.WorkDirectory, $"{Guid.NewGuid().ToString("N")[..6]}-{name}");
        await File.WriteAllBytesAsync(path, content);
        return path;
    }

    private Follower StartFollow(string kubeconfig, string ns, string name)
    {
        var lines = Path.Combine(cluster.WorkDirectory, $"{name}-{Guid.NewGuid().ToString("N")[..6]}.tcpdump");
        File.WriteAllText(lines, "");
        var start = new System.Diagnostics.ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in new[] { "-c", "set -o pipefail; \"$0\" --kubeconfig \"$1\" -n \"$2\" follow \"$3\" | tcpdump -nn -l -r - > \"$4\"", KubectlPlugin.KubectlCaptureCluster.Binary, kubeconfig, ns, name, lines })
        {
            start.ArgumentList.Add(a);
        }

        return new Follower(System.Diagnostics.Process.Start(start)!, lines);
    }

    /// <summary>SYNs to port 8080 in tcpdump's lines.</summary>
    private static int Syns(string tcpdumpLines) => tcpdumpLines.Split('\n').Count(l => l.Contains(".8080: Flags [S]", StringComparison.Ordinal));

    private static async Task WaitForFileAsync(string path, Func<string, bool> done, string what, Follower writer)
    {
        try
        {
            await RealNodeCluster.WaitForAsync(what, async () => done(await File.ReadAllTextAsync(path)) ? path : null, Long);
        }
        catch (TimeoutException e)
        {
            var state = writer.Process.HasExited ? $"exited {writer.Process.ExitCode}" : "runs";
            throw new TimeoutException($"{e.Message}; the follower {state} saying {writer.Said}; {path} holds:\n{await File.ReadAllTextAsync(path)}", e);
        }
    }

    /// <summary>The test's namespace and web pod, the operator pod taken away and the one that replaced it.</summary>
    private sealed record Replaced(string Namespace, string Web, V1Pod Old, V1Pod Replacement);

    /// <summary><c>kubectl capture follow | tcpdump -nn -l -r -</c> running, tcpdump's lines in a file, what the two say on stderr as it comes.</summary>
    private sealed class Follower
    {
        private readonly StringBuilder said = new();

        public Follower(System.Diagnostics.Process process, string lines)
        {
            Process = process;
            Lines = lines;
            process.ErrorDataReceived += (_, e) =>
            {
                lock (said)
                {
                    said.AppendLine(e.Data);
                }
            };
            process.BeginErrorReadLine();
        }

        public System.Diagnostics.Process Process { get; }

        public string Lines { get; }

        public string Said
        {
            get
            {
                lock (said)
                {
                    return said.ToString();
                }
            }
        }

        public async Task<int> ExitAsync()
        {
            using var patience = new CancellationTokenSource(Long);
            await Process.WaitForExitAsync(patience.Token);
            return Process.ExitCode;
        }
    }
}
