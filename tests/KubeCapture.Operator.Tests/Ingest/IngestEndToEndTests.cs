using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>A real capture by the real agent, streamed agent -> ingest -> storage, and checked from outside (the same against every S3 server: Storage/IngestStorageTests).</summary>
public sealed class IngestEndToEndTests
{
    [Fact]
    public async Task RealCaptureGoesToTheLocalFilesystemStoreWhenNoS3EndpointIsConfigured()
    {
        var root = Directory.CreateTempSubdirectory("kcI-local-").FullName;
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = root, ["Storage:PartSize"] = "65536" });
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-local-1", "default", "local-capture", "web-0");

        await using var agent = await AgentRun.StartAsync(host, target, traffic.Filter, null, "-c", "20");
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

        await using var agent = await AgentRun.StartAsync(host, target, traffic.Filter, "not-the-token");
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

        await using var agent = await AgentRun.StartAsync(host, target, traffic.Filter);
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
        // The pod and its link to the host, on a subnet no other test process uses.
        await using var lab = await NetnsLab.CreateAsync("kcI");
        using var link = await NodeLink.ConnectAsync(lab.Server);
        await using var s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3);
        await using var host = await OperatorHost.StartInProcessAsync(settings, link.NodeAddress);
        var target = new CaptureIdentity("uid-netns", "shop", "checkout-slow", "checkout-0");

        await using var server = await lab.Server.StartHttpServerAsync(8080, new Dictionary<string, int> { ["index.html"] = 1000 });
        await using var agent = await AgentRun.StartInPodAsync(lab.Server.Name, host, target, link.PodInterface, "128", "tcp port 8080");

        using (var http = new HttpClient())
        {
            for (var i = 0; i < 3; i++)
            {
                Assert.True((await http.GetAsync($"http://{link.PodAddress}:8080/index.html")).IsSuccessStatusCode);
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
        Assert.Equal(3, lines.Count(l => l.Contains($"> {link.PodAddress}.8080: Flags [S],", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.Contains($"{link.PodAddress}.8080 > {link.NodeAddress}.", StringComparison.Ordinal));
        Assert.Equal("EN10MB", status.Manifest.LinkType);
    }
}
