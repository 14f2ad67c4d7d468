using k8s;
using k8s.Models;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// An <see cref="ApiServerCluster"/> whose operator runs with Ingest:TokenDelivery PodSpec, what Auto
/// chooses before Kubernetes 1.33 (kubernetes/kubernetes#114984), on a kube-apiserver of its own (one
/// operator per server reconciles captures).
/// </summary>
public sealed class PodSpecTokenCluster : OwnApiServerCluster
{
    protected override string TokenDelivery => "PodSpec";
}

/// <summary>
/// With the token in the pod spec (PodSpec, Auto before 1.33), a <c>view</c> user reads it, and the
/// ingest's other protections still hold on the real kube-apiserver, operator and agent: an upload
/// from any address but the target pod's is refused, a second session from the pod while the agent
/// holds the upload is refused, and a forged session that wins the race is contested, never clean.
/// </summary>
public sealed class PodSpecTokenTests(PodSpecTokenCluster cluster) : IClassFixture<PodSpecTokenCluster>
{
    private const string User = "mallory";
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task A_view_user_reads_the_token_in_the_pod_spec_but_neither_from_another_address_nor_from_the_pod_can_it_take_the_upload_and_the_capture_Succeeds()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-podspec-view");
        var pod = await cluster.StartPodAsync(ns, "api");
        var attacker = cluster.CreateNodeReachingNetwork();
        await BindAsync(ns, "system:aggregate-to-view");
        using var mallory = cluster.Install.Server.Client(KubeApiServer.UserToken(User));

        var created = await cluster.StartCaptureAsync(ns, "evidence", PacketCaptureEndToEndTests.Icmp("the token in the spec", "api", maxPackets: 8), Long);
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "evidence", c => c.Status?.Targets.FirstOrDefault()?.Message == "capturing and streaming", Long); // the agent holds the upload
        var spec = await mallory.CoreV1.ReadNamespacedPodAsync("api", ns);
        var env = spec.Spec.EphemeralContainers.Single(c => c.Name == EphemeralContainerSpec.ContainerName(created.Metadata.Uid)).Env.Single(e => e.Name == EphemeralContainerSpec.TokenVariable);
        var (args, token) = await ForgedUpload.ReadAsync(mallory, ns, "api", created.Metadata.Uid);
        var (outsideExit, outside) = await ForgedUpload.RunAgentAsync(attacker.PodNamespace, OperatorHarness.AgentDll(), ForgedUpload.WithOptions(args, ("--duration", "3s")), token);
        var (insideExit, inside) = await ForgedUpload.RunAgentAsync(pod.PodNamespace, OperatorHarness.AgentDll(), ForgedUpload.WithOptions(args, ("--duration", "3s")), token);
        pod.PingFromClient(4);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "evidence", CapturePhase.Succeeded, Long);
        var secrets = await cluster.Admin.CoreV1.ListNamespacedSecretAsync(ns, labelSelector: $"{UploadTokenSecret.CaptureUidLabel}={created.Metadata.Uid}");

        Assert.Equal(token, env.Value); // PodSpec: a literal, readable by view
        Assert.Null(env.ValueFrom);
        Assert.Empty(secrets.Items); // no Secret made
        Assert.Equal(1, outsideExit);
        Assert.Contains($"it comes from {attacker.NodeLinkAddress}, but the pod's addresses are {pod.NodeLinkAddress} (status.podIPs)", outside, StringComparison.Ordinal);
        Assert.Equal(1, insideExit);
        Assert.Contains("another agent session holds this target's upload", inside, StringComparison.Ordinal);
        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal((8L, "count"), (target.Packets, target.StopReason));
        Assert.True(target.RefusedUploads >= 2, $"refused uploads: {target.RefusedUploads}");
        Assert.Null(CaptureConditions.Find(done.Status, CaptureConditions.Contested));
        Assert.Equal(8, Evidence.TcpdumpLines(await cluster.DownloadAsync(target.Artifact!)).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal) && l.Contains(pod.PodAddress, StringComparison.Ordinal)));
    }

    [SkippableFact]
    public async Task A_forged_upload_with_the_token_from_the_spec_that_wins_the_race_is_contested_never_clean_evidence()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-podspec-race");
        var pod = await cluster.StartPodAsync(ns, "api");
        await BindAsync(ns, "system:aggregate-to-view");
        using var mallory = cluster.Install.Server.Client(KubeApiServer.UserToken(User));
        cluster.Kubelet.HoldContainersOf(ns, "api"); // the agent's image is still being pulled, say

        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, "raced", PacketCaptureEndToEndTests.Icmp("the token in the spec", "api", maxPackets: 8));
        var (args, token) = await ReadWhenInjectedAsync(mallory, ns, "api", created.Metadata.Uid);
        var forging = ForgedUpload.RunAgentAsync(pod.PodNamespace, OperatorHarness.AgentDll(), ForgedUpload.WithOptions(args, ("-c", "2")), token);
        while (!forging.IsCompleted)
        {
            pod.PingFromClient(1);
            await Task.WhenAny(forging, Task.Delay(500));
        }

        var (exit, output) = await forging;
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "raced", c => c.Status?.Targets.FirstOrDefault()?.Artifact is not null, Long);
        cluster.Kubelet.ReleaseContainersOf(ns, "api"); // the capture agent starts now, second
        var failed = await cluster.Admin.WaitForPhaseAsync(ns, "raced", CapturePhase.Failed, Long);

        Assert.True(exit == 0, output);
        var target = Assert.Single(failed.Status!.Targets);
        Assert.Equal((TargetState.Failed, CaptureConditions.UploadContested), (target.State, target.Reason));
        Assert.True(target.Artifact!.Contested);
        Assert.Equal("True", CaptureConditions.Find(failed.Status, CaptureConditions.Contested)!.Status);
        Assert.Contains("contested", (await cluster.WaitForAuditAsync(created.Metadata.Uid, "contested")).Select(l => l.GetProperty("event").GetString()));
    }

    private Task BindAsync(string ns, string clusterRole) => ForgedUpload.BindAsync(cluster.Admin, ns, User, clusterRole);

    private static async Task<(IReadOnlyList<string> Args, string Token)> ReadWhenInjectedAsync(IKubernetes client, string ns, string pod, string captureUid)
    {
        for (var attempt = 0; ; attempt++)
        {
            var spec = await client.CoreV1.ReadNamespacedPodAsync(pod, ns);
            if (spec.Spec.EphemeralContainers?.Any(c => c.Name == EphemeralContainerSpec.ContainerName(captureUid)) == true)
            {
                return await ForgedUpload.ReadAsync(client, ns, pod, captureUid);
            }

            if (attempt > 180)
            {
                throw new TimeoutException($"the capture container was not added to {ns}/{pod}");
            }

            await Task.Delay(500);
        }
    }
}
