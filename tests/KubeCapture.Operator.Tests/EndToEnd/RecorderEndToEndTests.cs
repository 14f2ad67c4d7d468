using System.Globalization;
using System.Net;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Operator.Tests.KubectlPlugin;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// Issue 24: recordings (spec.recorder) on the real kube-apiserver, reconciled by the operator the
/// chart installs with its default policy: each bad one refused before any pod is touched, with a
/// message naming the field; a valid one recorded by the agent image in the pod's network namespace,
/// its snapshots (by hand through the snapshot subresource, and by a filter trigger on real resets)
/// uploaded through the ingest to storage, listed in status, downloaded and audited.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class RecorderEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task Each_bad_recording_is_refused_with_its_message_before_any_pod_is_touched()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-recorder");
        await cluster.StartPodAsync(ns, "api");
        var asked = new Dictionary<string, (RecorderSpec Recorder, string Reason, string Message)>
        {
            ["window"] = (new() { Window = "2m" }, "InvalidSpec", "spec.recorder.window 2m is longer than spec.duration 60s"),
            ["ring"] = (new() { Window = "30s", MaxBytes = "100" }, "InvalidSpec", "spec.recorder.maxBytes 100 cannot hold one packet at snaplen 128 (144 bytes with its record header)"),
            ["trigger-filter"] = (new() { Window = "30s", Triggers = new() { Filter = new() { Expression = "tcp[tcpflags] &", Count = "20/10s" } } }, "InvalidFilter", "spec.recorder.triggers.filter.expression: invalid filter 'tcp[tcpflags] &'"),
            ["both-ends"] = (new() { Window = "30s", Triggers = new() { Findings = ["ResetFromMiddlebox"] } }, "InvalidSpec", "spec.recorder.triggers.findings ResetFromMiddlebox: that finding comes from comparing both ends"),
            ["big-ring"] = (new() { Window = "30s", MaxBytes = "512Mi" }, "PolicyExceeded", "spec.recorder.maxBytes 512Mi is more than the policy's maximum ring 256Mi (Policy:Recorder:MaxRingBytes)"),
        };

        foreach (var (name, (recorder, _, _)) in asked)
        {
            var spec = PacketCaptureEndToEndTests.Icmp("intermittent resets", "api");
            spec.Recorder = recorder;
            await cluster.Admin.CreatePacketCaptureAsync(ns, name, spec);
        }

        foreach (var (name, (_, reason, message)) in asked)
        {
            var failed = await cluster.Admin.WaitForPhaseAsync(ns, name, CapturePhase.Failed, Long);
            var accepted = CaptureConditions.Find(failed.Status, CaptureConditions.Accepted)!;
            Assert.Equal((name, "False", reason), (name, accepted.Status, accepted.Reason));
            Assert.Contains(message, accepted.Message, StringComparison.Ordinal);
            Assert.Empty(failed.Status!.Targets);
        }

        Assert.Empty(await cluster.CaptureContainersAsync(ns, "api")); // no pod touched
    }

    [SkippableFact]
    public async Task A_recording_takes_a_snapshot_by_hand_through_the_subresource_and_one_on_a_reset_storm_each_stored_verified_listed_and_audited()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-rec");
        var pod = await cluster.StartPodAsync(ns, "db");
        await cluster.BindAsync(ns, "alice", $"{KubeCaptureInstall.Release}-kubecapture-snapshot");
        await cluster.BindAsync(ns, "alice", $"{KubeCaptureInstall.Release}-kubecapture-download");
        var spec = PacketCaptureEndToEndTests.Icmp("intermittent resets from the database", "db");
        spec.Filter = "icmp or tcp port 9";
        spec.Recorder = new RecorderSpec
        {
            Window = "3s",
            After = "1s",
            Cooldown = "0s",
            MaxSnapshots = 2,
            Triggers = new() { Filter = new() { Expression = "tcp[tcpflags] & tcp-rst != 0", Count = "3/5s" } },
        };
        var created = await cluster.StartCaptureAsync(ns, "db-resets", spec, Long);
        var snapshotPath = SubresourcesCluster.PathOf(ns, "db-resets", ExtensionApi.Snapshot);

        // By hand, once the recorder reports itself armed in status (its stream to the ingest is up): bob may not
        // (no role), alice may (the chart's snapshot role); the window holds the pings before.
        var armed = await cluster.Admin.WaitForPacketCaptureAsync(ns, "db-resets", c => c.Status?.Targets.FirstOrDefault()?.Recorder?.Armed == true, Long);
        Assert.Equal(0, armed.Status!.Targets[0].Recorder!.SnapshotsTaken);
        pod.PingFromClient(5);
        var alice = cluster.KubeconfigOf("alice");
        var forbidden = await cluster.PluginAsync(cluster.KubeconfigOf("bob"), ns, "snapshot", "db-resets");
        var asked = await cluster.PluginAsync(alice, ns, "snapshot", "db-resets");
        Assert.Equal(1, forbidden.ExitCode);
        Assert.Contains("User \"bob\" cannot create resource \"packetcaptures/snapshot\"", forbidden.Stderr, StringComparison.Ordinal);
        Assert.True(asked.ExitCode == 0, asked.Stderr);
        Assert.Contains("alice asked for a snapshot of pod db", asked.Stdout, StringComparison.Ordinal);
        var first = await cluster.Admin.WaitForPacketCaptureAsync(ns, "db-resets", c => c.Status?.Snapshots?.Count >= 1, Long);

        // A reset storm after healthy traffic: three RSTs within 5s fire the filter trigger; the recording ends after its second snapshot.
        pod.PingFromClient(10);
        var resets = await pod.Client.ExecAsync("bash", "-c", $"for i in 1 2 3 4 5; do timeout 1 bash -c 'exec 3<>/dev/tcp/{pod.PodAddress}/9' 2>/dev/null; sleep 0.2; done; true");
        resets.EnsureSuccess();
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "db-resets", CapturePhase.Succeeded, Long);

        var snapshots = done.Status!.Snapshots!;
        Assert.Equal([("db", 1, "manual", "alice"), ("db", 2, "filter", null)], snapshots.Select(s => (s.Pod, s.Index, s.TriggerKind, s.Requester)));
        Assert.Equal(first.Status!.Snapshots![0].Artifact!.Sha256, snapshots[0].Artifact!.Sha256);
        Assert.Equal(2, done.Status.Targets[0].Recorder!.SnapshotsTaken);
        var download = await cluster.PluginAsync(alice, ns, "download", "db-resets", "--snapshot", "1");
        var verify = await cluster.PluginAsync(alice, ns, "verify", "db-resets-snapshot-1.pcap", "--public-key", await cluster.PublicKeyFileAsync());
        Assert.True(download.ExitCode == 0, download.Stderr);
        Assert.Contains($"db-resets-snapshot-1.pcap: {snapshots[0].Artifact!.Size} bytes, SHA-256 {snapshots[0].Artifact!.Sha256} as stored", download.Stdout, StringComparison.Ordinal);
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);
        foreach (var snapshot in snapshots)
        {
            var (exit, stderr, file) = await cluster.KubectlRawAsync(KubeApiServer.UserToken("alice"), SubresourcesCluster.PathOf(ns, "db-resets", ExtensionApi.Pcap) + $"?snapshot={snapshot.Index}");
            Assert.True(exit == 0, stderr);
            Assert.Equal(snapshot.Artifact!.Sha256, Evidence.Sha256Of(file));
            Assert.Equal(snapshot.Packets, (await Tshark.FieldsAsync(file, ["frame.number"])).Count);
            var (manifestExit, manifestError, manifestFile) = await cluster.KubectlRawAsync(KubeApiServer.UserToken("alice"), SubresourcesCluster.PathOf(ns, "db-resets", ExtensionApi.Manifest) + $"?snapshot={snapshot.Index}");
            Assert.True(manifestExit == 0, manifestError);
            var manifest = StorageJsonContext.ReadManifest(await File.ReadAllBytesAsync(manifestFile));
            Assert.Equal((snapshot.Index, snapshot.Artifact.Sha256, snapshot.Artifact.Uri), (manifest.SnapshotIndex, manifest.Sha256, manifest.Uri));
            Assert.NotNull(manifest.Requester); // who asked for the recording, as the admission webhook stamped it
            Assert.Equal((snapshot.TriggerKind, snapshot.Requester), (manifest.Snapshot!.Trigger.Kind, manifest.Snapshot.Trigger.Requester));
        }

        // The reset storm's snapshot starts a window (3s) before the first RST, with the healthy pings before it.
        var (_, _, storm) = await cluster.KubectlRawAsync(KubeApiServer.UserToken("alice"), SubresourcesCluster.PathOf(ns, "db-resets", ExtensionApi.Pcap) + "?snapshot=2");
        var firstReset = Microseconds((await Tshark.FieldsAsync(storm, ["frame.time_epoch"], "tcp.flags.reset == 1"))[0][0]);
        var firstPacket = Microseconds((await Tshark.FieldsAsync(storm, ["frame.time_epoch"]))[0][0]);
        var stormManifest = StorageJsonContext.ReadManifest(await File.ReadAllBytesAsync((await cluster.KubectlRawAsync(KubeApiServer.UserToken("alice"), SubresourcesCluster.PathOf(ns, "db-resets", ExtensionApi.Manifest) + "?snapshot=2")).File)).Snapshot!;
        Assert.Equal(firstReset, Microseconds(stormManifest.Trigger.EventStart));
        Assert.Equal(firstReset - 3_000_000, Microseconds(stormManifest.WindowStart));
        Assert.InRange(firstPacket, firstReset - 3_000_000, firstReset - 1_000_000); // pings from the healthy seconds before
        Assert.NotEmpty(await Tshark.FieldsAsync(storm, ["frame.number"], $"icmp && frame.time_epoch < {firstReset / 1e6:F6}"));

        var audit = await cluster.WaitForAuditAsync(created.Metadata.Uid, "stored");
        var lines = audit.Where(l => l.GetProperty("event").GetString() == "snapshot").ToList();
        Assert.Equal(2, lines.Count);
        Assert.Equal("alice", lines[0].GetProperty("actor").GetString());
        Assert.Equal(snapshots.Select(s => s.Artifact!.Sha256), lines.Select(l => l.GetProperty("artifact").GetProperty("sha256").GetString()));

        // Bad requests, each with its message: the recording has ended, no such snapshot, not a number.
        using var ended = await cluster.PostAsync(KubeApiServer.UserToken("alice"), snapshotPath);
        var (missingExit, missing, _) = await cluster.KubectlRawAsync(KubeApiServer.UserToken("alice"), SubresourcesCluster.PathOf(ns, "db-resets", ExtensionApi.Pcap) + "?snapshot=3");
        var (wrongExit, wrong, _) = await cluster.KubectlRawAsync(KubeApiServer.UserToken("alice"), SubresourcesCluster.PathOf(ns, "db-resets", ExtensionApi.Pcap) + "?snapshot=first");
        Assert.Equal(HttpStatusCode.Conflict, ended.StatusCode);
        Assert.Contains("capture db-resets has ended (Succeeded): its recorders stopped, so no snapshot can be taken", await ended.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.NotEqual(0, missingExit);
        Assert.Contains("snapshot 3 of capture db-resets pod db is not stored (status.snapshots lists those that are: 1, 2)", missing, StringComparison.Ordinal);
        Assert.NotEqual(0, wrongExit);
        Assert.Contains("?snapshot=first is not a snapshot number", wrong, StringComparison.Ordinal);
    }

    private static long Microseconds(string time) => time.Contains('T', StringComparison.Ordinal)
        ? (DateTime.Parse(time, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal).Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond
        : (long)Math.Round(decimal.Parse(time, CultureInfo.InvariantCulture) * 1_000_000m);
}
