using System.Globalization;
using k8s;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Subresources;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Pcap;
using KubeCapture.Testing.Processes;
using KubeCapture.Testing.S3;
using Minio;
using Minio.DataModel.Args;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// Two operator processes, replica-a and replica-b, on a kube-apiserver of their own, each with the
/// chart's RBAC, sharing the leader Lease, the token key Secret and the serving certificate Secret.
/// Each serves its ingest on a port of its own of the node address; the agents are given the
/// Service's port, which nftables DNATs to one replica's port in the node's namespace, as kube-proxy
/// does for a Service's endpoint (the pod's source address is kept, so the ingest's binding to the
/// pod address holds). Moving the rule is what kube-proxy does when an endpoint goes.
/// Both serve the extension API, each on a port of its own; the chart's subresources Service has
/// hand-written Endpoints naming one replica's port, the one kube-apiserver's aggregation reaches.
/// </summary>
public sealed class TwoReplicaCluster : OwnApiServerCluster
{
    private readonly string table = $"kc-svc-{Environment.ProcessId}";
    private Dictionary<string, string> settingsA = [];
    private string address = "";

    public int ServicePort { get; } = S3rverFixture.FreeTcpPort();

    public int PortA { get; } = S3rverFixture.FreeTcpPort();

    public int PortB { get; } = S3rverFixture.FreeTcpPort();

    public int ExtensionPortA { get; } = S3rverFixture.FreeTcpPort();

    public int ExtensionPortB { get; } = S3rverFixture.FreeTcpPort();

    public OperatorHost ReplicaB { get; private set; } = null!;

    /// <summary>The replica the Service sends new connections to.</summary>
    public string Endpoint { get; private set; } = "replica-a";

    public OperatorHost Replica(string name) => name == "replica-a" ? Operator : ReplicaB;

    protected override string[] HelmSet => ["ingest.uploadLease.duration=6s", "ingest.uploadLease.renewDeadline=4s"];

    protected override Task ConfigureAsync(Dictionary<string, string> settings)
    {
        var ingest = new Uri(settings["Reconciler:IngestUrl"]);
        address = ingest.Host;
        settings["Reconciler:IngestUrl"] = $"https://{address}:{ServicePort}";
        settings["Kestrel:Endpoints:Ingest:Url"] = $"https://{address}:{PortA}";
        settings["LeaderElection:Identity"] = "replica-a";
        settings["LeaderElection:LeaseName"] = "kubecapture-operator";
        // The upload Lease timings as the chart renders them (set as the fixture's leader Lease: 6 s, renewed within 4 s).
        settings["Ingest:UploadLeaseDuration"] = Install.OperatorSettings["Ingest:UploadLeaseDuration"];
        settings["Ingest:UploadLeaseRenewDeadline"] = Install.OperatorSettings["Ingest:UploadLeaseRenewDeadline"];
        ServeSubresources(settings, ExtensionPortA);
        settingsA = settings;
        return Task.CompletedTask;
    }

    protected override async Task StartedAsync()
    {
        await PointServiceToAsync("replica-a");
        var settings = new Dictionary<string, string>(settingsA)
        {
            ["Kestrel:Endpoints:Ingest:Url"] = $"https://{address}:{PortB}",
            ["LeaderElection:Identity"] = "replica-b",
            ["Subresources:Url"] = string.Create(CultureInfo.InvariantCulture, $"https://{HttpsAddress}:{ExtensionPortB}"),
            ["Admission:Url"] = string.Create(CultureInfo.InvariantCulture, $"https://{HttpsAddress}:{S3rverFixture.FreeTcpPort()}"),
        };
        ReplicaB = await OperatorHost.StartProcessAsync(settings, new Dictionary<string, string> { ["KUBECONFIG"] = Install.OperatorKubeconfig, ["POD_NAME"] = "replica-b" });
        await PointSubresourcesToAsync("replica-a");
        await WaitForSubresourcesAsync();
    }

    /// <summary>kube-apiserver's aggregation reaches <paramref name="replica"/>'s extension API (the Endpoints of the chart's subresources Service).</summary>
    public Task PointSubresourcesToAsync(string replica) =>
        PointServiceAsync(SubresourcesServiceName, "https", replica == "replica-a" ? ExtensionPortA : ExtensionPortB);

    /// <summary>New connections to the Service's port go to <paramref name="replica"/> (existing ones keep their conntrack entry, as with kube-proxy).</summary>
    public async Task PointServiceToAsync(string replica)
    {
        var port = replica == "replica-a" ? PortA : PortB;
        await HostCommand.RunAsync("nft", "delete", "table", "ip", table);
        var ruleset = $"table ip {table} {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat;\n    ip daddr {address} tcp dport {ServicePort} dnat to {address}:{port}\n  }}\n}}\n";
        (await HostCommand.RunAsync("nft", ["-f", "-"], stdin: ruleset)).EnsureSuccess();
        Endpoint = replica;
    }

    /// <summary>
    /// Cuts <paramref name="replica"/> off from its agents and from the other replica, as a partition
    /// does, until disposed: nftables (a table of its own) silently drops what reaches its ingest port
    /// and what it sends from it, and what reaches the other replica's relay port (the extension API's
    /// listener, which <paramref name="replica"/> dials for a relay; kube-apiserver's aggregation must
    /// then reach <paramref name="replica"/>, not the other). Both still reach kube-apiserver and storage.
    /// </summary>
    public async Task<IAsyncDisposable> PartitionAsync(string replica)
    {
        var (ingest, otherRelay) = replica == "replica-a" ? (PortA, ExtensionPortB) : (PortB, ExtensionPortA);
        var partition = $"kc-part-{Environment.ProcessId}";
        var ruleset = $"table ip {partition} {{\n" +
            $"  chain input {{\n    type filter hook input priority filter;\n    tcp dport {{ {ingest}, {otherRelay} }} drop\n  }}\n" +
            $"  chain output {{\n    type filter hook output priority filter;\n    tcp sport {{ {ingest}, {otherRelay} }} drop\n  }}\n}}\n";
        await HostCommand.RunAsync("nft", "delete", "table", "ip", partition);
        (await HostCommand.RunAsync("nft", ["-f", "-"], stdin: ruleset)).EnsureSuccess();
        return new Healed(partition);
    }

    private sealed class Healed(string table) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => (await HostCommand.RunAsync("nft", "delete", "table", "ip", table)).EnsureSuccess();
    }

    /// <summary>Both replicas' output, for audit lines and failure messages.</summary>
    public string Output => Operator.PreviousOutput + Operator.Output + ReplicaB.Output;

    public override async Task DisposeAsync()
    {
        await HostCommand.RunAsync("nft", "delete", "table", "ip", table);
        if (ReplicaB is not null)
        {
            await ReplicaB.DisposeAsync();
        }

        await base.DisposeAsync();
    }
}

/// <summary>Every replica ingests, the leader only reconciles: a stream survives its replica's death, and the leader need not be the replica that ingests.</summary>
public sealed class ReplicasEndToEndTests(TwoReplicaCluster cluster) : IClassFixture<TwoReplicaCluster>
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(150);

    /// <summary>
    /// KILL: the replica dies as an OOM kill does (no shutdown, no Lease released): the other takes the
    /// target once its upload Lease went silent. TERM: a rolling update's step (the new pod is ready,
    /// the old one gets SIGTERM): the old replica ends its streams and deletes their Leases first, so
    /// the agent's resume is never refused. A live follow through the other replica, relayed from the
    /// holder, breaks off at its last whole record when the holder goes (a valid pcap, the stored
    /// one's first bytes), and a follow again streams from the replica the agent resumed on.
    /// </summary>
    [SkippableTheory]
    [InlineData("KILL")]
    [InlineData("TERM")]
    public async Task When_the_replica_holding_a_stream_goes_mid_capture_the_agent_resumes_on_the_other_and_the_capture_Succeeds_stored_once_with_every_packet(string signal)
    {
        var ns = await cluster.CreateNamespaceAsync($"kc-ha-{signal.ToLowerInvariant()}");
        var pod = await cluster.StartPodAsync(ns, "api");
        var holder = cluster.Endpoint;
        var other = OtherThan(holder);
        var created = await cluster.StartCaptureAsync(ns, "through-a-death", PacketCaptureEndToEndTests.Icmp("a replica dies", "api", maxPackets: 30, duration: "5m"), Long);
        var target = new CaptureIdentity(created.Metadata.Uid, ns, "through-a-death", "api");
        await cluster.PointSubresourcesToAsync(other);
        await WaitForUploadHolderAsync(target, holder);
        var path = Subresources.SubresourcesCluster.PathOf(ns, "through-a-death", "follow");
        var (follow, followed) = cluster.StartKubectlRaw(cluster.Install.Server.AdminToken, path);
        await WaitUntilAsync(() => Task.FromResult(ReplicaOutput(holder).Contains($"relaying the live stream of {ns}/through-a-death pod api to replica {other}", StringComparison.Ordinal)), $"{holder} relays the stream to {other}");
        pod.PingFromClient(5); // 10 packets to the holder
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "through-a-death", c => c.Status?.Targets.SingleOrDefault()?.Packets >= 10, Long);
        await WaitUntilAsync(() => Task.FromResult(File.Exists(followed) && new FileInfo(followed).Length > 24), "the follower has a record relayed from the holder");

        // kube-proxy drops the going replica's endpoint; then it gets the signal.
        await cluster.PointServiceToAsync(other);
        var going = cluster.Replica(holder);
        if (signal == "KILL")
        {
            await going.KillAsync();
        }
        else
        {
            going.Process!.Signal("TERM");
            Assert.Equal(0, await going.Process.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        }

        // The relayed follow breaks off at its last whole record, as at kube-apiserver's request timeout.
        var (brokenExit, brokenError) = await follow;
        Assert.True(brokenExit != 0, $"kubectl get --raw .../follow exited 0 when the holder went: {brokenError}");
        Assert.Contains($"replica {holder} went away mid-relay after", ReplicaOutput(other), StringComparison.Ordinal);
        pod.PingFromClient(5); // 10 packets while the agent resumes on the other replica
        await WaitForUploadHolderAsync(target, other);
        // Following again (as kubectl capture follow does) streams from the replica the agent resumed on.
        var (again, followedAgain) = cluster.StartKubectlRaw(cluster.Install.Server.AdminToken, path);
        await WaitUntilAsync(() => Task.FromResult(ReplicaOutput(other).Split('\n').Any(l => l.Contains($"follow of {ns}/through-a-death pod api by admin", StringComparison.Ordinal) && l.EndsWith(": following this replica's ingest", StringComparison.Ordinal))), $"the second follow reached {other}'s ingest");
        pod.PingFromClient(5);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "through-a-death", CapturePhase.Succeeded, Long);
        var (againExit, againError) = await again;

        var stored = Assert.Single(done.Status!.Targets);
        Assert.Equal((30L, "count"), (stored.Packets, stored.StopReason));
        var downloaded = await cluster.DownloadAsync(stored.Artifact!);
        Assert.Equal(Evidence.Sha256Of(downloaded), stored.Artifact!.Sha256);
        Assert.Equal(30, Evidence.TcpdumpLines(downloaded).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        // What the broken follow wrote is the stored pcap's beginning, whole records only (tcpdump reads it to the end), the first 10 packets at least.
        var brokenOff = await File.ReadAllBytesAsync(followed);
        Assert.Equal((await File.ReadAllBytesAsync(downloaded))[..brokenOff.Length], brokenOff);
        Assert.InRange(Evidence.TcpdumpLines(followed).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)), 10, 30);
        Assert.True(againExit == 0, $"the second follow exited {againExit}: {againError}");
        Assert.InRange(Evidence.TcpdumpLines(followedAgain).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)), 10, 30);
        var key = stored.Artifact.Uri[$"s3://{cluster.S3.Bucket}/".Length..];
        Assert.Equal([key], (await ObjectKeysAsync(key[..(key.LastIndexOf('/') + 1)])).Where(k => k.EndsWith(".pcap", StringComparison.Ordinal)));
        Assert.Single(AuditLines(created.Metadata.Uid), l => l.Contains("\"event\":\"stored\"", StringComparison.Ordinal));
        Assert.Contains($"{ns}/through-a-death pod api: agent connected", ReplicaOutput(other), StringComparison.Ordinal);
        var refusedWhileHeld = ReplicaOutput(other).Split('\n').Any(l => l.Contains($"{ns}/through-a-death pod api: an upload from", StringComparison.Ordinal) && l.Contains($"waits: replica {holder} holds the upload", StringComparison.Ordinal));
        Assert.True(signal == "KILL" ? refusedWhileHeld : !refusedWhileHeld, $"{other} refused the agent's resume while {holder} held the Lease: {refusedWhileHeld}");
        await going.StartProcessAsync();
    }

    /// <summary>
    /// A partition between the replicas: the one holding a stream is cut off from its agent and from the
    /// other replica (nftables) but still reaches kube-apiserver, so it renews its upload Lease; the
    /// agent's retries land on the other replica (kube-proxy's choice), which refuses them while the
    /// Lease is held and writes the session's handover request into it. The holder reads it at its next
    /// renewal, ends its stream and releases the Lease (no takeover by expiry: there is never a second
    /// writer), and the other replica takes the target. A follow asked of the cut-off side then cannot reach the new
    /// holder, which renews its Lease: it is refused saying so, not left hanging. Once healed, the
    /// former holder writes nothing again: one stored object, one stored audit line, every packet.
    /// </summary>
    [SkippableFact]
    public async Task A_partition_cutting_the_holder_off_from_its_agent_and_the_other_replica_ends_with_one_writer_and_the_capture_Succeeds_with_every_packet()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-ha-partition");
        var pod = await cluster.StartPodAsync(ns, "api");
        var holder = cluster.Endpoint;
        var other = OtherThan(holder);
        await cluster.PointSubresourcesToAsync(holder); // kube-apiserver reaches the side that is cut off
        var created = await cluster.StartCaptureAsync(ns, "partitioned", PacketCaptureEndToEndTests.Icmp("a partition between the replicas", "api", maxPackets: 30, duration: "5m"), Long);
        var target = new CaptureIdentity(created.Metadata.Uid, ns, "partitioned", "api");
        await WaitForUploadHolderAsync(target, holder);
        pod.PingFromClient(5); // 10 packets to the holder
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "partitioned", c => c.Status?.Targets.SingleOrDefault()?.Packets >= 10, Long);

        await using (await cluster.PartitionAsync(holder))
        {
            await cluster.PointServiceToAsync(other);
            pod.PingFromClient(5); // 10 packets while cut off: the agent keeps them until a replica acknowledges them
            await WaitUntilAsync(() => Task.FromResult(ReplicaOutput(other).Contains($"{ns}/partitioned pod api: an upload from", StringComparison.Ordinal)
                && ReplicaOutput(other).Contains($"waits: replica {holder}", StringComparison.Ordinal)), $"{other} refuses the agent while {holder} holds the Lease");
            await WaitForUploadHolderAsync(target, other);

            var (followExit, followError, _) = await cluster.KubectlRawAsync(cluster.Install.Server.AdminToken, Subresources.SubresourcesCluster.PathOf(ns, "partitioned", "follow"));
            Assert.True(followExit != 0, "a follow through the cut-off replica succeeded");
            Assert.Contains($"replica {other} holds the live stream of pod api and renews its upload Lease, but replica {holder} has not reached it", followError, StringComparison.Ordinal);
            Assert.Contains("cut off from each other", followError, StringComparison.Ordinal);
        }

        pod.PingFromClient(5); // healed: 10 more, the capture's count
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "partitioned", CapturePhase.Succeeded, Long);

        var stored = Assert.Single(done.Status!.Targets);
        Assert.Equal((30L, "count"), (stored.Packets, stored.StopReason));
        var downloaded = await cluster.DownloadAsync(stored.Artifact!);
        Assert.Equal(Evidence.Sha256Of(downloaded), stored.Artifact!.Sha256);
        Assert.Equal(30, (await Tshark.FieldsAsync(downloaded, ["icmp.type"], "icmp")).Count);
        var key = stored.Artifact.Uri[$"s3://{cluster.S3.Bucket}/".Length..];
        Assert.Equal([key], (await ObjectKeysAsync(key[..(key.LastIndexOf('/') + 1)])).Where(k => k.EndsWith(".pcap", StringComparison.Ordinal)));
        Assert.Single(AuditLines(created.Metadata.Uid), l => l.Contains("\"event\":\"stored\"", StringComparison.Ordinal));
        var former = ReplicaOutput(holder).Split('\n').Where(l => l.Contains($"{ns}/partitioned pod api:", StringComparison.Ordinal)).ToList();
        var taker = ReplicaOutput(other).Split('\n').Where(l => l.Contains($"{ns}/partitioned pod api:", StringComparison.Ordinal)).ToList();
        // The holder let go when the agent's newer stream asked it to hand over (read at its next renewal), not because the Lease was taken from it; it never wrote again.
        Assert.Contains(former, l => l.Contains("a newer stream of the same agent session reached another replica: this one hands the upload over", StringComparison.Ordinal));
        Assert.DoesNotContain(former, l => l.Contains("stops writing the upload", StringComparison.Ordinal) || l.Contains(": stored ", StringComparison.Ordinal));
        Assert.Single(former, l => l.Contains("agent connected", StringComparison.Ordinal));
        Assert.DoesNotContain(taker, l => l.Contains("did not renew its Lease", StringComparison.Ordinal));
        Assert.Contains(taker, l => l.Contains(": stored ", StringComparison.Ordinal));
    }

    [SkippableFact]
    public async Task The_replica_that_does_not_lead_ingests_a_capture_the_leader_reconciles_to_Succeeded()
    {
        var leader = (await cluster.Admin.CoordinationV1.ReadNamespacedLeaseAsync("kubecapture-operator", KubeCaptureInstall.Namespace)).Spec.HolderIdentity;
        var ingesting = leader == "replica-a" ? "replica-b" : "replica-a";
        await cluster.PointServiceToAsync(ingesting);
        var ns = await cluster.CreateNamespaceAsync("kc-ha-split");
        var pod = await cluster.StartPodAsync(ns, "api");
        var created = await cluster.StartCaptureAsync(ns, "split", PacketCaptureEndToEndTests.Icmp("leader and ingest apart", "api", maxPackets: 12, duration: "5m"), Long);
        var target = new CaptureIdentity(created.Metadata.Uid, ns, "split", "api");

        pod.PingFromClient(3);
        await WaitForUploadHolderAsync(target, ingesting);
        // The leader shows the counts the ingesting replica writes into the upload Lease.
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "split", c => c.Status?.Targets.SingleOrDefault()?.Packets >= 6, Long);
        pod.PingFromClient(3);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "split", CapturePhase.Succeeded, Long);

        Assert.Equal(leader, (await cluster.Admin.CoordinationV1.ReadNamespacedLeaseAsync("kubecapture-operator", KubeCaptureInstall.Namespace)).Spec.HolderIdentity);
        var stored = Assert.Single(done.Status!.Targets);
        Assert.Equal((12L, "count"), (stored.Packets, stored.StopReason));
        Assert.Equal(Evidence.Sha256Of(await cluster.DownloadAsync(stored.Artifact!)), stored.Artifact!.Sha256);
        Assert.Contains($"{ns}/split pod api: stored", ReplicaOutput(ingesting), StringComparison.Ordinal);
        Assert.DoesNotContain($"{ns}/split pod api: agent connected", ReplicaOutput(leader!), StringComparison.Ordinal);
        // The stream ended: its upload Lease is gone.
        await WaitUntilAsync(async () => await HolderAsync(target) is null, "the upload Lease deleted after the stream");
    }

    /// <summary>
    /// A forged upload (the capture container's token replayed from outside the pod) refused by the
    /// replica that does not lead is in the capture's status and its Event, as one refused by the
    /// leader is: that replica writes it, and the leader does not count it again.
    /// </summary>
    [SkippableFact]
    public async Task An_upload_refused_by_the_replica_that_does_not_lead_is_counted_once_in_the_status_with_its_Event()
    {
        var leader = (await cluster.Admin.CoordinationV1.ReadNamespacedLeaseAsync("kubecapture-operator", KubeCaptureInstall.Namespace)).Spec.HolderIdentity;
        var follower = leader == "replica-a" ? "replica-b" : "replica-a";
        var ns = await cluster.CreateNamespaceAsync("kc-ha-refused");
        var pod = await cluster.StartPodAsync(ns, "api");
        var created = await cluster.StartCaptureAsync(ns, "forged", PacketCaptureEndToEndTests.Icmp("a forged upload at the replica that does not lead", "api", maxPackets: 6, duration: "5m"), Long);
        var attacker = cluster.CreateNodeReachingNetwork();

        await cluster.PointServiceToAsync(follower);
        var (exit, output) = await ForgedUpload.RunAsync(cluster.Admin, ns, "api", created.Metadata.Uid, attacker.PodNamespace, OperatorHarness.AgentDll());
        var counted = await cluster.Admin.WaitForPacketCaptureAsync(ns, "forged", c => ForgedUpload.RefusedUploads(c, "api") >= 1, Long);
        pod.PingFromClient(3);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "forged", CapturePhase.Succeeded, Long);

        Assert.Equal(1, exit);
        Assert.Contains("the ingest refused the upload (PermissionDenied)", output, StringComparison.Ordinal);
        Assert.Equal(CapturePhase.Running, counted.Status!.Phase); // a refusal never ends the capture
        Assert.Contains("upload(s) refused by this replica (it does not lead)", ReplicaOutput(follower), StringComparison.Ordinal);
        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal((6L, 1L), (target.Packets, target.RefusedUploads));
        Assert.Contains($"it comes from {attacker.NodeLinkAddress}", target.LastRefusal, StringComparison.Ordinal);
        var warning = Assert.Single(await ForgedUpload.RefusalEventsAsync(cluster.Admin, ns, "forged"));
        Assert.Contains("pod api: 1 upload(s) refused", warning.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// kube-apiserver's aggregation reaches the replica that does not hold the stream: it relays the
    /// holder's live stream (HTTPS, the replica credential), and what <c>kubectl get --raw .../follow</c>
    /// wrote is the stored pcap byte for byte, every packet in it by tshark's reading; the finished
    /// capture downloads through the same replica from storage.
    /// </summary>
    [SkippableFact]
    public async Task Follow_through_the_replica_that_does_not_hold_the_stream_is_relayed_from_the_holder_byte_for_byte_and_the_pcap_downloads_there_too()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-ha-relay");
        var pod = await cluster.StartPodAsync(ns, "api");
        var holder = cluster.Endpoint;
        var other = OtherThan(holder);
        await cluster.PointSubresourcesToAsync(other);
        var created = await cluster.StartCaptureAsync(ns, "relayed", PacketCaptureEndToEndTests.Icmp("followed through the other replica", "api", maxPackets: 20, duration: "5m"), Long);
        var target = new CaptureIdentity(created.Metadata.Uid, ns, "relayed", "api");
        await WaitForUploadHolderAsync(target, holder);

        var follow = cluster.KubectlRawAsync(cluster.Install.Server.AdminToken, Subresources.SubresourcesCluster.PathOf(ns, "relayed", "follow"));
        await WaitUntilAsync(() => Task.FromResult(ReplicaOutput(holder).Contains($"relaying the live stream of {ns}/relayed pod api to replica {other}", StringComparison.Ordinal)), $"{holder} relays the stream to {other}");
        pod.PingFromClient(10); // 20 packets, the capture's count
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "relayed", CapturePhase.Succeeded, Long);
        var (exit, stderr, followed) = await follow;

        Assert.True(exit == 0, $"kubectl get --raw .../follow exited {exit}: {stderr}");
        var stored = Assert.Single(done.Status!.Targets);
        var downloaded = await cluster.DownloadAsync(stored.Artifact!);
        Assert.Equal(await File.ReadAllBytesAsync(downloaded), await File.ReadAllBytesAsync(followed));
        Assert.Equal(20, (await Tshark.FieldsAsync(followed, ["icmp.type"], "icmp")).Count);
        Assert.Contains($"{ns}/relayed pod api by admin", ReplicaOutput(other), StringComparison.Ordinal);
        Assert.Contains($"relaying the live stream from replica {holder}", ReplicaOutput(other), StringComparison.Ordinal);

        var (downloadExit, downloadError, pcap) = await cluster.KubectlRawAsync(cluster.Install.Server.AdminToken, Subresources.SubresourcesCluster.PathOf(ns, "relayed", "pcap"));
        Assert.True(downloadExit == 0, $"kubectl get --raw .../pcap exited {downloadExit}: {downloadError}");
        Assert.Equal(stored.Artifact!.Sha256, Evidence.Sha256Of(pcap));
        Assert.Contains($"downloaded the pcap of {ns}/relayed pod api", ReplicaOutput(other), StringComparison.Ordinal);
    }

    /// <summary>
    /// The relay endpoint serves a pcap only to a replica: a request with no credential, a bearer
    /// token, or a credential under another key is refused 401 (JSON Status, logged); the credential
    /// derived from the token key Secret the replicas share gets the live pcap.
    /// </summary>
    [SkippableFact]
    public async Task A_relay_request_without_the_replica_credential_is_refused_and_one_with_it_gets_the_live_pcap()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-ha-peer");
        var pod = await cluster.StartPodAsync(ns, "api");
        var holder = cluster.Endpoint;
        var created = await cluster.StartCaptureAsync(ns, "peer", PacketCaptureEndToEndTests.Icmp("relay credential", "api", maxPackets: 4, duration: "5m"), Long);
        var target = new CaptureIdentity(created.Metadata.Uid, ns, "peer", "api");
        await WaitForUploadHolderAsync(target, holder);
        var port = holder == "replica-a" ? cluster.ExtensionPortA : cluster.ExtensionPortB;
        var url = $"https://{cluster.HttpsAddress}:{port}{StreamRelay.Path}?uid={target.CaptureUid}&namespace={ns}&name=peer&pod=api&follower=mallory&replica=replica-x";
        var secret = await cluster.Admin.CoreV1.ReadNamespacedSecretAsync(cluster.Install.OperatorSettings["Ingest:TokenKeySecret"], KubeCaptureInstall.Namespace);
        var replicaCredential = new RelayCredential(IngestTokenKeys.Of(secret.Data[IngestTokenKeySecret.CurrentEntry], "the Secret"));
        var otherKey = new RelayCredential(IngestTokenKeys.Of(System.Text.Encoding.UTF8.GetBytes("not the replicas' key"), "a guess"));
        using var http = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator }) { Timeout = TimeSpan.FromSeconds(60) };

        foreach (var authorization in new string?[] { null, $"Bearer {cluster.Install.Server.AdminToken}", otherKey.For(target, "mallory", "replica-x") })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (authorization is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            }

            using var refused = await http.SendAsync(request);
            Assert.Equal((System.Net.HttpStatusCode.Unauthorized, "application/json"), (refused.StatusCode, refused.Content.Headers.ContentType?.MediaType));
            Assert.Contains("no valid replica credential", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Contains($"refused a relay of {ns}/peer pod api", ReplicaOutput(holder), StringComparison.Ordinal);
        // The holder takes the upload Lease at Open a moment before its stream is published: until then it
        // answers 409 (look again), which the relaying replica retries every second; so does this test.
        HttpResponseMessage? relayed = null;
        await WaitUntilAsync(async () =>
        {
            using var granted = new HttpRequestMessage(HttpMethod.Get, url);
            granted.Headers.TryAddWithoutValidation("Authorization", replicaCredential.For(target, "mallory", "replica-x"));
            relayed?.Dispose();
            relayed = await http.SendAsync(granted, HttpCompletionOption.ResponseHeadersRead);
            return relayed.StatusCode != System.Net.HttpStatusCode.Conflict;
        }, $"{holder} streams the target");
        using var _ = relayed!;
        Assert.Equal(System.Net.HttpStatusCode.OK, relayed!.StatusCode);
        pod.PingFromClient(2); // 4 packets: the capture ends, and the relayed stream with it
        var body = await relayed.Content.ReadAsByteArrayAsync();
        Assert.Equal(0xa1b2c3d4u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(body));
        await cluster.Admin.WaitForPhaseAsync(ns, "peer", CapturePhase.Succeeded, Long);
    }

    /// <summary>
    /// A flight recording whose agent streams to the replica that does not lead, with kube-apiserver's
    /// aggregation reaching the leader: the leader shows the recorder armed (from the upload Lease), a
    /// snapshot by hand through it is passed to the holder (HTTPS, the replica credential for a
    /// snapshot) and on to the agent, and the snapshot the holder stored is listed by the leader (read
    /// from storage), with the requester and a SHA-256 that matches the stored pcap.
    /// </summary>
    [SkippableFact]
    public async Task A_snapshot_asked_of_the_replica_that_does_not_hold_the_recording_reaches_its_agent_and_the_leader_lists_what_the_holder_stored()
    {
        var leader = (await cluster.Admin.CoordinationV1.ReadNamespacedLeaseAsync("kubecapture-operator", KubeCaptureInstall.Namespace)).Spec.HolderIdentity!;
        var holder = leader == "replica-a" ? "replica-b" : "replica-a";
        await cluster.PointServiceToAsync(holder);
        await cluster.PointSubresourcesToAsync(leader);
        var ns = await cluster.CreateNamespaceAsync("kc-ha-snapshot");
        var pod = await cluster.StartPodAsync(ns, "db");
        var spec = PacketCaptureEndToEndTests.Icmp("a recording held by the other replica", "db", duration: "5m");
        spec.Recorder = new RecorderSpec { Window = "30s", After = "1s", Cooldown = "0s", MaxSnapshots = 1 };
        var created = await cluster.StartCaptureAsync(ns, "recorded", spec, Long);
        await WaitForUploadHolderAsync(new CaptureIdentity(created.Metadata.Uid, ns, "recorded", "db"), holder);
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "recorded", c => c.Status?.Targets.FirstOrDefault()?.Recorder?.Armed == true, Long);
        pod.PingFromClient(3);

        var body = Path.Combine(cluster.WorkDirectory, "snapshot-request.json");
        await File.WriteAllTextAsync(body, "{}");
        var kubeconfig = cluster.Install.Server.WriteKubeconfig(cluster.Install.Server.AdminToken, "snapshot-" + Guid.NewGuid().ToString("N")[..8]);
        var asked = await HostCommand.RunAsync(Tools.Kubectl, ["--kubeconfig", kubeconfig, "create", "--raw", Subresources.SubresourcesCluster.PathOf(ns, "recorded", ExtensionApi.Snapshot), "-f", body], TimeSpan.FromSeconds(60));
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "recorded", CapturePhase.Succeeded, Long);

        Assert.True(asked.ExitCode == 0, asked.Stderr);
        Assert.Contains("admin asked for a snapshot of pod db", asked.Stdout, StringComparison.Ordinal);
        Assert.Contains($"snapshot of {ns}/recorded pod db by admin: asked of replica {holder}", ReplicaOutput(leader), StringComparison.Ordinal);
        Assert.Contains($"{ns}/recorded: admin asked replica {leader} for a snapshot of pod db: passed to its agent here", ReplicaOutput(holder), StringComparison.Ordinal);
        var snapshot = Assert.Single(done.Status!.Snapshots!);
        Assert.Equal(("db", 1, "manual", "admin"), (snapshot.Pod, snapshot.Index, snapshot.TriggerKind, snapshot.Requester));
        var pcap = await cluster.DownloadAsync(snapshot.Artifact!);
        Assert.Equal(snapshot.Artifact!.Sha256, Evidence.Sha256Of(pcap));
        Assert.True(snapshot.Packets >= 6, $"{snapshot.Packets} packets: the pings before the snapshot are in its window");
        Assert.Equal(snapshot.Packets, (await Tshark.FieldsAsync(pcap, ["frame.number"])).Count);
        Assert.Contains($"{ns}/recorded pod db: stored", ReplicaOutput(holder), StringComparison.Ordinal);
        Assert.DoesNotContain($"{ns}/recorded pod db: stored", ReplicaOutput(leader), StringComparison.Ordinal); // the leader listed what it never stored
    }

    private static string OtherThan(string replica) => replica == "replica-a" ? "replica-b" : "replica-a";

    private string ReplicaOutput(string replica) => replica == "replica-a" ? cluster.Operator.PreviousOutput + cluster.Operator.Output : cluster.ReplicaB.Output;

    private IEnumerable<string> AuditLines(string captureUid) => cluster.Output.Split('\n')
        .Where(l => l.StartsWith("{\"apiVersion\":\"audit.kubecapture.io/v1\"", StringComparison.Ordinal) && l.Contains(captureUid, StringComparison.Ordinal));

    private async Task<string?> HolderAsync(CaptureIdentity target)
    {
        try
        {
            return (await cluster.Admin.CoordinationV1.ReadNamespacedLeaseAsync(UploadOwnership.LeaseNameOf(target), KubeCaptureInstall.Namespace)).Spec.HolderIdentity;
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private Task WaitForUploadHolderAsync(CaptureIdentity target, string replica) =>
        WaitUntilAsync(async () => await HolderAsync(target) == replica, $"{replica} holds the upload Lease of {target.Namespace}/{target.CaptureName}");

    private async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Long;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting until {what}\n{string.Join('\n', cluster.Output.Split('\n').TakeLast(60))}");
            await Task.Delay(200);
        }
    }

    /// <summary>The keys of the bucket's objects under <paramref name="prefix"/>.</summary>
    private async Task<List<string>> ObjectKeysAsync(string prefix)
    {
        // s3rver's listing needs the operator's namespace fix to be read by the Minio client.
        using var http = new HttpClient(new KubeCapture.Operator.Storage.ListObjectsNamespaceFix { InnerHandler = new HttpClientHandler() });
        using var client = new MinioClient().WithEndpoint("127.0.0.1", cluster.S3.Port).WithCredentials(S3rverFixture.AccessKey, S3rverFixture.SecretKey).WithSSL(false).WithHttpClient(http).Build();
        var keys = new List<string>();
        await foreach (var item in client.ListObjectsEnumAsync(new ListObjectsArgs().WithBucket(cluster.S3.Bucket).WithPrefix(prefix).WithRecursive(true)))
        {
            keys.Add(item.Key);
        }

        Assert.NotEmpty(keys); // the listing itself works: the manifest and the pcap are there
        return keys;
    }
}
