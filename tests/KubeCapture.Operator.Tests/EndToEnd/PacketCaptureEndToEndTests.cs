using System.Security.Cryptography;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;
using Minio;
using Minio.DataModel.Args;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// The whole product on one machine: a PacketCapture applied to the Kubernetes API emulator, the
/// reconciler injecting the ephemeral container, the test kubelet starting the real agent in the
/// pod's network namespace in cluster mode, the pcap streamed over gRPC to the real ingest, stored in
/// s3rver, and a status that says Succeeded with the SHA-256 of the object downloaded back.
/// </summary>
public sealed class PacketCaptureEndToEndTests : IAsyncLifetime
{
    private readonly PodNetwork network = PodNetwork.Create();
    private S3rverFixture s3 = null!;
    private OperatorHost ingest = null!;
    private OperatorHarness harness = null!;

    public async Task InitializeAsync()
    {
        // The agent runs inside the pod's namespace: the ingest listens where the pod reaches the node.
        var nodeAddress = network.ConnectToNode();
        var ingestUrl = $"http://{nodeAddress}:{S3rverFixture.FreeTcpPort()}";
        s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3);
        settings["Kestrel:Endpoints:PodIngest:Url"] = ingestUrl;
        settings["Kestrel:Endpoints:PodIngest:Protocols"] = "Http2";
        ingest = await OperatorHost.StartInProcessAsync(settings);
        harness = await OperatorHarness.StartAsync(
            ingest: ingest.Services.GetRequiredService<IIngestStatus>(),
            tokens: ingest.Services.GetRequiredService<ICaptureTokenIssuer>(),
            mode: AgentMode.Cluster,
            options: o => o.IngestUrl = ingestUrl);
        harness.Emulator.AddNamespace("payments");
    }

    public async Task DisposeAsync()
    {
        await harness.DisposeAsync();
        await ingest.DisposeAsync();
        await s3.DisposeAsync();
        network.Dispose();
    }

    [Fact]
    public async Task An_applied_capture_ends_Succeeded_with_the_SHA256_of_the_object_stored_in_S3()
    {
        harness.Kubelet.AttachNetwork("payments", "api-7d9f", network);
        harness.Emulator.AddPod("payments", "api-7d9f");

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
