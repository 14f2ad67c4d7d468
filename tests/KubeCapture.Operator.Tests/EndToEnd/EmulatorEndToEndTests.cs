using System.Security.Cryptography;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;
using Minio;
using Minio.DataModel.Args;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// The whole product against the Kubernetes API emulator (the real kube-apiserver runs the same in
/// PacketCaptureEndToEndTests; this one keeps the attack and restart cases that need an in-process
/// reconciler and ingest): a PacketCapture applied to the emulator, the
/// reconciler injecting the ephemeral container, the test kubelet starting the real agent in the
/// pod's network namespace in cluster mode, the pcap streamed over gRPC to the real ingest, stored in
/// s3rver, and a status that says Succeeded with the SHA-256 of the object downloaded back. The
/// ingest binds each upload to the pod's IP (its status.podIPs: the pod's address toward the node).
/// </summary>
public sealed class EmulatorEndToEndTests : IAsyncLifetime
{
    private const string Pod = "api-7d9f";
    private readonly PodNetwork network = PodNetwork.Create();
    private readonly PodNetwork attacker = PodNetwork.Create();
    private S3rverFixture s3 = null!;
    private Dictionary<string, string> settings = null!;
    private OperatorHost ingest = null!;
    private OperatorHarness harness = null!;

    public async Task InitializeAsync()
    {
        // The agent runs inside the pod's namespace: the ingest listens where the pod reaches the node.
        // The attacker's namespace reaches the node (and so the ingest) too, by a link of its own.
        var nodeAddress = network.ConnectToNode();
        attacker.ConnectToNode();
        var ingestUrl = $"http://{nodeAddress}:{S3rverFixture.FreeTcpPort()}";
        s3 = await S3rverFixture.StartAsync();
        settings = OperatorHost.S3Settings(s3);
        settings["Kestrel:Endpoints:PodIngest:Url"] = ingestUrl;
        settings["Kestrel:Endpoints:PodIngest:Protocols"] = "Http2";
        settings["Ingest:BindToPodAddress"] = "true";
        settings["shutdownTimeoutSeconds"] = "1";
        ingest = await OperatorHost.StartInProcessAsync(settings);
        harness = await OperatorHarness.StartAsync(
            ingest: ingest.Services.GetRequiredService<IIngestStatus>(),
            tokens: ingest.Services.GetRequiredService<ICaptureTokenIssuer>(),
            addresses: ingest.Services.GetRequiredService<IAgentAddresses>(),
            mode: AgentMode.Cluster,
            options: o => (o.IngestUrl, o.ProgressInterval) = (ingestUrl, "3s"));
        harness.Emulator.AddNamespace("payments");
        harness.Kubelet.AttachNetwork("payments", Pod, network);
        harness.Emulator.AddPod("payments", Pod, podIp: network.NodeLinkAddress!);
    }

    public async Task DisposeAsync()
    {
        await harness.DisposeAsync();
        await ingest.DisposeAsync();
        await s3.DisposeAsync();
        network.Dispose();
        attacker.Dispose();
    }

    [Fact]
    public async Task An_applied_capture_ends_Succeeded_with_the_SHA256_of_the_object_stored_in_S3()
    {
        var created = await harness.CreateCaptureAsync("payments", "partner-timeouts", new PacketCaptureSpec
        {
            Reason = "partner API calls time out",
            Target = new CaptureTarget { PodName = "api-7d9f" },
            Filter = "icmp",
            MaxPackets = 8,
            Duration = "30s",
            Snaplen = 128,
        });
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        await harness.WaitForPhaseAsync("payments", "partner-timeouts", CapturePhase.Running, TimeSpan.FromSeconds(30));
        await harness.Kubelet.WaitUntilListeningAsync("payments", "api-7d9f", container, TimeSpan.FromSeconds(30));
        network.PingFromClient(4);

        var done = await harness.WaitForPhaseAsync("payments", "partner-timeouts", CapturePhase.Succeeded, TimeSpan.FromSeconds(60));

        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal(8, target.Packets);
        Assert.Equal("count", target.StopReason);
        var artifact = target.Artifact!;
        Assert.StartsWith("s3://", artifact.Uri, StringComparison.Ordinal);
        var key = artifact.Uri[("s3://" + s3.Bucket + "/").Length..];
        Assert.Equal($"captures/payments/partner-timeouts/api-7d9f.pcap", key);

        var downloaded = Path.Combine(harness.WorkDirectory, "downloaded.pcap");
        await DownloadAsync(key, downloaded);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(downloaded))), artifact.Sha256);
        Assert.Equal(new FileInfo(downloaded).Length, artifact.Size);
        Assert.Equal(8, Evidence.TcpdumpLines(downloaded).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        Assert.Equal("True", CaptureConditions.Find(done.Status, CaptureConditions.Complete)?.Status);
    }

    [Fact]
    public async Task A_forged_upload_with_the_token_from_the_pod_spec_is_refused_counted_and_announced_while_the_real_capture_Succeeds_undisturbed()
    {
        var (created, container) = await StartCaptureAsync("forged-live", maxPackets: 8);
        var identity = new CaptureIdentity(created.Metadata.Uid, "payments", "forged-live", Pod);
        await WaitForAsync(async () => (await harness.Ingest.GetAsync(identity, CancellationToken.None))?.Phase == UploadPhase.Streaming, "the real agent streams");

        var (exit, output) = await ForgedUpload.RunAsync(harness.Client, "payments", Pod, created.Metadata.Uid, attacker.PodNamespace, OperatorHarness.AgentDll());
        var counted = await harness.WaitForAsync("payments", "forged-live", c => ForgedUpload.RefusedUploads(c, Pod) == 1);
        network.PingFromClient(4);
        var done = await harness.WaitForPhaseAsync("payments", "forged-live", CapturePhase.Succeeded, TimeSpan.FromSeconds(60));

        Assert.Equal(1, exit);
        Assert.Contains("the ingest refused the upload (PermissionDenied)", output, StringComparison.Ordinal);
        Assert.Contains($"it comes from {attacker.NodeLinkAddress}, but the pod's addresses are {network.NodeLinkAddress} (status.podIPs)", output, StringComparison.Ordinal);
        Assert.Equal(CapturePhase.Running, counted.Status!.Phase); // a refusal never ends the capture
        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal((8L, "count", 1L), (target.Packets, target.StopReason, target.RefusedUploads));
        Assert.Contains($"it comes from {attacker.NodeLinkAddress}", target.LastRefusal, StringComparison.Ordinal);
        var pcap = await DownloadedAsync(target.Artifact!);
        Assert.Equal(Evidence.Sha256Of(pcap), target.Artifact!.Sha256);
        var lines = Evidence.TcpdumpLines(pcap);
        Assert.Equal(8, lines.Count(l => l.Contains("ICMP echo", StringComparison.Ordinal) && l.Contains(network.PodAddress, StringComparison.Ordinal)));
        Assert.Equal(8, lines.Count);
        var agentLog = harness.Kubelet.Stderr("payments", Pod, container);
        Assert.DoesNotContain("upload interrupted", agentLog, StringComparison.Ordinal); // the real stream was never taken over
        var warning = Assert.Single(await ForgedUpload.RefusalEventsAsync(harness.Client, "payments", "forged-live"));
        Assert.Contains($"pod {Pod}: 1 upload(s) refused", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_forged_upload_after_the_pcap_was_stored_is_refused_and_counted_and_the_stored_object_is_unchanged()
    {
        var (created, _) = await StartCaptureAsync("forged-late", maxPackets: 4);
        network.PingFromClient(2);
        var done = await harness.WaitForPhaseAsync("payments", "forged-late", CapturePhase.Succeeded, TimeSpan.FromSeconds(60));
        var artifact = Assert.Single(done.Status!.Targets).Artifact!;
        var before = await File.ReadAllBytesAsync(await DownloadedAsync(artifact));

        var (exit, output) = await ForgedUpload.RunAsync(harness.Client, "payments", Pod, created.Metadata.Uid, attacker.PodNamespace, OperatorHarness.AgentDll());
        var counted = await harness.WaitForAsync("payments", "forged-late", c => ForgedUpload.RefusedUploads(c, Pod) == 1);

        Assert.Equal(1, exit);
        Assert.Contains("the ingest refused the upload (PermissionDenied)", output, StringComparison.Ordinal);
        Assert.Equal(CapturePhase.Succeeded, counted.Status!.Phase);
        var target = Assert.Single(counted.Status.Targets);
        Assert.Equal((artifact.Uri, artifact.Sha256, artifact.Size), (target.Artifact!.Uri, target.Artifact.Sha256, target.Artifact.Size));
        var after = await File.ReadAllBytesAsync(await DownloadedAsync(artifact));
        Assert.Equal(before, after);
        Assert.Equal(artifact.Sha256, Convert.ToHexStringLower(SHA256.HashData(after)));
        Assert.Equal(4, Evidence.TcpdumpLines(await DownloadedAsync(artifact)).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        Assert.Single(await ForgedUpload.RefusalEventsAsync(harness.Client, "payments", "forged-late"));
    }

    [Fact]
    public async Task While_it_runs_a_capture_shows_its_findings_so_far_and_writes_its_progress_at_most_once_per_ProgressInterval()
    {
        var created = await harness.CreateCaptureAsync("payments", "refusals", new PacketCaptureSpec
        {
            Reason = "clients say connection refused",
            Target = new CaptureTarget { PodName = Pod },
            Filter = "tcp port 9",
            Duration = "60s",
        });
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        await harness.WaitForPhaseAsync("payments", "refusals", CapturePhase.Running, TimeSpan.FromSeconds(30));
        await harness.Kubelet.WaitUntilListeningAsync("payments", Pod, container, TimeSpan.FromSeconds(30));
        var statusWrites = () => harness.Emulator.Requests.Count(r => r.StartsWith("PUT ", StringComparison.Ordinal) && r.Contains("/packetcaptures/refusals/status", StringComparison.Ordinal));
        var writesBefore = statusWrites();
        var watch = System.Diagnostics.Stopwatch.StartNew();

        // Nothing listens on port 9 in the pod: each connection is refused, one every 300 ms for 6 s.
        var refusing = Task.Run(async () =>
        {
            for (var i = 0; i < 20; i++)
            {
                await network.Client.CurlAsync($"http://{network.PodAddress}:9/", TimeSpan.FromSeconds(1));
                await Task.Delay(300);
            }
        });
        var running = await harness.WaitForAsync("payments", "refusals",
            c => c.Status?.Targets.FirstOrDefault()?.Findings?.Any(f => f.Type == FindingTypes.ConnectionRefused) == true, TimeSpan.FromSeconds(30));
        await refusing;
        var elapsed = watch.Elapsed;
        var writes = statusWrites() - writesBefore;

        Assert.Equal(CapturePhase.Running, running.Status!.Phase);
        Assert.True(running.Status.Targets[0].Packets > 0);
        // The agent reports every second; the status is written at most once per interval (3 s here).
        var interval = CapturePolicy.ParseDuration(harness.Options.ProgressInterval, "interval");
        Assert.True(writes <= 1 + (int)(elapsed / interval), $"{writes} status writes in {elapsed} at one per {interval}");
        await harness.Client.StopPacketCaptureAsync("payments", "refusals");
        var done = await harness.WaitForPhaseAsync("payments", "refusals", CapturePhase.Succeeded, TimeSpan.FromSeconds(30));
        Assert.Contains(done.Status!.Targets[0].Findings!, f => f.Type == FindingTypes.ConnectionRefused);
    }

    [Fact]
    public async Task After_an_operator_restart_the_real_agent_waits_for_the_pods_addresses_and_resumes_once_the_capture_is_reconciled()
    {
        var (created, container) = await StartCaptureAsync("restarted", maxPackets: 12);
        var identity = new CaptureIdentity(created.Metadata.Uid, "payments", "restarted", Pod);
        network.PingFromClient(3);
        await WaitForAsync(async () => (await harness.Ingest.GetAsync(identity, CancellationToken.None))?.Packets >= 6, "the first 6 packets reach the ingest");

        // The whole operator goes: reconciler and ingest (with what it knew of the pod's addresses).
        await harness.KillOperatorAsync();
        await ingest.DisposeAsync();
        ingest = await OperatorHost.StartInProcessAsync(settings);
        harness.UseIngest(ingest.Services.GetRequiredService<IIngestStatus>(), ingest.Services.GetRequiredService<ICaptureTokenIssuer>(), ingest.Services.GetRequiredService<IAgentAddresses>());
        await WaitForAsync(() => Task.FromResult(harness.Kubelet.Stderr("payments", Pod, container).Contains("does not know the addresses of pod", StringComparison.Ordinal)),
            "the agent is told to retry until the new operator knows the pod's addresses");
        harness.StartOperator();
        network.PingFromClient(3);
        var done = await harness.WaitForPhaseAsync("payments", "restarted", CapturePhase.Succeeded, TimeSpan.FromSeconds(60));

        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal(12, target.Packets);
        Assert.Null(target.RefusedUploads);
        var pcap = await DownloadedAsync(target.Artifact!);
        Assert.Equal(Evidence.Sha256Of(pcap), target.Artifact!.Sha256);
        Assert.Equal(12, Evidence.TcpdumpLines(pcap).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        Assert.Contains("upload interrupted", harness.Kubelet.Stderr("payments", Pod, container), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Both_ends_uploaded_before_an_operator_restart_are_still_compared_by_the_new_operator_from_the_stored_manifests()
    {
        // web (client) and db (server) through a middlebox that resets the request in db's name.
        using var web = PodNetwork.Create();
        using var db = PodNetwork.Create();
        var labels = new Dictionary<string, string> { ["app"] = "ends" };
        foreach (var (name, pod) in new[] { ("web", web), ("db", db) })
        {
            pod.ConnectToNode();
            harness.Kubelet.AttachNetwork("payments", name, pod);
            harness.Emulator.AddPod("payments", name, labels: labels, podIp: pod.NodeLinkAddress!);
        }

        await using var lab = await MiddleboxLab.JoinAsync(web.PodNamespace, db.PodNamespace);
        await using var http = await lab.Server.StartHttpServerAsync(8000, new Dictionary<string, int> { ["small.txt"] = 1000 });
        await lab.Middlebox.AddNftablesAsync("""
            table inet kcends {
              chain relay { type filter hook forward priority 0; tcp dport 8000 tcp flags & psh == psh reject with tcp reset; }
            }
            """);
        var created = await harness.CreateCaptureAsync("payments", "ends", new PacketCaptureSpec
        {
            Reason = "connections between web and db die",
            Target = new CaptureTarget { PodSelector = new k8s.Models.V1LabelSelector { MatchLabels = labels } },
            Filter = "tcp port 8000",
            Duration = "4s",
            Snaplen = 96,
        });
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        await harness.WaitForPhaseAsync("payments", "ends", CapturePhase.Running, TimeSpan.FromSeconds(30));
        await harness.Kubelet.WaitUntilListeningAsync("payments", "web", container, TimeSpan.FromSeconds(30));
        await harness.Kubelet.WaitUntilListeningAsync("payments", "db", container, TimeSpan.FromSeconds(30));
        Assert.Equal(56, (await lab.Client.CurlAsync(http.Url("small.txt"))).ExitCode); // reset

        // The reconciler goes; both agents end (duration) and their pcaps are stored by the ingest;
        // then the ingest goes too. The new operator knows the uploads only from storage.
        await harness.KillOperatorAsync();
        foreach (var pod in new[] { "web", "db" })
        {
            var identity = new CaptureIdentity(created.Metadata.Uid, "payments", "ends", pod);
            await WaitForAsync(async () => (await harness.Ingest.GetAsync(identity, CancellationToken.None))?.Phase == UploadPhase.Finished, $"{pod}'s pcap is stored");
        }

        Assert.Equal(CapturePhase.Running, (await harness.GetCaptureAsync("payments", "ends"))!.Status!.Phase);
        await ingest.DisposeAsync();
        ingest = await OperatorHost.StartInProcessAsync(settings);
        harness.UseIngest(ingest.Services.GetRequiredService<IIngestStatus>(), ingest.Services.GetRequiredService<ICaptureTokenIssuer>(), ingest.Services.GetRequiredService<IAgentAddresses>());
        harness.StartOperator();
        var done = await harness.WaitForPhaseAsync("payments", "ends", CapturePhase.Succeeded, TimeSpan.FromSeconds(60));

        var compared = done.Status!.Findings![0];
        Assert.Equal((FindingTypes.ResetFromMiddlebox, "db,web"), (compared.Type, compared.Target));
        Assert.Contains("the server's own capture shows it never sent one", compared.Message, StringComparison.Ordinal);
        var resets = await KubeCapture.Testing.Pcap.Tshark.FieldsAsync(await DownloadedAsync(done.Status.Targets.Single(t => t.Pod == "web").Artifact!), ["frame.number"], "tcp.flags.reset == 1");
        Assert.Equal(resets.Select(f => long.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture)), compared.Evidence.PacketNumbers);
    }

    private async Task<(PacketCapture Created, string Container)> StartCaptureAsync(string name, int maxPackets)
    {
        var created = await harness.CreateCaptureAsync("payments", name, new PacketCaptureSpec
        {
            Reason = "is the partner's traffic reaching us?",
            Target = new CaptureTarget { PodName = Pod },
            Filter = "icmp",
            MaxPackets = maxPackets,
            Duration = "60s",
            Snaplen = 128,
        });
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        await harness.WaitForPhaseAsync("payments", name, CapturePhase.Running, TimeSpan.FromSeconds(30));
        await harness.Kubelet.WaitUntilListeningAsync("payments", Pod, container, TimeSpan.FromSeconds(30));
        return (created, container);
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"not within 30s: {what}");
            }

            await Task.Delay(50);
        }
    }

    private async Task<string> DownloadedAsync(CaptureArtifact artifact)
    {
        var path = Path.Combine(harness.WorkDirectory, $"{Guid.NewGuid():N}.pcap");
        await DownloadAsync(artifact.Uri[("s3://" + s3.Bucket + "/").Length..], path);
        return path;
    }

    private async Task DownloadAsync(string key, string path)
    {
        using var client = new MinioClient()
            .WithEndpoint("127.0.0.1", s3.Port)
            .WithCredentials(S3rverFixture.AccessKey, S3rverFixture.SecretKey)
            .WithSSL(false)
            .Build();
        await using var file = File.Create(path);
        await client.GetObjectAsync(new GetObjectArgs()
            .WithBucket(s3.Bucket)
            .WithObject(key)
            .WithCallbackStream(async (stream, cancellationToken) => await stream.CopyToAsync(file, cancellationToken)));
    }
}
