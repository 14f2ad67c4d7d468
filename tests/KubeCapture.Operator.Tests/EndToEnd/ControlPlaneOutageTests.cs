using System.Net;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// The control plane (etcd and kube-apiserver) and the storage go away in the middle of a capture
/// and come back: the operator process stays up, its ingest keeps the agent's stream, readiness
/// says what is missing, and afterwards the capture ends Succeeded with every packet and a capture
/// created after the outage runs. On a kube-apiserver of its own (the others keep theirs).
/// </summary>
public sealed class ControlPlaneOutageTests(OwnApiServerCluster cluster) : IClassFixture<OwnApiServerCluster>
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    [SkippableTheory]
    [InlineData(10)]
    [InlineData(60)] // longer than the Lease (6 s): leadership is lost and taken back
    public async Task A_control_plane_outage_mid_capture_leaves_the_operator_up_and_the_capture_Succeeds_with_the_packets_sent_meanwhile(int seconds)
    {
        var ns = await cluster.CreateNamespaceAsync($"kc-outage{seconds}");
        var pod = await cluster.StartPodAsync(ns, "api");
        var capture = await StartCaptureAsync(ns, "through-outage", "api", maxPackets: 24);
        pod.PingFromClient(4);

        string readiness;
        await cluster.Server.StopProcessesAsync();
        try
        {
            var outage = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
            pod.PingFromClient(4); // captured and streamed to the ingest while the API is gone
            readiness = await WaitForReadinessAsync(HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(30));
            await Task.Delay(outage - DateTime.UtcNow is { Ticks: > 0 } rest ? rest : TimeSpan.Zero);
            Assert.False(cluster.Operator.Process!.HasExited, "the operator exited during the outage:\n" + cluster.OperatorLog());
        }
        finally
        {
            await cluster.Server.RestartAsync(); // whatever happened, the next test gets its control plane back
        }

        pod.PingFromClient(4);

        var done = await cluster.Admin.WaitForPhaseAsync(ns, "through-outage", CapturePhase.Succeeded, Long);
        await WaitForReadinessAsync(HttpStatusCode.OK, TimeSpan.FromSeconds(60));

        Assert.Contains("kubernetes-api", readiness, StringComparison.Ordinal);
        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal((24L, "count"), (target.Packets, target.StopReason));
        var downloaded = await cluster.DownloadAsync(target.Artifact!);
        Assert.Equal(Evidence.Sha256Of(downloaded), target.Artifact!.Sha256);
        Assert.Equal(24, Evidence.TcpdumpLines(downloaded).Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        Assert.Equal(capture, Assert.Single(await cluster.CaptureContainersAsync(ns, "api")).Name);
        await ANewCaptureRunsAsync(ns);
    }

    [SkippableFact]
    public async Task Storage_down_for_longer_than_a_part_mid_capture_delays_the_upload_and_loses_nothing()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-outage-s3");
        var pod = await cluster.StartPodAsync(ns, "api");
        await StartCaptureAsync(ns, "storage-gap", "api", maxPackets: 200, snaplen: 0);

        string readiness;
        await cluster.S3.StopAsync();
        try
        {
            pod.PingFromClient(100, size: 1200, interval: 0.02); // 200 packets, ~250 KB: several 64 KiB parts wait for storage
            readiness = await WaitForReadinessAsync(HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(30));
            await Task.Delay(TimeSpan.FromSeconds(5));
        }
        finally
        {
            await cluster.S3.StartAsync();
        }

        var done = await cluster.Admin.WaitForPhaseAsync(ns, "storage-gap", CapturePhase.Succeeded, Long);
        Assert.Contains("storage", readiness, StringComparison.Ordinal);
        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal(200L, target.Packets);
        Assert.True(target.Artifact!.Size > 3 * (64 << 10), $"{target.Artifact.Size} bytes: not more than a few parts");
        Assert.Equal(Evidence.Sha256Of(await cluster.DownloadAsync(target.Artifact)), target.Artifact.Sha256);
    }

    [SkippableFact]
    public async Task Control_plane_and_storage_down_at_once_mid_capture_and_the_capture_still_Succeeds()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-outage-both");
        var pod = await cluster.StartPodAsync(ns, "api");
        await StartCaptureAsync(ns, "both-gone", "api", maxPackets: 16);
        pod.PingFromClient(2);

        string readiness;
        await cluster.Server.StopProcessesAsync();
        await cluster.S3.StopAsync();
        try
        {
            pod.PingFromClient(4);
            readiness = await WaitForReadinessAsync(HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(30));
            await Task.Delay(TimeSpan.FromSeconds(8));
            Assert.False(cluster.Operator.Process!.HasExited, "the operator exited during the outage:\n" + cluster.OperatorLog());
        }
        finally
        {
            await cluster.S3.StartAsync();
            await cluster.Server.RestartAsync();
        }

        pod.PingFromClient(2);

        var done = await cluster.Admin.WaitForPhaseAsync(ns, "both-gone", CapturePhase.Succeeded, Long);
        Assert.Contains("kubernetes-api", readiness, StringComparison.Ordinal);
        Assert.Contains("storage", readiness, StringComparison.Ordinal);
        var target = Assert.Single(done.Status!.Targets);
        Assert.Equal(16L, target.Packets);
        Assert.Equal(Evidence.Sha256Of(await cluster.DownloadAsync(target.Artifact!)), target.Artifact!.Sha256);
        await ANewCaptureRunsAsync(ns);
    }

    private async Task<string> StartCaptureAsync(string ns, string name, string pod, long maxPackets, int snaplen = 128)
    {
        var created = await cluster.StartCaptureAsync(ns, name, new PacketCaptureSpec
        {
            Reason = "outage",
            Target = new CaptureTarget { PodName = pod },
            Filter = "icmp",
            MaxPackets = maxPackets,
            Duration = "10m",
            Snaplen = snaplen,
        }, Long);
        return EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
    }

    /// <summary>After the outage the operator still picks up new work: a capture on a new pod runs to Succeeded.</summary>
    private async Task ANewCaptureRunsAsync(string ns)
    {
        var pod = await cluster.StartPodAsync(ns, "after");
        await StartCaptureAsync(ns, "after-outage", "after", maxPackets: 2);
        pod.PingFromClient(1);
        await cluster.Admin.WaitForPhaseAsync(ns, "after-outage", CapturePhase.Succeeded, Long);
    }

    /// <summary>Polls /readyz until it answers <paramref name="expected"/>; returns what it said.</summary>
    private async Task<string> WaitForReadinessAsync(HttpStatusCode expected, TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + timeout;
        var last = "";
        while (DateTime.UtcNow < deadline)
        {
            using var response = await http.GetAsync($"http://127.0.0.1:{cluster.Operator.HttpPort}/readyz");
            last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            if (response.StatusCode == expected)
            {
                return last;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"/readyz did not answer {(int)expected} within {timeout}; last: {last}\n{cluster.OperatorLog()}");
    }
}
