using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>A real capture by the real agent on lo, streamed agent -> ingest -> storage, and checked from outside.</summary>
public sealed class IngestEndToEndTests
{
    [Fact]
    public async Task RealCaptureIsStreamedThroughTheIngestIntoS3AsAVerifiedMultipartObjectThatTcpdumpReads()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3));
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("0b6f3c1e-5d2a-4c57-9b1e-1f0e2d3c4b5a", "payments", "partner-timeouts", "api-7d9f");

        await using var agent = await AgentRun.StartAsync(host.IngestUrl, target, traffic.Filter);
        await traffic.SendAsync(1 << 20);
        await Task.Delay(1000); // a stop does not drain the kernel's capture buffer (as in tcpdump)
        agent.Signal("TERM");
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        var status = await host.Services.GetRequiredService<IIngestStatus>().GetAsync(target, CancellationToken.None);
        Assert.NotNull(status);
        Assert.Equal(UploadPhase.Finished, status.Phase);
        Assert.Equal("s3://kubecapture/captures/payments/partner-timeouts/api-7d9f.pcap", status.Artifact!.Uri);
        Assert.Equal(AgentRun.ReportedSha256(agent), status.Artifact.Sha256);
        Assert.NotNull(status.Artifact.ExpiresAt);

        using var store = new S3ArtifactStore(new S3Options { Endpoint = s3.Endpoint, Bucket = s3.Bucket, AccessKey = S3rverFixture.AccessKey, SecretKey = S3rverFixture.SecretKey }, "captures");
        var downloaded = Path.Combine(Directory.CreateTempSubdirectory("kcI-e2e-").FullName, "api-7d9f.pcap");
        await using (var file = File.Create(downloaded))
        {
            await store.DownloadAsync("captures/payments/partner-timeouts/api-7d9f.pcap", file, CancellationToken.None);
        }

        Assert.Equal(status.Artifact.Sha256, Evidence.Sha256Of(downloaded));
        Assert.Equal(status.Artifact.Size, new FileInfo(downloaded).Length);
        Assert.True(status.Artifact.Size > 1 << 20, $"1 MiB of traffic captured whole (-s 0) makes more than 1 MiB of pcap, got {status.Artifact.Size}");

        var lines = Evidence.TcpdumpLines(downloaded);
        Assert.Equal(status.Manifest!.PacketsWritten, lines.Count);
        Assert.Contains(lines, l => l.Contains($"> 127.0.0.1.{traffic.Port}: Flags [S]", StringComparison.Ordinal));
        Assert.All(lines, l => Assert.Contains($".{traffic.Port}", l, StringComparison.Ordinal));

        var manifest = await store.FindStoredAsync(target, CancellationToken.None);
        Assert.NotNull(manifest);
        Assert.True(manifest.Complete);
        Assert.Equal(status.Artifact.Sha256, manifest.Sha256);
        Assert.Equal("signal", manifest.Agent!.StopReason);

        var stat = await store.Minio.StatObjectAsync(new Minio.DataModel.Args.StatObjectArgs().WithBucket(s3.Bucket).WithObject("captures/payments/partner-timeouts/api-7d9f.pcap"));
        Assert.Equal(target.CaptureUid, stat.MetaData.First(m => m.Key.Contains("capture-uid", StringComparison.OrdinalIgnoreCase)).Value);
        Assert.Null(await store.LoadCheckpointAsync(target, CancellationToken.None));
    }

    [Fact]
    public async Task RealCaptureGoesToTheLocalFilesystemStoreWhenNoS3EndpointIsConfigured()
    {
        var root = Directory.CreateTempSubdirectory("kcI-local-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = root, ["Storage:PartSize"] = "65536" });
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-local-1", "default", "local-capture", "web-0");

        await using var agent = await AgentRun.StartAsync(host.IngestUrl, target, traffic.Filter, null, "-c", "20");
        await traffic.SendAsync(256 << 10, pause: TimeSpan.FromMilliseconds(5));
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        var pcap = Path.Combine(root, "captures", "default", "local-capture", "web-0.pcap");
        Assert.True(File.Exists(pcap), agent.Output);
        Assert.Equal(AgentRun.ReportedSha256(agent), Evidence.Sha256Of(pcap));
        Assert.Equal(20, Evidence.TcpdumpLines(pcap).Count);
        var manifest = StorageJsonContext.ReadManifest(File.ReadAllBytes(Path.Combine(root, "captures", "default", "local-capture", "web-0.manifest.json")));
        Assert.Equal("count", manifest.Agent!.StopReason);
        Assert.Equal(new Uri(pcap).AbsoluteUri, manifest.Uri);
        Assert.False(Directory.EnumerateFileSystemEntries(Path.Combine(root, "captures", ".ingest"), "*", SearchOption.AllDirectories).Any(e => File.Exists(e)), "no checkpoint or part is left behind");
    }

    [Fact]
    public async Task AgentWithAWrongTokenIsRefusedExitsWithAClearErrorAndNothingIsStored()
    {
        var root = Directory.CreateTempSubdirectory("kcI-token-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = root });
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-token-1", "default", "guessing", "web-0");

        await using var agent = await AgentRun.StartAsync(host.IngestUrl, target, traffic.Filter, "not-the-token");
        Assert.Equal(1, await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("the ingest refused the upload (Unauthenticated): the token is not valid for capture default/guessing", agent.Output, StringComparison.Ordinal);
        Assert.Contains("the capture was not stored", agent.Output, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task EarlyStopThroughTheIngestEndsTheRealCaptureCleanlyAndItsPcapIsStored()
    {
        var root = Directory.CreateTempSubdirectory("kcI-early-stop-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = root });
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-early-stop", "default", "early-stop", "web-0");
        var status = host.Services.GetRequiredService<IIngestStatus>();

        await using var agent = await AgentRun.StartAsync(host.IngestUrl, target, traffic.Filter);
        await traffic.SendAsync(64 << 10);
        await IngestProtocolTests.WaitForAsync(status, target, UploadPhase.Streaming, TimeSpan.FromSeconds(10));
        status.RequestStop(target.CaptureUid);

        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("the operator asked to stop", agent.Output, StringComparison.Ordinal);
        var finished = await IngestProtocolTests.WaitForAsync(status, target, UploadPhase.Finished, TimeSpan.FromSeconds(10));
        Assert.Equal("requested", finished.Manifest!.StopReason);
        var pcap = Path.Combine(root, "captures", "default", "early-stop", "web-0.pcap");
        Assert.Equal(finished.Artifact!.Sha256, Evidence.Sha256Of(pcap));
        Assert.Equal(finished.Manifest.PacketsWritten, Evidence.TcpdumpLines(pcap).Count);
    }

    [Fact]
    public async Task AgentInsideAPodNetworkNamespaceStreamsItsCaptureAcrossTheVethToTheIngestAndS3()
    {
        using var pod = new PodNamespace();
        await using var s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3);
        await using var host = await OperatorHost.StartInProcessAsync(settings, PodNamespace.HostAddress);
        var target = new CaptureIdentity("uid-netns", "shop", "checkout-slow", "checkout-0");
        var token = new CaptureTokenIssuer(OperatorHost.TokenSecret).Issue(target);

        await using var server = pod.Start("python3", ["-m", "http.server", "8080", "--bind", PodNamespace.PodAddress]);
        await using var agent = pod.Start("dotnet", [
            "exec", Builds.AgentDll, "capture", "--ingest", host.IngestUrl.ToString(),
            "--capture-uid", target.CaptureUid, "--capture-namespace", target.Namespace, "--capture-name", target.CaptureName, "--pod", target.Pod,
            "-i", pod.PodInterface, "-s", "128", "-c", "500", "--duration", "60s", "tcp port 8080",
        ], new Dictionary<string, string> { ["KUBECAPTURE_TOKEN"] = token });
        await agent.WaitForOutputAsync("kubecapture-agent: listening on", TimeSpan.FromSeconds(30));
        await server.WaitForOutputAsync("Serving HTTP", TimeSpan.FromSeconds(10));

        using (var http = new HttpClient())
        {
            for (var i = 0; i < 3; i++)
            {
                Assert.True((await http.GetAsync($"http://{PodNamespace.PodAddress}:8080/")).IsSuccessStatusCode);
            }
        }

        await Task.Delay(500);
        agent.Signal("TERM");
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        var status = await host.Services.GetRequiredService<IIngestStatus>().GetAsync(target, CancellationToken.None);
        Assert.Equal(UploadPhase.Finished, status!.Phase);
        var pcap = s3.ObjectPath("captures/shop/checkout-slow/checkout-0.pcap")!;
        Assert.Equal(AgentRun.ReportedSha256(agent), Evidence.Sha256Of(pcap));
        Assert.Equal(status.Artifact!.Sha256, Evidence.Sha256Of(pcap));
        var lines = Evidence.TcpdumpLines(pcap);
        Assert.Equal(status.Manifest!.PacketsWritten, lines.Count);
        Assert.Equal(3, lines.Count(l => l.Contains($"> {PodNamespace.PodAddress}.8080: Flags [S],", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.Contains($"{PodNamespace.PodAddress}.8080 > {PodNamespace.HostAddress}.", StringComparison.Ordinal));
        Assert.Equal("EN10MB", status.Manifest.LinkType);
    }
}
