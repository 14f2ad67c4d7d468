using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Operator.Tests.Chart;

/// <summary>
/// <c>helm upgrade</c> on the real kube-apiserver while a capture runs: the chart rendered again with
/// a changed value and applied over the install, then a rollout of its one operator process: it gets
/// SIGTERM and exits, and the new pod's process starts with the upgraded Deployment's environment and a
/// pod name of its own, and takes the Lease over. The chart's strategy with S3 is a rolling update
/// that starts the new pod and waits for it to be ready before the old one gets SIGTERM (maxSurge 1,
/// maxUnavailable 0); this test runs one process at a time, so it plays the harder order, with no
/// operator for a moment (the agent holds its bytes). The rolling update with both replicas running
/// is <see cref="ReplicasEndToEndTests"/>' TERM case.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class ChartUpgradeEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task A_capture_running_across_helm_upgrade_and_the_operator_rollout_Succeeds_with_every_packet_stored_once_by_the_new_operator()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-e2e-upgrade");
        var pod = await cluster.StartPodAsync(ns, "api");
        var deployment = $"{KubeCaptureInstall.Release}-kubecapture";
        var before = await DeploymentEnvironmentAsync(deployment);
        var secret = $"{deployment}-serving-certificate";
        var authority = (await cluster.Admin.CoreV1.ReadNamespacedSecretAsync(secret, KubeCaptureInstall.Namespace)).Data["ca.crt"];

        var created = await cluster.StartCaptureAsync(ns, "across-upgrade", PacketCaptureEndToEndTests.Icmp("across an upgrade", "api", maxPackets: 18, duration: "5m"), Long);
        pod.PingFromClient(3); // 6 packets streamed to the old operator
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "across-upgrade", c => c.Status?.Targets.SingleOrDefault()?.Packets >= 6, Long);
        await cluster.Install.UpgradeAsync("policy.maxDuration=30m");
        var upgraded = await DeploymentEnvironmentAsync(deployment);
        var changed = upgraded.Where(e => !before.TryGetValue(e.Key, out var old) || old != e.Value).ToDictionary();
        Assert.Equal(new Dictionary<string, string> { ["Policy__MaxDuration"] = "30m" }, changed);

        // The rollout, one process at a time: SIGTERM first, then the new pod; 6 packets while no operator runs, 6 after.
        var newPod = $"{deployment}-upgraded-{Environment.ProcessId}";
        var started = DateTime.UtcNow;
        var exit = await cluster.Operator.RollOutAsync(
            new Dictionary<string, string> { ["LeaderElection:Identity"] = newPod },
            new Dictionary<string, string>(changed) { ["POD_NAME"] = newPod },
            grace: TimeSpan.FromSeconds(60),
            whileNoneRuns: () => pod.PingFromClient(3));
        var rolledOut = DateTime.UtcNow - started;
        pod.PingFromClient(3);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "across-upgrade", CapturePhase.Succeeded, Long);

        Assert.True(exit == 0, $"the old operator exited {exit} on SIGTERM:\n{cluster.Operator.PreviousOutput}");
        Assert.True(rolledOut < TimeSpan.FromSeconds(15), $"the old operator took {rolledOut.TotalSeconds:0.#} s to exit on SIGTERM (its streams must not hold the rollout)");
        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal((18L, "count"), (target.Packets, target.StopReason));
        var downloaded = await cluster.DownloadAsync(target.Artifact!);
        Assert.Equal(Evidence.Sha256Of(downloaded), target.Artifact!.Sha256);
        Assert.Equal(new FileInfo(downloaded).Length, target.Artifact.Size);
        var lines = Evidence.TcpdumpLines(downloaded);
        Assert.Equal(18, lines.Count);
        Assert.Equal(18, lines.Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        Assert.Equal(18, (await Tshark.FieldsAsync(downloaded, ["frame.number"], "icmp")).Count);
        // What the running agent depends on is unchanged: the CA it was given still signs what the new operator serves.
        Assert.Equal(authority, (await cluster.Admin.CoreV1.ReadNamespacedSecretAsync(secret, KubeCaptureInstall.Namespace)).Data["ca.crt"]);
        var container = Assert.Single(await cluster.CaptureContainersAsync(ns, "api"));
        Assert.Equal(EphemeralContainerSpec.ContainerName(created.Metadata.Uid), container.Name);
        // The new operator leads, and it is the one that stored the pcap and wrote the final status.
        var lease = await cluster.Admin.CoordinationV1.ReadNamespacedLeaseAsync($"kubecapture-e2e-{Environment.ProcessId}", KubeCaptureInstall.Namespace);
        Assert.Equal(newPod, lease.Spec.HolderIdentity);
        var audit = await cluster.WaitForAuditAsync(created.Metadata.Uid, "stored");
        Assert.Single(audit, l => l.GetProperty("event").GetString() == "stored");

        // The upgraded value is in force: a capture longer than the new ceiling is refused, through the webhooks as before.
        await cluster.Admin.CreatePacketCaptureAsync(ns, "too-long", PacketCaptureEndToEndTests.Icmp("longer than the upgraded policy", "api", duration: "45m"));
        var refused = await cluster.Admin.WaitForPhaseAsync(ns, "too-long", CapturePhase.Failed, Long);
        var accepted = CaptureConditions.Find(refused.Status, CaptureConditions.Accepted)!;
        Assert.Equal(("False", "PolicyExceeded"), (accepted.Status, accepted.Reason));
        Assert.EndsWith("the policy's maximum 30m", accepted.Message, StringComparison.Ordinal);
    }

    /// <summary>The operator container's env with literal values, as the server holds the Deployment.</summary>
    private async Task<Dictionary<string, string>> DeploymentEnvironmentAsync(string name)
    {
        var deployment = await cluster.Admin.AppsV1.ReadNamespacedDeploymentAsync(name, KubeCaptureInstall.Namespace);
        return deployment.Spec.Template.Spec.Containers.Single(c => c.Name == "operator").Env
            .Where(e => e.Value is not null)
            .ToDictionary(e => e.Name, e => e.Value);
    }
}
