using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Custody;

/// <summary>
/// The chain of custody on the real kube-apiserver: the operator (as its ServiceAccount) keeps its
/// signing key in a Secret of its namespace and publishes the public key in a ConfigMap; the
/// manifest stored beside the pcap records who asked (the admission stamp), the pod, the agent image, the reason and the spec, and
/// verifies with the published key.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class ChainOfCustodyEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task The_stored_manifest_records_the_stamped_requester_pod_image_reason_and_spec_and_verifies_with_the_key_published_in_the_ConfigMap()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-custody");
        await cluster.BindAsync(ns, "alice", $"{KubeCaptureInstall.Release}-kubecapture-edit");
        using var alice = cluster.Install.Server.Client(KubeApiServer.UserToken("alice"));
        var network = await cluster.StartPodAsync(ns, "ledger-0");
        var spec = new PacketCaptureSpec
        {
            Reason = "audit: ledger latency",
            Target = new CaptureTarget { PodName = "ledger-0" },
            Filter = "icmp",
            MaxPackets = 4,
            Duration = "60s",
            Snaplen = 96,
        };
        var created = await cluster.StartCaptureAsync(ns, "audited", spec, Long, pods: ["ledger-0"], requester: alice);
        network.PingFromClient(2);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "audited", CapturePhase.Succeeded, Long);

        var artifact = Assert.Single(done.Status!.Targets).Artifact!;
        var pcap = await cluster.DownloadAsync(artifact);
        var manifestPath = await cluster.DownloadAsync(artifact.Uri[..^".pcap".Length] + ".manifest.json", ".manifest.json");
        var manifest = StorageJsonContext.ReadManifest(File.ReadAllBytes(manifestPath));
        var pod = await cluster.Admin.CoreV1.ReadNamespacedPodAsync("ledger-0", ns);
        var container = Assert.Single(await cluster.CaptureContainersAsync(ns, "ledger-0"));
        Assert.Equal("alice", manifest.Requester!.Username);
        Assert.Equal("alice-uid", manifest.Requester.Uid);
        Assert.Equal(["kcapi-users", "system:authenticated"], manifest.Requester.Groups);
        Assert.Equal(pod.Metadata.Uid, manifest.TargetPod!.Uid);
        Assert.Equal(pod.Spec.NodeName, manifest.TargetPod.Node);
        Assert.Equal(pod.Status.PodIPs.Select(p => p.Ip), manifest.TargetPod.Ips);
        Assert.Equal(container.Image, manifest.AgentImage);
        Assert.Equal("audit: ledger latency", manifest.Reason);
        Assert.Equal("icmp", manifest.Spec!.Value.GetProperty("filter").GetString());
        Assert.Equal(96, manifest.Spec.Value.GetProperty("snaplen").GetInt32());
        Assert.Equal(artifact.Sha256, manifest.Sha256);
        Assert.Equal(artifact.Sha256, manifest.AgentSha256);
        Assert.Equal(4, manifest.Agent!.PacketsWritten);
        Assert.NotNull(manifest.Agent.Start);

        var published = await cluster.Admin.CoreV1.ReadNamespacedConfigMapAsync(SecretSigningKey.Name, KubeCaptureInstall.Namespace);
        var secret = await cluster.Admin.CoreV1.ReadNamespacedSecretAsync(SecretSigningKey.Name, KubeCaptureInstall.Namespace);
        Assert.True(secret.Data.ContainsKey(SecretSigningKey.PrivateKeyEntry));
        var publicKey = Path.Combine(cluster.WorkDirectory, $"{ns}.pub");
        File.WriteAllText(publicKey, published.Data[SecretSigningKey.PublicKeyEntry]);
        var verified = await AgentProcess.RunAsync(null, ["verify", pcap, manifestPath, "--public-key", publicKey]);
        Assert.True(verified.ExitCode == 0, verified.Stdout + verified.Stderr + cluster.OperatorLog());
        Assert.Contains($"by key {published.Data[SecretSigningKey.KeyIdEntry]}", verified.Stdout, StringComparison.Ordinal);
        Assert.Contains("reason: audit: ledger latency", verified.Stdout, StringComparison.Ordinal);
        Assert.Contains("requested by: alice (uid alice-uid; groups kcapi-users, system:authenticated)\n", verified.Stdout, StringComparison.Ordinal);
    }
}
