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
/// The whole product against the Kubernetes API emulator, for what the real kube-apiserver tests
/// (PacketCaptureEndToEndTests, EvidenceForgeryTests, BothEndsEndToEndTests) do not: restart the
/// reconciler and the ingest in-process mid-capture, count the operator's status writes in the
/// emulator's request log, and forge an upload after the pcap was stored. A PacketCapture applied to
/// the emulator, the reconciler injecting the ephemeral container, the test kubelet starting the real
/// agent in the pod's network namespace in cluster mode, the pcap streamed over gRPC to the real
/// ingest, stored in s3rver. The ingest binds each upload to the pod's IP (its status.podIPs).
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
        var created = await harness.StartCaptureAsync("payments", "refusals", new PacketCaptureSpec
        {
            Reason = "clients say connection refused",
            Target = new CaptureTarget { PodName = Pod },
            Filter = "tcp port 9",
            Duration = "60s",
        }, Pod);
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
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
        var created = await harness.StartCaptureAsync("payments", "ends", new PacketCaptureSpec
        {
            Reason = "connections between web and db die",
            Target = new CaptureTarget { PodSelector = new k8s.Models.V1LabelSelector { MatchLabels = labels } },
            Filter = "tcp port 8000",
            Duration = "4s",
            Snaplen = 96,
        }, "web", "db");
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
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
        var created = await harness.StartCaptureAsync("payments", name, new PacketCaptureSpec
        {
            Reason = "is the partner's traffic reaching us?",
            Target = new CaptureTarget { PodName = Pod },
            Filter = "icmp",
            MaxPackets = maxPackets,
            Duration = "60s",
            Snaplen = 128,
        }, Pod);
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
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
