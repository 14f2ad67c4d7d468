using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// The attacks on the evidence that a user with ordinary namespace rights can run (issue 20, 1), each
/// performed on the real kube-apiserver against the real operator, ingest and agent image: reading
/// the upload token as <c>view</c>; with <c>edit</c> (who may read Secrets and exec into pods), running
/// the real agent inside the target pod's network namespace (its own process: its own session) to
/// take over the upload, to win the race before the capture agent connects, to upload for a target
/// that has ended, and to claim a longer retention and more bytes than the capture allows.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class EvidenceForgeryTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task A_view_user_finds_no_upload_token_in_the_pod_spec_and_may_not_read_the_Secret_that_holds_it()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-forge-view");
        await cluster.StartPodAsync(ns, "api");
        await BindAsync(ns, "system:aggregate-to-view"); // what the built-in view role aggregates
        using var mallory = cluster.Install.Server.Client(KubeApiServer.UserToken(User));

        var created = await cluster.StartCaptureAsync(ns, "quiet", PacketCaptureEndToEndTests.Icmp("who reads the token?", "api", duration: "5m"), Long);
        var pod = await mallory.CoreV1.ReadNamespacedPodAsync("api", ns);
        var container = pod.Spec.EphemeralContainers.Single(c => c.Name == EphemeralContainerSpec.ContainerName(created.Metadata.Uid));
        var token = container.Env.Single(e => e.Name == EphemeralContainerSpec.TokenVariable);
        var denied = await Assert.ThrowsAsync<HttpOperationException>(() => mallory.CoreV1.ReadNamespacedSecretAsync(token.ValueFrom.SecretKeyRef.Name, ns));
        await cluster.Admin.StopPacketCaptureAsync(ns, "quiet");

        Assert.Null(token.Value);
        Assert.DoesNotContain(KubernetesJson.Serialize(pod), (await ForgedUpload.ReadAsync(cluster.Admin, ns, "api", created.Metadata.Uid)).Token, StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, denied.Response.StatusCode);
        var secret = await cluster.Admin.CoreV1.ReadNamespacedSecretAsync(token.ValueFrom.SecretKeyRef.Name, ns);
        var owner = Assert.Single(secret.Metadata.OwnerReferences);
        Assert.Equal((PacketCapture.KindName, "quiet", created.Metadata.Uid), (owner.Kind, owner.Name, owner.Uid)); // deleted with the capture (garbage collection)
    }

    [SkippableFact]
    public async Task Code_in_the_target_pod_with_the_token_cannot_take_over_the_upload_and_the_real_capture_Succeeds_with_the_real_packets()
    {
        var (ns, pod, mallory) = await EditorsPodAsync("kc-forge-takeover");
        using var _ = mallory;

        var created = await cluster.StartCaptureAsync(ns, "evidence", PacketCaptureEndToEndTests.Icmp("evidence under attack", "api", maxPackets: 8), Long);
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "evidence", c => c.Status?.Targets.FirstOrDefault()?.Message == "capturing and streaming", Long); // the agent holds the upload
        var (args, token) = await ForgedUpload.ReadAsync(mallory, ns, "api", created.Metadata.Uid);
        var (exit, output) = await ForgedUpload.RunAgentAsync(pod.PodNamespace, OperatorHarness.AgentDll(), ForgedUpload.WithOptions(args, ("--duration", "3s")), token);
        pod.PingFromClient(4);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "evidence", CapturePhase.Succeeded, Long);

        Assert.Equal(1, exit);
        Assert.Contains("the ingest refused the upload (AlreadyExists): upload for capture", output, StringComparison.Ordinal);
        Assert.Contains("another agent session holds this target's upload", output, StringComparison.Ordinal);
        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal((8L, "count", 1L, 1L), (target.Packets, target.StopReason, target.RefusedUploads, target.RefusedSessions));
        var downloaded = await cluster.DownloadAsync(target.Artifact!);
        Assert.Equal(Evidence.Sha256Of(downloaded), target.Artifact!.Sha256);
        Assert.Equal(8, Evidence.TcpdumpLines(downloaded).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal) && l.Contains(pod.PodAddress, StringComparison.Ordinal)));
        Assert.DoesNotContain("upload interrupted", cluster.Kubelet.Stderr(ns, "api", container), StringComparison.Ordinal); // never taken over
        Assert.Null(CaptureConditions.Find(done.Status, CaptureConditions.Contested));
        Assert.Single(await ForgedUpload.RefusalEventsAsync(cluster.Admin, ns, "evidence"));
    }

    [SkippableFact]
    public async Task A_forged_upload_that_wins_the_race_before_the_agent_connects_is_never_clean_evidence_and_keeps_the_captures_retention()
    {
        var (ns, pod, mallory) = await EditorsPodAsync("kc-forge-race");
        using var _ = mallory;
        cluster.Kubelet.HoldContainersOf(ns, "api"); // the agent's image is still being pulled, say

        var spec = PacketCaptureEndToEndTests.Icmp("evidence under attack", "api", maxPackets: 8);
        spec.Retention = new CaptureRetention { Ttl = "1h" };
        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, "raced", spec);
        var (args, token) = await ReadWhenInjectedAsync(mallory, ns, "api", created.Metadata.Uid);
        var forging = ForgedUpload.RunAgentAsync(pod.PodNamespace, OperatorHarness.AgentDll(), ForgedUpload.WithOptions(args, ("-c", "2"), ("--retention", "876000h")), token);
        await WaitForAsync(() => pod.PingFromClient(1), forging);
        var (exit, output) = await forging;
        var stored = await cluster.Admin.WaitForPacketCaptureAsync(ns, "raced", c => c.Status?.Targets.FirstOrDefault()?.Artifact is not null, Long);
        cluster.Kubelet.ReleaseContainersOf(ns, "api"); // the capture agent starts now, second
        var failed = await cluster.Admin.WaitForPhaseAsync(ns, "raced", CapturePhase.Failed, Long);

        Assert.True(exit == 0, output);
        Assert.NotEqual(CapturePhase.Succeeded, stored.Status!.Phase); // stored, but not the agent's: never reported as a success
        var target = Assert.Single(failed.Status!.Targets);
        Assert.Equal((TargetState.Failed, CaptureConditions.UploadContested), (target.State, target.Reason));
        Assert.Contains("its capture agent did not upload it", target.Message, StringComparison.Ordinal);
        Assert.True(target.Artifact!.Contested);
        var contested = CaptureConditions.Find(failed.Status, CaptureConditions.Contested)!;
        Assert.Equal(("True", CaptureConditions.UploadContested), (contested.Status, contested.Reason));
        Assert.Equal(1L, target.RefusedSessions); // the capture agent was refused
        Assert.Contains("another agent session holds this target's upload", cluster.Kubelet.Stderr(ns, "api", EphemeralContainerSpec.ContainerName(created.Metadata.Uid)), StringComparison.Ordinal);
        Assert.Single(await ForgedUpload.WarningsAsync(cluster.Admin, ns, "raced", CaptureConditions.UploadContested));
        var audit = await cluster.WaitForAuditAsync(created.Metadata.Uid, "contested");
        var line = audit.Single(l => l.GetProperty("event").GetString() == "contested");
        Assert.Equal(("api", target.Artifact.Sha256), (line.GetProperty("pod").GetString(), line.GetProperty("artifact").GetProperty("sha256").GetString()));

        // The manifest says so, signed; and the retention is the capture's hour, not the forger's century.
        var manifestPath = await cluster.DownloadAsync(target.Artifact.Uri.Replace(".pcap", ".manifest.json", StringComparison.Ordinal), ".json");
        var manifest = StorageJsonContext.ReadManifest(await File.ReadAllBytesAsync(manifestPath));
        Assert.Contains("its capture agent did not upload it", manifest.Contested!.Message, StringComparison.Ordinal);
        Assert.InRange(manifest.ExpiresAt!.Value, manifest.StoredAt.AddHours(1).AddMinutes(-5), manifest.StoredAt.AddHours(1));
        var verify = await AgentProcess.RunAsync(null, ["verify", await cluster.DownloadAsync(target.Artifact), manifestPath]);
        Assert.Equal(KubeCapture.Agent.Cli.VerifyCommand.Contested, verify.ExitCode);
        Assert.Contains("CONTESTED: the manifest records that this pcap did not come from the target's capture agent", verify.Stderr, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_target_that_ended_accepts_no_upload_from_its_pod_and_the_attempt_is_counted()
    {
        var (ns, pod, mallory) = await EditorsPodAsync("kc-forge-ended");
        using var _ = mallory;

        var spec = PacketCaptureEndToEndTests.Icmp("a typo in the interface", "api");
        spec.Interface = "nosuch0";
        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, "typo", spec);
        var failed = await cluster.Admin.WaitForPhaseAsync(ns, "typo", CapturePhase.Failed, Long);
        var (args, token) = await ForgedUpload.ReadAsync(mallory, ns, "api", created.Metadata.Uid);
        var forging = ForgedUpload.RunAgentAsync(pod.PodNamespace, OperatorHarness.AgentDll(), ForgedUpload.WithOptions(args, ("-i", "any"), ("-c", "2")), token);
        await WaitForAsync(() => pod.PingFromClient(1), forging);
        var (exit, output) = await forging;
        var counted = await cluster.Admin.WaitForPacketCaptureAsync(ns, "typo", c => ForgedUpload.RefusedUploads(c, "api") == 1, Long);

        Assert.Equal("AgentCrashed", Assert.Single(failed.Status!.Targets).Reason);
        Assert.Equal(1, exit);
        Assert.Contains("the capture of pod api has ended (Failed: AgentCrashed): no upload is accepted for it any more", output, StringComparison.Ordinal);
        var target = Assert.Single(counted.Status!.Targets);
        Assert.Null(target.Artifact);
        Assert.Equal(CapturePhase.Failed, counted.Status.Phase);
        Assert.Null(cluster.S3.ObjectPath($"captures/{ns}/typo/api.pcap"));
        Assert.Null(cluster.S3.ObjectPath($"captures/.ingest/{ns}/typo/api.json"));
        Assert.Single(await ForgedUpload.RefusalEventsAsync(cluster.Admin, ns, "typo"));
    }

    [SkippableFact]
    public async Task The_ingest_takes_no_byte_past_the_captures_maxBytes_whatever_the_forged_agent_was_told()
    {
        var (ns, pod, mallory) = await EditorsPodAsync("kc-forge-bytes");
        using var _ = mallory;
        cluster.Kubelet.HoldContainersOf(ns, "api");

        var spec = PacketCaptureEndToEndTests.Icmp("a small capture", "api");
        spec.MaxBytes = "64Ki";
        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, "small", spec);
        var (args, token) = await ReadWhenInjectedAsync(mallory, ns, "api", created.Metadata.Uid);
        var forging = ForgedUpload.RunAgentAsync(pod.PodNamespace, OperatorHarness.AgentDll(), ForgedUpload.WithOptions(args, ("--max-bytes", "10MiB"), ("-s", "0")), token);
        await WaitForAsync(() => pod.PingFromClient(20, size: 1400, interval: 0.01), forging);
        var (exit, output) = await forging;
        cluster.Kubelet.ReleaseContainersOf(ns, "api");
        var failed = await cluster.Admin.WaitForPhaseAsync(ns, "small", CapturePhase.Failed, Long);

        Assert.Equal(1, exit);
        Assert.Contains("past the capture's maxBytes of 65536 bytes: the ingest stores no byte beyond it", output, StringComparison.Ordinal);
        Assert.Null(cluster.S3.ObjectPath($"captures/{ns}/small/api.pcap"));
        Assert.Equal(CaptureConditions.UploadContested, Assert.Single(failed.Status!.Targets).Reason); // and the agent, second, was refused
    }

    private const string User = "mallory";

    /// <summary>Binds <see cref="User"/> to a ClusterRole in the namespace (the aggregated parts of view/edit: no controller aggregates them here).</summary>
    private Task BindAsync(string ns, string clusterRole) => ForgedUpload.BindAsync(cluster.Admin, ns, User, clusterRole);

    /// <summary>
    /// A namespace with a Running pod "api", where <see cref="User"/> has what the built-in edit role
    /// grants (its own aggregated rules and view's: view carries the aggregate-to-edit label), and
    /// a client as that user.
    /// </summary>
    private async Task<(string Namespace, PodNetwork Pod, IKubernetes User)> EditorsPodAsync(string prefix)
    {
        var ns = await cluster.CreateNamespaceAsync(prefix);
        var pod = await cluster.StartPodAsync(ns, "api");
        await BindAsync(ns, "system:aggregate-to-edit");
        await BindAsync(ns, "system:aggregate-to-view");
        return (ns, pod, cluster.Install.Server.Client(KubeApiServer.UserToken(User)));
    }

    /// <summary>The capture container's args and token, as soon as the operator has added it to the pod.</summary>
    private static async Task<(IReadOnlyList<string> Args, string Token)> ReadWhenInjectedAsync(IKubernetes client, string ns, string pod, string captureUid)
    {
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            var spec = await client.CoreV1.ReadNamespacedPodAsync(pod, ns);
            if (spec.Spec.EphemeralContainers?.Any(c => c.Name == EphemeralContainerSpec.ContainerName(captureUid)) == true)
            {
                return await ForgedUpload.ReadAsync(client, ns, pod, captureUid);
            }

            Assert.True(DateTime.UtcNow < deadline, "the capture container was never added");
            await Task.Delay(100);
        }
    }

    /// <summary>Sends traffic (<paramref name="send"/>) until the forging agent ends: it needs a moment to start capturing.</summary>
    private static async Task WaitForAsync(Action send, Task forging)
    {
        var deadline = DateTime.UtcNow + Long;
        while (!forging.IsCompleted)
        {
            Assert.True(DateTime.UtcNow < deadline, "the forging agent never ended");
            send();
            await Task.WhenAny(forging, Task.Delay(200));
        }
    }
}
