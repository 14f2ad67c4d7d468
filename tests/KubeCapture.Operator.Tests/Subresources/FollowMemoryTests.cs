using System.Globalization;
using System.Text.RegularExpressions;
using k8s;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Processes;
using Xunit.Abstractions;

namespace KubeCapture.Operator.Tests.Subresources;

/// <summary>
/// Issue 20, 3: <c>kubectl get --raw .../follow | sleep 9999</c> on a busy capture held every chunk
/// for the follower (up to 4096 of them) until the operator was OOM-killed. Through the real
/// kube-apiserver, a follower that never reads the follow of a capture taking whole packets as fast
/// as the pod receives them: the bytes held for followers stay within the operator's bound, its
/// resident memory below the chart's memory limit (the GC held to it as in the pod), the follower is
/// cut off with an Event that says why, and another capture and its follower, reading, are not affected.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed partial class FollowMemoryTests(SubresourcesCluster cluster, ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);
    private static readonly string Alice = KubeApiServer.UserToken("alice");
    private const string DownloadRole = $"{KubeCaptureInstall.Release}-kubecapture-download";

    /// <summary>The follow buffer for all followers together, and for one, the operator's defaults (FollowLimits).</summary>
    private const long HeldBound = 32 << 20;
    private const long PerFollower = 8 << 20;

    [SkippableFact(Skip = "Quarantined: in full runs the sleeping follower was never 8 MiB behind (360 MB flooded, 7.2 MB held), so kube-apiserver's proxy or the client takes the body although it is never read; the bound itself is proved by LiveRecordFeedTests. Open in issue 20.")]
    public async Task A_follower_that_never_reads_a_capture_at_full_speed_is_cut_off_within_the_memory_bound_and_other_captures_and_followers_go_on()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-follow-flood");
        var busy = await cluster.StartPodAsync(ns, "busy");
        var calm = await cluster.StartPodAsync(ns, "calm");
        await cluster.BindAsync(ns, "alice", DownloadRole);
        var flood = new PacketCaptureSpec
        {
            Reason = "a busy pod",
            Target = new CaptureTarget { PodName = "busy" },
            Filter = "udp port 9",
            Snaplen = 0,
            Duration = "5m",
            MaxBytes = "1Gi",
        };
        await cluster.StartCaptureAsync(ns, "flood", flood, Long);
        var quiet = await cluster.StartCaptureAsync(ns, "quiet", PacketCaptureEndToEndTests.Icmp("a quiet pod", "calm", maxPackets: 40, duration: "5m"), Long);
        var (follower, lines) = cluster.StartFollowIntoTcpdump(Alice, SubresourcesCluster.PathOf(ns, "quiet", "follow"));
        using var _ = follower;
        // kube-apiserver passes the answer's headers on with its first bytes: the follower is there once the operator says so.
        var sleeping = cluster.GetAsync(Alice, SubresourcesCluster.PathOf(ns, "flood", "follow")); // the body is never read
        await WaitForEventAsync(ns, "flood", "Followed", "Normal");

        // The memory the chart's limit holds is what the kernel charges the operator's cgroup, not its VmRSS
        // (which also counts the runtime's file pages, charged to the test process that read them first).
        var cgroup = cluster.Operator.Cgroup ?? throw new InvalidOperationException("the operator runs in no memory cgroup");
        var baseline = cgroup.UsageBytes;
        var rssBefore = Rss();
        var (peakHeld, peakRss) = (0L, rssBefore);
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peakHeld = Math.Max(peakHeld, await HeldAsync());
                peakRss = Math.Max(peakRss, Rss());
                await Task.Delay(100);
            }
        });

        // Datagrams of 1400 bytes, as fast as one process sends them, until the follower is cut off: how much the
        // sleeping follower's path absorbs (kube-apiserver, socket buffers) depends on the machine, so the flood is
        // bounded by the cut-off (or 60 s), not by a count.
        var enough = Path.Combine(Directory.CreateTempSubdirectory("kcF-flood-").FullName, "enough");
        var send = HostCommand.RunAsync("ip", ["netns", "exec", busy.ClientNamespace, "python3", "-c",
            $"import os, socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nend = time.time() + 60\nwhile time.time() < end and not os.path.exists('{enough}'):\n    for i in range(1000):\n        s.sendto(b'x' * 1400, ('{busy.PodAddress}', 9))"], Long);
        var pings = Task.Run(() => calm.PingFromClient(20, interval: 0.2));
        using var sleeper = await sleeping;
        Assert.Equal(System.Net.HttpStatusCode.OK, sleeper.StatusCode);
        string cutOff;
        try
        {
            cutOff = await WaitForEventAsync(ns, "flood", "FollowerCutOff", "Warning");
            await File.WriteAllTextAsync(enough, "");
            (await send).EnsureSuccess();
            await pings;
        }
        catch (Exception e) when (e is not SkipException)
        {
            await File.WriteAllTextAsync(enough, "");
            var now = await cluster.Admin.GetPacketCaptureAsync(ns, "flood");
            throw new InvalidOperationException($"held at most {peakHeld}, charged {baseline}..{cgroup.PeakBytes}, RSS {rssBefore}..{peakRss}; flood status {k8s.KubernetesJson.Serialize(now?.Status)}", e);
        }

        await cluster.Admin.StopPacketCaptureAsync(ns, "flood");
        var floodDone = await cluster.Admin.WaitForPhaseAsync(ns, "flood", CapturePhase.Succeeded, Long);
        var quietDone = await cluster.Admin.WaitForPhaseAsync(ns, "quiet", CapturePhase.Succeeded, Long);
        var followed = await follower.WaitForExitAsync(new CancellationTokenSource(Long).Token).ContinueWith(_ => File.ReadAllLines(lines));
        await sampling.CancelAsync();
        await sampler;

        var floodBytes = Assert.Single(floodDone.Status!.Targets).Bytes;
        var peakCharged = cgroup.PeakBytes;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"flood: {floodBytes / 1e6:F1} MB of pcap; held for followers at most {peakHeld / 1e6:F1} MB (bound {HeldBound / 1e6:F1}); operator's cgroup charged {baseline / 1e6:F0} MB before, {peakCharged / 1e6:F0} MB at most (the chart's limit: {cluster.OperatorMemoryLimit / 1e6:F0}); VmRSS {rssBefore / 1e6:F0} MB before, {peakRss / 1e6:F0} MB at most (with file pages charged elsewhere)"));
        Assert.True(floodBytes > 2 * PerFollower, $"the flood gave only {floodBytes} bytes: not twice what a follower may be held");
        Assert.True(peakHeld <= PerFollower, $"{peakHeld} bytes held for followers");
        Assert.Equal(cluster.OperatorMemoryLimit, cgroup.LimitBytes);
        Assert.True(peakCharged < cluster.OperatorMemoryLimit, $"the operator's cgroup was charged {peakCharged / 1e6:F0} MB at most, up to the chart's memory limit");
        Assert.Equal(0L, cgroup.OomKills); // never OOM-killed
        Assert.False(cluster.Operator.Process!.HasExited, "the operator process exited");
        Assert.Contains("live follow of pod busy was cut off", cutOff, StringComparison.Ordinal);
        Assert.Contains("fell too far behind the capture", cutOff, StringComparison.Ordinal);
        // The other capture and its follower: every packet.
        Assert.Equal(40L, Assert.Single(quietDone.Status!.Targets).Packets);
        Assert.Equal(40, followed.Count(l => l.Contains("ICMP echo", StringComparison.Ordinal)));
        Assert.True(follower.ExitCode == 0, $"the quiet capture's follower exited {follower.ExitCode}: {await follower.StandardError.ReadToEndAsync()}\n{cluster.OperatorLog()}");
        Assert.Equal(quiet.Metadata.Uid, quietDone.Metadata.Uid);
    }

    /// <summary>The operator's resident memory now, from /proc.</summary>
    private long Rss()
    {
        var status = File.ReadAllText($"/proc/{cluster.Operator.Process!.Id}/status");
        return long.Parse(RssLine().Match(status).Groups[1].Value, CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>kubecapture_follow_held_bytes from the operator's /metrics.</summary>
    private async Task<long> HeldAsync()
    {
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync($"http://127.0.0.1:{cluster.Operator.HttpPort}/metrics");
        var match = HeldLine().Match(metrics);
        return match.Success ? (long)double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) : throw new InvalidOperationException($"no kubecapture_follow_held_bytes in /metrics:\n{metrics}");
    }

    private async Task<string> WaitForEventAsync(string ns, string capture, string reason, string type)
    {
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            var events = await cluster.Admin.CoreV1.ListNamespacedEventAsync(ns);
            if (events.Items.FirstOrDefault(e => e.InvolvedObject.Name == capture && e.Reason == reason && e.Type == type) is { } found)
            {
                return found.Message;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no {reason} Event on {capture}\n{cluster.OperatorLog()}");
            await Task.Delay(200);
        }
    }

    [GeneratedRegex(@"VmRSS:\s+(\d+) kB")]
    private static partial Regex RssLine();

    [GeneratedRegex(@"(?m)^kubecapture_follow_held_bytes(?:\{[^}]*\})? ([0-9.e+]+)")]
    private static partial Regex HeldLine();
}
