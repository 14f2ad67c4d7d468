using System.Security.Cryptography;
using System.Text.Json;
using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.KubectlPlugin;

/// <summary>
/// <c>kubectl capture</c>, the built executable, as a user of a namespace against the real
/// kube-apiserver, the operator (reconciler and extension API) and the test kubelet running the
/// agent image: every command, its output and its exit code.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class KubectlCaptureTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task A_capture_created_by_the_plugin_has_the_fields_given_and_wait_prints_its_outcome_which_list_and_status_show()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-plug");
        var pod = await cluster.StartPodAsync(ns, "api");
        await cluster.GrantEditAsync(ns, "alice");
        var alice = cluster.KubeconfigOf("alice");

        var create = cluster.PluginAsync(alice, ns, "api", "-c", "6", "-s", "96", "--duration", "45s", "--max-bytes", "16Mi", "-i", "any",
            "--reason", "partner API calls time out", "--wait", "icmp", "and", "host", pod.PodAddress);
        var running = await WaitForCaptureAsync(ns, c => c.Status?.Phase == CapturePhase.Running);
        await cluster.Kubelet.WaitUntilListeningAsync(ns, "api", EphemeralContainerSpec.ContainerName(running.Metadata.Uid), Long);
        pod.PingFromClient(3);
        var created = await create;
        var list = await cluster.PluginAsync(alice, ns, "list");
        var status = await cluster.PluginAsync(alice, ns, "status", running.Metadata.Name);

        Assert.True(created.ExitCode == 0, created.Stdout + created.Stderr + cluster.OperatorLog());
        var name = created.Stdout.Split('\n')[0];
        Assert.Equal(running.Metadata.Name, name);
        Assert.StartsWith("api-", name, StringComparison.Ordinal);
        var spec = running.Spec;
        Assert.Equal(("api", 6L, 96, "45s", "16Mi", "any"), (spec.Target.PodName, spec.MaxPackets!.Value, spec.Snaplen!.Value, spec.Duration, spec.MaxBytes, spec.Interface));
        Assert.Equal(("partner API calls time out", $"icmp and host {pod.PodAddress}"), (spec.Reason, spec.Filter));
        Assert.Contains($"{name} Succeeded", created.Stdout, StringComparison.Ordinal);
        Assert.Contains("(6 packets, 0 dropped", created.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, list.ExitCode);
        Assert.Matches($@"(?m)^{name}\s+Succeeded\s+api\s+6\s+0\s+0\s+\d+s\s+partner API calls time out$", list.Stdout);
        Assert.True(status.ExitCode == 0, status.Stderr);
        Assert.Contains("Phase:      Succeeded", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("Pod api on ", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("6 packets, ", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("0 dropped by the kernel; stopped by count", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("TCP: 0 packets, 0 connections", status.Stdout, StringComparison.Ordinal); // the agent's summary, in its own words
    }

    [SkippableFact]
    public async Task Download_gives_the_stored_bytes_and_a_manifest_verify_accepts_and_a_flipped_byte_fails_verify()
    {
        var (ns, name, done) = await FinishedCaptureAsync("kc-plug-dl");
        await cluster.GrantEditAsync(ns, "alice");
        var alice = cluster.KubeconfigOf("alice");
        var key = await cluster.PublicKeyFileAsync();

        var download = await cluster.PluginAsync(alice, ns, "download", name, "-o", "evidence.pcap");
        var file = Path.Combine(cluster.WorkDirectory, "evidence.pcap");
        var verify = await cluster.PluginAsync(alice, ns, "verify", file, "--public-key", key);
        var unsigned = await cluster.PluginAsync(alice, ns, "verify", file);
        var bytes = await File.ReadAllBytesAsync(file);
        bytes[^1] ^= 0x01;
        var flipped = Path.Combine(cluster.WorkDirectory, "flipped.pcap");
        await File.WriteAllBytesAsync(flipped, bytes);
        var tampered = await cluster.PluginAsync(alice, ns, "verify", flipped, file + ".manifest.json", "--public-key", key);
        var again = await cluster.PluginAsync(alice, ns, "download", name, "-o", "evidence.pcap");

        Assert.True(download.ExitCode == 0, download.Stdout + download.Stderr + cluster.OperatorLog());
        var artifact = done.Status!.Targets[0].Artifact!;
        Assert.Equal(await File.ReadAllBytesAsync(await cluster.DownloadAsync(artifact)), await File.ReadAllBytesAsync(file));
        Assert.Contains($"evidence.pcap: {artifact.Size} bytes, SHA-256 {artifact.Sha256} as stored", download.Stdout, StringComparison.Ordinal);
        Assert.Equal(await File.ReadAllBytesAsync(await cluster.DownloadAsync(artifact.Uri.Replace(".pcap", ".manifest.json", StringComparison.Ordinal), ".json")), await File.ReadAllBytesAsync(file + ".manifest.json"));
        Assert.False(File.Exists(file + ".partial"));
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);
        Assert.Contains("VERIFIED", verify.Stdout, StringComparison.Ordinal);
        Assert.Equal(4, unsigned.ExitCode);
        Assert.Contains("kubectl-capture: verify: the pcap matches the manifest, but the signature was not checked", unsigned.Stderr, StringComparison.Ordinal);
        Assert.Equal(3, tampered.ExitCode);
        Assert.Contains("the pcap was altered", tampered.Stderr, StringComparison.Ordinal);
        Assert.Contains("kubectl-capture: verify: NOT VERIFIED", tampered.Stderr, StringComparison.Ordinal);
        Assert.Equal(2, again.ExitCode);
        Assert.Contains("'evidence.pcap' already exists", again.Stderr, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_stored_pcap_altered_in_the_bucket_fails_the_download_SHA256_check_with_exit_1_and_the_bytes_kept_as_partial_replacing_an_old_one()
    {
        var (ns, name, done) = await FinishedCaptureAsync("kc-plug-sha");
        await cluster.GrantEditAsync(ns, "alice");
        var artifact = done.Status!.Targets[0].Artifact!;
        var stored = await File.ReadAllBytesAsync(await cluster.DownloadAsync(artifact));
        stored[^1] ^= 0x01;
        await cluster.OverwriteStoredAsync(artifact.Uri, stored);
        await File.WriteAllTextAsync(Path.Combine(cluster.WorkDirectory, "altered.pcap.partial"), "left by an earlier download that broke off");

        var download = await cluster.PluginAsync(cluster.KubeconfigOf("alice"), ns, "download", name, "-o", "altered.pcap");

        Assert.Equal(1, download.ExitCode);
        Assert.Contains($"kubectl-capture: SHA-256 mismatch: the bytes received hash to {Convert.ToHexStringLower(SHA256.HashData(stored))}, the stored pcap's is {artifact.Sha256}; the bytes are kept in altered.pcap.partial and are NOT the stored pcap", download.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(cluster.WorkDirectory, "altered.pcap")));
        Assert.Equal(stored, await File.ReadAllBytesAsync(Path.Combine(cluster.WorkDirectory, "altered.pcap.partial")));
    }

    [SkippableFact]
    public async Task A_view_user_sees_the_capture_in_list_and_status_but_download_fails_with_exit_1_and_kube_apiservers_403()
    {
        var (ns, name, _) = await FinishedCaptureAsync("kc-plug-403");
        await cluster.BindAsync(ns, "bob", KubectlCaptureCluster.ViewRole);
        var bob = cluster.KubeconfigOf("bob");

        var list = await cluster.PluginAsync(bob, ns, "list");
        var download = await cluster.PluginAsync(bob, ns, "download", name, "-o", "bob.pcap");
        var create = await cluster.PluginAsync(bob, ns, "api", "--reason", "just looking", "icmp");

        Assert.True(list.ExitCode == 0, list.Stderr);
        Assert.Contains(name, list.Stdout, StringComparison.Ordinal);
        Assert.Equal(1, download.ExitCode);
        Assert.Contains($"Error from server (Forbidden): packetcaptures.subresources.kubecapture.io \"{name}\" is forbidden: User \"bob\" cannot get resource \"packetcaptures/pcap\" in API group \"subresources.kubecapture.io\" in the namespace \"{ns}\"", download.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(cluster.WorkDirectory, "bob.pcap")));
        Assert.False(File.Exists(Path.Combine(cluster.WorkDirectory, "bob.pcap.partial")));
        Assert.Equal(1, create.ExitCode);
        Assert.Contains("Error from server (Forbidden): ", create.Stderr, StringComparison.Ordinal);
        Assert.Contains("User \"bob\" cannot create resource \"packetcaptures\" in API group \"kubecapture.io\"", create.Stderr, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Follow_piped_into_tcpdump_shows_packets_while_the_capture_runs_download_meanwhile_is_409_and_stop_ends_both()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-plug-follow");
        var pod = await cluster.StartPodAsync(ns, "api");
        await cluster.GrantEditAsync(ns, "alice");
        var alice = cluster.KubeconfigOf("alice");
        var created = await cluster.PluginAsync(alice, ns, "api", "--name", "live", "--duration", "60s", "--reason", "watch it live", "icmp");
        Assert.True(created.ExitCode == 0, created.Stderr);
        var capture = await WaitForCaptureAsync(ns, c => c.Status?.Phase == CapturePhase.Running);
        await cluster.Kubelet.WaitUntilListeningAsync(ns, "api", EphemeralContainerSpec.ContainerName(capture.Metadata.Uid), Long);

        var (follow, lines) = cluster.StartFollowIntoTcpdump(alice, ns, "live");
        using var _ = follow;
        // The follow joins when its request reaches the operator, which on a busy machine may be seconds
        // after the plugin started: ping until it shows packets (it joins at the next whole record).
        var seenWhileRunning = await PingUntilIcmpLinesAsync(pod, lines, atLeast: 6);
        var early = await cluster.PluginAsync(alice, ns, "download", "live");
        pod.PingFromClient(10, interval: 0.2);
        var stop = await cluster.PluginAsync(alice, ns, "stop", "live");
        var exited = follow.WaitForExitAsync();
        var finished = await Task.WhenAny(exited, Task.Delay(Long)) == exited;
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "live", CapturePhase.Succeeded, Long);
        var stopAgain = await cluster.PluginAsync(alice, ns, "stop", "live");

        Assert.True(seenWhileRunning >= 6);
        Assert.Equal(1, early.ExitCode);
        Assert.Contains("Error from server (Conflict): capture live is still capturing pod api (state Capturing); use follow", early.Stderr, StringComparison.Ordinal);
        Assert.True(stop.ExitCode == 0, stop.Stderr);
        Assert.Equal("live stopping: each agent finishes its pcap and uploads it (kubectl capture status live)", stop.Stdout.Trim());
        Assert.True(finished, "the follow did not end when the capture stopped\n" + cluster.OperatorLog());
        Assert.True(follow.ExitCode == 0, await follow.StandardError.ReadToEndAsync());
        Assert.Equal("requested", done.Status!.Targets[0].StopReason);
        var followed = (await File.ReadAllLinesAsync(lines)).Where(l => l.Contains("ICMP echo", StringComparison.Ordinal)).ToList();
        var stored = Evidence.TcpdumpLines(await cluster.DownloadAsync(done.Status.Targets[0].Artifact!)).Where(l => l.Contains("ICMP echo", StringComparison.Ordinal));
        Assert.True(followed.Count >= seenWhileRunning + 20, $"{followed.Count} ICMP lines followed: {seenWhileRunning} before the download, and then 10 requests and 10 replies");
        Assert.Equal(stored.TakeLast(followed.Count), followed); // whole records from where the follow joined to the end
        Assert.Equal(0, stopAgain.ExitCode);
        Assert.Equal("live already ended (Succeeded): nothing to stop", stopAgain.Stdout.Trim());
    }

    [SkippableFact]
    public async Task An_unknown_capture_is_exit_1_with_kube_apiservers_NotFound_and_an_invalid_filter_is_exit_2_before_anything_is_created()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-plug-err");
        await cluster.GrantEditAsync(ns, "alice");
        var alice = cluster.KubeconfigOf("alice");

        var status = await cluster.PluginAsync(alice, ns, "status", "nope");
        var stop = await cluster.PluginAsync(alice, ns, "stop", "nope");
        var invalid = await cluster.PluginAsync(alice, ns, "api", "--reason", "typo", "tcp port 80 and");
        var list = await cluster.PluginAsync(alice, ns, "list");

        Assert.Equal((1, 1), (status.ExitCode, stop.ExitCode));
        Assert.Equal("Error from server (NotFound): packetcaptures.kubecapture.io \"nope\" not found", status.Stderr.Trim());
        Assert.Equal(status.Stderr, stop.Stderr);
        Assert.Equal(2, invalid.ExitCode);
        Assert.Equal("kubectl-capture: invalid filter 'tcp port 80 and': can't parse filter expression: syntax error", invalid.Stderr.Trim());
        Assert.Equal(0, list.ExitCode);
        Assert.Equal($"No captures in namespace {ns}.", list.Stderr.Trim());
    }

    private async Task<(string Namespace, string Name, PacketCapture Done)> FinishedCaptureAsync(string prefix)
    {
        var ns = await cluster.CreateNamespaceAsync(prefix);
        var pod = await cluster.StartPodAsync(ns, "api");
        var created = await cluster.StartCaptureAsync(ns, "finished", PacketCaptureEndToEndTests.Icmp("evidence for the ticket", "api", maxPackets: 6), Long, pods: ["api"]);
        pod.PingFromClient(3);
        return (ns, "finished", await cluster.Admin.WaitForPhaseAsync(ns, "finished", CapturePhase.Succeeded, Long));
    }

    /// <summary>The one capture of the namespace once it satisfies <paramref name="until"/> (its name was chosen by the server).</summary>
    private async Task<PacketCapture> WaitForCaptureAsync(string ns, Func<PacketCapture, bool> until)
    {
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            var list = await cluster.Admin.CustomObjects.ListNamespacedCustomObjectAsync<PacketCaptureList>(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural);
            if (list.Items.SingleOrDefault() is { } capture && until(capture))
            {
                return capture;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no capture in {ns} reached the state: {JsonSerializer.Serialize(list.Items.Select(c => c.Status))}");
            await Task.Delay(200);
        }
    }

    private static async Task<int> PingUntilIcmpLinesAsync(PodNetwork pod, string file, int atLeast)
    {
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            var count = (await File.ReadAllLinesAsync(file)).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal));
            if (count >= atLeast)
            {
                return count;
            }

            Assert.True(DateTime.UtcNow < deadline, $"only {count} ICMP lines arrived live");
            pod.PingFromClient(2, interval: 0.2);
        }
    }
}
