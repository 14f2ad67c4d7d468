using System.Diagnostics;
using System.Globalization;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Contracts.Summary;
using KubeCapture.Operator.Reconciliation;
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

        // Healthy traffic through the same middlebox: nothing wrong anywhere, only each end's latency figures (Info).
        {
            var ends = await healthy;
            Assert.Equal(0, ends.Done.Status!.FindingCount);
            foreach (var target in new[] { ends.Web, ends.Db })
            {
                var latency = Assert.Single(target.Findings!);
                Assert.Equal((FindingTypes.Latency, FindingSeverity.Info), (latency.Type, latency.Severity));
                Assert.EndsWith("nothing points at the application.", latency.Message, StringComparison.Ordinal);
            }

            Assert.All(ends.Done.Status.Findings!, f => Assert.Equal((FindingTypes.Latency, FindingSeverity.Info), (f.Type, f.Severity)));
            var arrived = await PayloadBytesAsync(ends.WebPcap); // the file and the response headers, each byte once
            Assert.InRange(arrived, 204_800 + 100, 204_800 + 400);
            Assert.Equal(await PayloadBytesAsync(ends.DbPcap), arrived);
        }
    }

    [SkippableFact]
    public async Task An_icmp_rejection_a_slow_application_and_a_capture_cut_short_reach_the_status_named_for_what_they_are_with_evidence_in_the_stored_pcaps()
    {
        KubeApiServer.Require();
        ContainerImages.RequireOrSkip();
        var rejected = CaptureAsync("rejected", "connects from web to db fail at once",
            "chain relay { type filter hook forward priority 0; tcp dport 8000 meta nfproto ipv4 reject with icmp type admin-prohibited; }",
            async lab => Assert.NotEqual(0, (await lab.Client.CurlAsync(Url(lab, "small.txt"), TimeSpan.FromSeconds(2.5))).ExitCode));
        System.Diagnostics.Process? slowServer = null;
        var slow = CaptureAsync("slow", "requests from web to db take seconds",
            "chain relay { type filter hook forward priority 0; }",
            async lab => Assert.Equal("200", (await lab.Client.CurlAsync($"http://{lab.Server.IPv4}:{SlowPort}/report", TimeSpan.FromSeconds(10))).Stdout),
            async lab => slowServer = await lab.Server.StartSlowHttpServerAsync(SlowPort, TimeSpan.FromSeconds(1.5)),
            filter: $"tcp port {SlowPort}");
        var cut = CaptureCutShortAsync();
        try
        {
            await Task.WhenAll(rejected, slow, cut);
        }
        finally
        {
            slowServer?.Kill();
            slowServer?.Dispose();
        }

        // A firewall on the path rejects the SYN with ICMP "administratively prohibited": the client's
        // end names it and who sent it, the comparison does not call it a silent drop.
        {
            var ends = await rejected;
            var finding = Assert.Single(ends.Web.Findings!);
            Assert.Equal((FindingTypes.IcmpDestinationUnreachable, FindingSeverity.Error), (finding.Type, finding.Severity));
            Assert.Contains($"answered with ICMP destination unreachable, administratively prohibited (type 3, code 13) by {ends.Middlebox}, a device on the path (not the destination {ends.Server}), quoting its SYN", finding.Message, StringComparison.Ordinal);
            var syn = (await FramesAsync(ends.WebPcap, "tcp.flags.syn == 1"))[0];
            var icmp = (await FramesAsync(ends.WebPcap, "icmp.type == 3 && icmp.code == 13"))[0];
            Assert.Equal([syn, icmp], finding.Evidence.PacketNumbers);
            Assert.Empty(ends.Db.Findings ?? []);
            Assert.Empty(await FramesAsync(ends.DbPcap, "tcp"));
            Assert.DoesNotContain(ends.Done.Status!.Findings!, f => f.Type == FindingTypes.SilentlyDropped);
            Assert.Equal(1, ends.Done.Status.FindingCount);
        }

        // A server that acknowledges at once and answers 1.5 s later: the application's delay, at both ends.
        {
            var ends = await slow;
            foreach (var (target, pcap) in new[] { (ends.Web, ends.WebPcap), (ends.Db, ends.DbPcap) })
            {
                var finding = Assert.Single(target.Findings!);
                Assert.Equal((FindingTypes.ApplicationLatency, FindingSeverity.Warning), (finding.Type, finding.Severity));
                var answered = System.Text.RegularExpressions.Regex.Match(finding.Message, @"(\d+(?:\.\d+)?) s after it");
                Assert.True(answered.Success && double.Parse(answered.Groups[1].Value, CultureInfo.InvariantCulture) >= 1.5, finding.Message); // the server's sleep: a floor, load only adds to it
                Assert.EndsWith("the delay is in the application" + (target == ends.Db ? " here, not the network." : $" at {ends.Server}:{SlowPort}, not the network."), finding.Message, StringComparison.Ordinal);
                var request = Assert.Single(await FramesAsync(pcap, $"tcp.dstport == {SlowPort} && tcp.len > 0"));
                var response = (await FramesAsync(pcap, $"tcp.srcport == {SlowPort} && tcp.len > 0"))[0];
                Assert.Equal(request, finding.Evidence.PacketNumbers[0]);
                Assert.Equal(response, finding.Evidence.PacketNumbers[^1]);
            }

            Assert.Equal(2, ends.Done.Status!.FindingCount);
        }

        // The capture's interface goes away under it: the stored pcap ends there, and the status says the capture is incomplete.
        {
            var (done, pcap) = await cut;
            var target = Assert.Single(done.Status!.Targets);
            Assert.Equal((TargetState.Succeeded, "error"), (target.State, target.StopReason));
            Assert.Contains("libpcap stopped reading", target.Message, StringComparison.Ordinal);
            var packets = (await FramesAsync(pcap, "frame")).Count;
            Assert.True(packets > 0);
            var finding = target.Findings![0];
            Assert.Equal((FindingTypes.CaptureIncomplete, FindingSeverity.Error), (finding.Type, finding.Severity));
            Assert.StartsWith($"The capture is incomplete: it stopped after packet {packets} (libpcap stopped reading", finding.Message, StringComparison.Ordinal);
            Assert.Equal([(long)packets], finding.Evidence.PacketNumbers);
            Assert.Contains(done.Status.Findings!, f => f.Type == FindingTypes.CaptureIncomplete && f.Target == "web");
            Assert.True(done.Status.FindingCount >= 1);
        }
    }

    private const int SlowPort = 8002;

    /// <summary>
    /// One capture of pod "web" on its link to the middlebox (spec.interface), cut short: after one
    /// request the middlebox, and that link with it, is deleted. Returns the finished capture and web's stored pcap.
    /// </summary>
    private async Task<(PacketCapture Done, string Pcap)> CaptureCutShortAsync()
    {
        await Task.Yield();
        var ns = await cluster.CreateNamespaceAsync("kc-ends-cut");
        var web = await cluster.StartPodAsync(ns, "web");
        var db = await cluster.StartPodAsync(ns, "db");
        await using var lab = await MiddleboxLab.JoinAsync(web.PodNamespace, db.PodNamespace);
        await using var http = await lab.Server.StartHttpServerAsync(Port, new Dictionary<string, int> { ["small.txt"] = 1000 });
        var created = await cluster.StartCaptureAsync(ns, "cut", new PacketCaptureSpec
        {
            Reason = "what does web send to db",
            Target = new CaptureTarget { PodName = "web" },
            Interface = lab.Client.Interface,
            Filter = $"tcp port {Port}",
            Duration = "60s",
            Snaplen = 96,
        }, Long, pods: ["web"]);
        Assert.Equal("200", (await lab.Client.CurlAsync(Url(lab, "small.txt"))).Stdout);
        await Task.Delay(500);
        await lab.DisposeAsync(); // the middlebox goes, and web's link to it
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "cut", CapturePhase.Succeeded, Long);
        return (done, await cluster.DownloadAsync(done.Status!.Targets.Single().Artifact!));
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
    private async Task<BothEnds> CaptureAsync(string name, string reason, string chain, Func<MiddleboxLab, Task> traffic, Func<MiddleboxLab, Task>? prepare = null, string? filter = null)
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

        var created = await cluster.StartCaptureAsync(ns, name, new PacketCaptureSpec
        {
            Reason = reason,
            Target = new CaptureTarget { PodSelector = new V1LabelSelector { MatchLabels = labels } },
            Filter = filter ?? $"tcp port {Port} or tcp port {ClosedPort}",
            Duration = "60s",
            Snaplen = 96,
        }, Long, pods: ["web", "db"]);
        var container = EphemeralContainerSpec.ContainerName(created.Metadata.Uid);
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
        return new BothEnds(done, webTarget, dbTarget, await cluster.DownloadAsync(webTarget.Artifact!), await cluster.DownloadAsync(dbTarget.Artifact!),
            lab.Middlebox.IPv4.ToString(), lab.Server.IPv4.ToString());
    }

    /// <summary>A succeeded capture of both ends: its targets, their stored pcaps, and the middlebox's and the server's addresses toward the client.</summary>
    private sealed record BothEnds(PacketCapture Done, CaptureTargetStatus Web, CaptureTargetStatus Db, string WebPcap, string DbPcap, string Middlebox, string Server)
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
