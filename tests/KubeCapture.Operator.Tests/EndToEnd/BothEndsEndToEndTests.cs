using System.Diagnostics;
using System.Globalization;
using k8s.Models;
using KubeCapture.Agent.Summary;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Containers;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;
using Xunit.Abstractions;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// The field guide's scenarios at both ends, through the whole cluster path: in each scenario's own
/// namespace a client pod "web" and a server pod "db" (HTTP on 8000), joined through a middlebox
/// network namespace whose nftables makes the trouble (<see cref="MiddleboxLab.JoinAsync"/>), one
/// PacketCapture selecting both, the agent image run by the test kubelet in each pod, the pcaps
/// streamed over TLS to the operator's ingest and stored in s3rver, and the operator comparing the
/// two ends into status.findings. All scenarios run at once (one capture each, created together and
/// awaited together); the stored pcaps, downloaded from s3rver and read by tshark, are the ground truth.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class BothEndsEndToEndTests(SubresourcesCluster cluster, ITestOutputHelper output)
{
    private const int Port = 8000;
    private const int ClosedPort = 8001;
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task The_field_guides_scenarios_captured_at_both_ends_through_the_cluster_get_the_findings_each_end_and_the_comparison_give_with_evidence_in_the_stored_pcaps()
    {
        KubeApiServer.Require(); // skips here when the cluster cannot run (as CreateNamespaceAsync does)
        ContainerImages.RequireOrSkip();
        var clock = Stopwatch.StartNew();
        var returnPath = CaptureAsync("return-path", "calls to db hang in connect",
            "chain relay { type filter hook forward priority 0; tcp sport 8000 tcp flags & (syn | ack) == syn | ack drop; }",
            async lab => Assert.Equal(28, (await lab.Client.CurlAsync(Url(lab, "small.txt"), TimeSpan.FromSeconds(2.5))).ExitCode));
        var reset = CaptureAsync("reset", "connections between web and db die",
            "chain relay { type filter hook forward priority 0; tcp dport 8000 tcp flags & psh == psh reject with tcp reset; }",
            async lab => Assert.Equal(56, (await lab.Client.CurlAsync(Url(lab, "small.txt"))).ExitCode));
        var mtu = CaptureAsync("mtu", "small responses work, big ones hang",
            "chain out { type filter hook output priority 0; icmp type destination-unreachable icmp code frag-needed drop; }",
            async lab => Assert.Equal(28, (await lab.Client.CurlAsync(Url(lab, "200k.bin"), TimeSpan.FromSeconds(3))).ExitCode),
            lab => lab.Middlebox.SetMtuAsync(1280)); // the middlebox's link toward the client
        var refused = CaptureAsync("refused", "web cannot reach db",
            "chain relay { type filter hook forward priority 0; }",
            async lab => Assert.Equal(7, (await lab.Client.CurlAsync($"http://{lab.Server.IPv4}:{ClosedPort}/")).ExitCode));
        var dropped = CaptureAsync("dropped", "connects from web to db time out",
            "chain relay { type filter hook forward priority 0; tcp dport 8000 tcp flags syn drop; }",
            async lab => Assert.Equal(28, (await lab.Client.CurlAsync(Url(lab, "small.txt"), TimeSpan.FromSeconds(2.5))).ExitCode));
        var lossy = CaptureAsync("lossy", "downloads from db are slow",
            "chain relay { type filter hook forward priority 0; tcp sport 8000 meta length > 1000 numgen inc mod 5 == 0 counter drop; }",
            async lab =>
            {
                Assert.Equal("200", (await lab.Client.CurlAsync(Url(lab, "200k.bin"), TimeSpan.FromSeconds(20))).Stdout);
                Assert.True(await lab.Middlebox.NftablesCounterPacketsAsync("kcends", "relay") > 0, "the middlebox dropped nothing");
            });
        var healthy = CaptureAsync("healthy", "is the path between web and db fine?",
            "chain relay { type filter hook forward priority 0; }",
            async lab => Assert.Equal("200", (await lab.Client.CurlAsync(Url(lab, "200k.bin"))).Stdout));
        await Task.WhenAll(returnPath, reset, mtu, refused, dropped, lossy, healthy);
        output.WriteLine($"seven scenarios captured at both ends in {clock.Elapsed.TotalSeconds:0.0} s");

        // 1. The SYN-ACK dropped on the way back: the server's end says "return path", the client's
        // cannot tell a lost SYN from a lost SYN-ACK, the comparison can.
        {
            var ends = await returnPath;
            Assert.Contains(ends.Web.Findings!, f => f.Type == FindingTypes.SynUnanswered);
            Assert.Contains(ends.Db.Findings!, f => f.Type == FindingTypes.HandshakeIncomplete);
            Assert.Empty(await FramesAsync(ends.WebPcap, "tcp.flags.syn == 1 && tcp.flags.ack == 1")); // never arrived
            var compared = ends.First(FindingTypes.ReturnPath);
            Assert.Contains("none reached the client", compared.Message, StringComparison.Ordinal);
            // The first SYN-ACK the server sent, in the server pod's stored pcap.
            Assert.Equal((await FramesAsync(ends.DbPcap, "tcp.flags.syn == 1 && tcp.flags.ack == 1")).Take(1), compared.Evidence.PacketNumbers);
        }

        // 2. The middlebox resets an established connection in the server's name.
        {
            var ends = await reset;
            Assert.Contains(ends.Web.Findings!, f => f.Type == FindingTypes.ResetSuspectedForged);
            Assert.DoesNotContain(ends.Web.Findings!, f => f.Type == FindingTypes.ResetByEndpoint);
            Assert.Contains(ends.Db.Findings!, f => f.Type == FindingTypes.NoDataAfterHandshake);
            var compared = ends.First(FindingTypes.ResetFromMiddlebox);
            Assert.Contains("the server's own capture shows it never sent one", compared.Message, StringComparison.Ordinal);
            Assert.Contains("TTL 64 where the server's other packets had 63", compared.Message, StringComparison.Ordinal);
            Assert.Equal(["bare-rst", "ttl-mismatch"], compared.Evidence.Indicators.Order(StringComparer.Ordinal));
            Assert.Equal(await FramesAsync(ends.WebPcap, "tcp.flags.reset == 1"), compared.Evidence.PacketNumbers);
            Assert.Empty(await FramesAsync(ends.DbPcap, "tcp.flags.reset == 1 || tcp.len > 0")); // the server never heard of it
            Assert.Equal(3, ends.Done.Status!.FindingCount);
        }

        // 3. A narrower middle link, its ICMP "fragmentation needed" dropped: the sender's end names
        // the blackhole, the receiver's says the data never arrived; neither reads as healthy.
        {
            var ends = await mtu;
            var blackhole = Assert.Single(ends.Db.Findings!, f => f.Type == FindingTypes.MtuBlackhole);
            Assert.Contains("ICMP 'fragmentation needed'", blackhole.Message, StringComparison.Ordinal);
            var big = await FramesAsync(ends.DbPcap, $"tcp.srcport == {Port} && tcp.len > 1240");
            Assert.NotEmpty(blackhole.Evidence.PacketNumbers);
            Assert.All(blackhole.Evidence.PacketNumbers, n => Assert.Contains(n, big));
            Assert.Contains(ends.Web.Findings!, f => f.Type == FindingTypes.DataStalled);
            Assert.Empty(await FramesAsync(ends.WebPcap, $"tcp.srcport == {Port} && tcp.len > 1240")); // no full-size segment arrived
        }

        // Refused: both ends say so, with the SYN and the RST; nothing more to compare.
        {
            var ends = await refused;
            foreach (var (target, pcap) in new[] { (ends.Web, ends.WebPcap), (ends.Db, ends.DbPcap) })
            {
                var finding = Assert.Single(target.Findings!);
                Assert.Equal(FindingTypes.ConnectionRefused, finding.Type);
                Assert.Equal(await FramesAsync(pcap, "tcp.flags.syn == 1 || tcp.flags.reset == 1"), finding.Evidence.PacketNumbers);
            }

            Assert.Equal(2, ends.Done.Status!.FindingCount);
            Assert.All(ends.Done.Status.Findings!, f => Assert.NotEqual(Pods(ends.Done), f.Target));
        }

        // Silently dropped SYNs: they left the client and the server's capture has nothing.
        {
            var ends = await dropped;
            var unanswered = Assert.Single(ends.Web.Findings!);
            Assert.Equal(FindingTypes.SynUnanswered, unanswered.Type);
            Assert.Empty(ends.Db.Findings ?? []);
            Assert.Empty(await FramesAsync(ends.DbPcap, "tcp"));
            var compared = ends.First(FindingTypes.SilentlyDropped);
            var syns = await FramesAsync(ends.WebPcap, "tcp.flags.syn == 1 && tcp.flags.ack == 0");
            Assert.Contains($"{syns.Count} SYNs left the client (its capture) and none reached the server", compared.Message, StringComparison.Ordinal);
            Assert.Equal(syns.Take(1), compared.Evidence.PacketNumbers);
        }

        // Loss on one leg: the bytes that left the server and never reached the client, by tshark's count at each end.
        {
            var ends = await lossy;
            var loss = ends.First(FindingTypes.LossOnOneLeg);
            Assert.Equal(["server-to-client"], loss.Evidence.Indicators);
            var sent = await PayloadBytesAsync(ends.DbPcap);
            var arrived = await PayloadBytesAsync(ends.WebPcap);
            Assert.True(arrived < sent, $"tshark: {sent} bytes sent, {arrived} arrived");
            Assert.Contains($"{sent - arrived} of the {sent} payload bytes the server sent toward the client", loss.Message, StringComparison.Ordinal);
            Assert.Contains(ends.Db.Findings!, f => f.Type == FindingTypes.Retransmissions);
        }

        // Healthy traffic through the same middlebox: no finding anywhere.
        {
            var ends = await healthy;
            Assert.Equal(0, ends.Done.Status!.FindingCount);
            Assert.Null(ends.Done.Status.Findings);
            Assert.Empty(ends.Web.Findings ?? []);
            Assert.Empty(ends.Db.Findings ?? []);
            var arrived = await PayloadBytesAsync(ends.WebPcap); // the file and the response headers, each byte once
            Assert.InRange(arrived, 204_800 + 100, 204_800 + 400);
            Assert.Equal(await PayloadBytesAsync(ends.DbPcap), arrived);
        }
    }

    private static string Url(MiddleboxLab lab, string file) => $"http://{lab.Server.IPv4}:{Port}/{file}";

    private static string Pods(PacketCapture done) => string.Join(',', done.Status!.Targets.Select(t => t.Pod));

    /// <summary>tshark's frame numbers of the packets <paramref name="displayFilter"/> matches.</summary>
    private static async Task<List<long>> FramesAsync(string pcap, string displayFilter) =>
        [.. (await Tshark.FieldsAsync(pcap, ["frame.number"], displayFilter)).Select(f => long.Parse(f[0], CultureInfo.InvariantCulture))];

    /// <summary>tshark's sum of tcp.len of what the server sent (retransmissions included).</summary>
    private static async Task<long> PayloadBytesAsync(string pcap) =>
        (await Tshark.FieldsAsync(pcap, ["tcp.len"], $"tcp.srcport == {Port}")).Sum(f => long.Parse(f[0], CultureInfo.InvariantCulture));

    /// <summary>
    /// One scenario: its namespace, pods web and db, the middlebox between them with
    /// <paramref name="chain"/> in its table inet kcends, one capture of both (podSelector), the
    /// traffic while both agents listen, the capture stopped, and both stored pcaps downloaded.
    /// </summary>
    private async Task<BothEnds> CaptureAsync(string name, string reason, string chain, Func<MiddleboxLab, Task> traffic, Func<MiddleboxLab, Task>? prepare = null)
    {
        await Task.Yield();
        var ns = await cluster.CreateNamespaceAsync($"kc-ends-{name}");
        var labels = new Dictionary<string, string> { ["app"] = name };
        var web = await cluster.StartPodAsync(ns, "web", labels);
        var db = await cluster.StartPodAsync(ns, "db", labels);
        await using var lab = await MiddleboxLab.JoinAsync(web.PodNamespace, db.PodNamespace);
        await using var http = await lab.Server.StartHttpServerAsync(Port, new Dictionary<string, int> { ["small.txt"] = 1000, ["200k.bin"] = 204_800 });
        await lab.Middlebox.AddNftablesAsync($"table inet kcends {{\n  {chain}\n}}\n");
        if (prepare is not null)
        {
            await prepare(lab);
        }

        var created = await cluster.Admin.CreatePacketCaptureAsync(ns, name, new PacketCaptureSpec
        {
            Reason = reason,
            Target = new CaptureTarget { PodSelector = new V1LabelSelector { MatchLabels = labels } },
            Filter = $"tcp port {Port} or tcp port {ClosedPort}",
            Duration = "60s",
            Snaplen = 96,
        });
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
        await cluster.Admin.WaitForPhaseAsync(ns, name, CapturePhase.Running, Long);
        await cluster.Kubelet.WaitUntilListeningAsync(ns, "web", container, Long);
        await cluster.Kubelet.WaitUntilListeningAsync(ns, "db", container, Long);
        await traffic(lab);
        await Task.Delay(500);
        await cluster.Admin.StopPacketCaptureAsync(ns, name);
        PacketCapture done;
        try
        {
            done = await cluster.Admin.WaitForPhaseAsync(ns, name, CapturePhase.Succeeded, Long);
        }
        catch (TimeoutException e)
        {
            // With what the operator logged of this namespace (its storage retries, refusals).
            throw new TimeoutException($"{e.Message}\n{string.Join('\n', cluster.Operator.Output.Split('\n').Where(l => l.Contains(ns, StringComparison.Ordinal)))}", e);
        }

        var targets = done.Status!.Targets;
        var (webTarget, dbTarget) = (targets.Single(t => t.Pod == "web"), targets.Single(t => t.Pod == "db"));
        return new BothEnds(done, webTarget, dbTarget, await cluster.DownloadAsync(webTarget.Artifact!), await cluster.DownloadAsync(dbTarget.Artifact!));
    }

    /// <summary>A succeeded capture of both ends: its targets and their stored pcaps.</summary>
    private sealed record BothEnds(PacketCapture Done, CaptureTargetStatus Web, CaptureTargetStatus Db, string WebPcap, string DbPcap)
    {
        /// <summary>The comparison's finding of <paramref name="type"/>: the first of the capture's findings, naming both pods.</summary>
        public CaptureFinding First(string type)
        {
            var findings = Done.Status!.Findings ?? [];
            var compared = Assert.Single(findings, f => f.Type == type);
            Assert.Same(compared, findings[0]);
            Assert.Equal(Pods(Done), compared.Target);
            return compared;
        }
    }
}
