using System.Globalization;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>
/// Paths that make TCP send data again, or deliver it twice or late, without losing any: jitter that
/// reorders, a network that duplicates, a receiver that stops reading. Real traffic through the
/// middlebox lab, the agent at both ends; the ground truth is tshark reading both pcaps
/// (<see cref="SegmentTruth"/>: which copy each arriving segment is, by its IP identification). Loss
/// is never claimed where there was none, and each thing is named for what it is.
/// </summary>
public sealed class ResendingTrafficTests : IAsyncLifetime
{
    private const int Port = 8000;
    private const string Filter = "tcp port 8000";
    private MiddleboxLab _lab = null!;
    private HttpFileServer _http = null!;
    private readonly CaptureFiles _files = new();

    public async Task InitializeAsync()
    {
        _lab = await MiddleboxLab.CreateAsync("kcRS");
        _http = await _lab.Server.StartHttpServerAsync(Port, new Dictionary<string, int> { ["200k.bin"] = 204_800 });
    }

    public async Task DisposeAsync()
    {
        await _http.DisposeAsync();
        await _lab.DisposeAsync();
        _files.Dispose();
    }

    [Fact]
    public async Task JitterThatReordersIsOutOfOrderAndSpuriousRetransmissionsAtTheReceiverAndTheComparisonNeverLoss()
    {
        await AddJitterAsync();
        var (client, server) = await BothEndsCapture.CaptureAsync(_lab, _files, Filter, async () =>
        {
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal("200", (await _lab.Client.CurlAsync(_http.Url("200k.bin"), TimeSpan.FromSeconds(20))).Stdout);
            }
        });

        // Ground truth: nothing was dropped on the path; the server sent segments again; every first copy arrived.
        Assert.Equal(0, await MiddleboxDropsAsync());
        var truth = await SegmentTruth.OfAsync(server.Pcap, client.Pcap, $"tcp.srcport == {Port}", "tcp.dstport");
        Assert.True(truth.SentAgain > 0, "the jitter made the server send nothing again: the scenario did not happen");
        Assert.Equal(0, truth.FirstCopiesNeverArrived);
        Assert.Equal(truth.SentAgain, (await BothEndsCapture.FramesAsync(server.Pcap, SentAgainAtTheSender)).Count); // tshark at the sender agrees

        // At the client (the receiver): each copy sent again arrived as well as its first copy: spurious; the late first copies are out of order.
        var c = client.Summary;
        Assert.Equal((truth.SentAgain, truth.SentAgain), (c.Retransmissions, c.SpuriousRetransmissions));
        Assert.Equal(truth.DuplicatesAtReceiver, c.DuplicateSegments);
        Assert.True(c.OutOfOrderSegments >= truth.LateFirstCopies, $"{c.OutOfOrderSegments} out of order, {truth.LateFirstCopies} first copies arrived after their retransmission");
        Assert.DoesNotContain(c.Findings, f => f.Type is FindingTypes.Retransmissions or FindingTypes.DataStalled or FindingTypes.MtuBlackhole);
        Assert.All(c.Findings.Where(f => f.Type == FindingTypes.SpuriousRetransmissions), f =>
        {
            Assert.Contains("arrived twice: the first copy had already arrived here", f.Message);
            Assert.DoesNotContain(f.Evidence.PacketNumbers, n => !truth.RetransmissionFramesAtReceiver.Contains(n));
        });
        var outOfOrder = c.Findings.Where(f => f.Type == FindingTypes.OutOfOrder).ToList();
        Assert.NotEmpty(outOfOrder);
        Assert.All(outOfOrder, f => Assert.Subset(truth.OriginalFramesAtReceiver.ToHashSet(), f.Evidence.PacketNumbers.ToHashSet()));

        // At the server (the sender): sent again, and never called lost: what it cannot tell, it says.
        var s = server.Summary;
        Assert.Equal(truth.SentAgain, s.Retransmissions);
        Assert.All(s.Findings.Where(f => f.Type == FindingTypes.Retransmissions), f =>
        {
            Assert.Contains("this end cannot tell whether the first", f.Message);
            Assert.DoesNotContain("lost on the way", f.Message);
        });

        // Both ends compared: every byte the server sent arrived, the copies sent again included.
        var compared = EndComparison.Compare(client.Summary, server.Summary);
        Assert.DoesNotContain(compared, f => f.Type == FindingTypes.LossOnOneLeg);
        var spurious = Assert.Single(compared, f => f.Type == FindingTypes.SpuriousRetransmissions);
        Assert.Equal((FindingSeverity.Info, "server-to-client"), (spurious.Severity, Assert.Single(spurious.Evidence.Indicators)));
        Assert.Contains("the retransmissions were spurious, not loss", spurious.Message);
    }

    [Fact]
    public async Task JitterOverIPv6WhereNothingNumbersThePacketsIsNeverCalledLoss()
    {
        await AddJitterAsync();
        var (client, server) = await BothEndsCapture.CaptureAsync(_lab, _files, Filter, async () =>
        {
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal("200", (await _lab.Client.CurlAsync(_http.Url("200k.bin", ipv6: true), TimeSpan.FromSeconds(20))).Stdout);
            }
        });

        Assert.Equal(0, await MiddleboxDropsAsync());
        var sentAgain = (await BothEndsCapture.FramesAsync(server.Pcap, SentAgainAtTheSender)).Count;
        Assert.True(sentAgain > 0, "the jitter made the server send nothing again: the scenario did not happen");
        Assert.Equal(sentAgain, server.Summary.Retransmissions);
        foreach (var end in (CapturedEnd[])[client, server])
        {
            Assert.DoesNotContain(end.Summary.Findings, f => f.Message.Contains("lost on the way", StringComparison.Ordinal) || f.Type is FindingTypes.DataStalled or FindingTypes.MtuBlackhole);
        }

        // What the client could not date, it says it could not; what it could, it names.
        Assert.True(client.Summary.SpuriousRetransmissions + client.Summary.OutOfOrderSegments > 0);
        Assert.DoesNotContain(EndComparison.Compare(client.Summary, server.Summary), f => f.Type == FindingTypes.LossOnOneLeg);
    }

    [Fact]
    public async Task SegmentsTheNetworkDuplicatesAreDuplicatesAtTheReceiverAndReportedTwiceAtTheSenderNeverLoss()
    {
        // One server segment in 20 is copied by the middlebox straight to the client (nft dup).
        await _lab.Middlebox.AddNftablesAsync($$"""
            table ip kcrs {
              chain relay {
                type filter hook forward priority 0;
                tcp sport {{Port}} numgen random mod 20 == 0 counter dup to {{_lab.Client.IPv4}} device "{{_lab.Middlebox.Interface}}"
              }
            }
            """);
        var (client, server) = await BothEndsCapture.CaptureAsync(_lab, _files, Filter, async () =>
        {
            for (var i = 0; i < 2; i++)
            {
                Assert.Equal("200", (await _lab.Client.CurlAsync(_http.Url("200k.bin"), TimeSpan.FromSeconds(20))).Stdout);
            }
        });

        var truth = await SegmentTruth.OfAsync(server.Pcap, client.Pcap, $"tcp.srcport == {Port}", "tcp.dstport");
        Assert.True(truth.DuplicatesAtReceiver > 0, "the middlebox copied nothing: the scenario did not happen");
        Assert.Equal(truth.DuplicatesAtReceiver, client.Summary.DuplicateSegments);
        Assert.Equal(truth.SentAgain, client.Summary.Retransmissions);
        var duplicates = client.Summary.Findings.Where(f => f.Type == FindingTypes.DuplicateSegments).ToList();
        Assert.Equal(truth.DuplicatesAtReceiver, duplicates.Sum(f => f.Evidence.Packets));
        Assert.All(duplicates, f => Assert.Contains("came by twice as identical copies (the same IP identification", f.Message));
        var copies = await BothEndsCapture.FramesAsync(client.Pcap, "tcp.analysis.retransmission || tcp.analysis.spurious_retransmission"); // tshark calls a copy a retransmission
        Assert.Subset(copies.ToHashSet(), duplicates.SelectMany(f => f.Evidence.PacketNumbers).ToHashSet());

        // The sender saw each segment leave once; the receiver's D-SACKs tell it some came twice.
        Assert.True(server.Summary.DuplicateSegments <= truth.DuplicatesAtReceiver);
        foreach (var end in (CapturedEnd[])[client, server])
        {
            Assert.DoesNotContain(end.Summary.Findings, f => f.Message.Contains("lost on the way", StringComparison.Ordinal) || f.Type is FindingTypes.DataStalled);
        }

        Assert.DoesNotContain(EndComparison.Compare(client.Summary, server.Summary), f => f.Type == FindingTypes.LossOnOneLeg);
    }

    [Fact]
    public async Task AReceiverThatStopsReadingIsNamedWithHowLongItsWindowStayedClosedAndWhatWasSentAgainMeanwhileIsFlowControlNotLoss()
    {
        // The server accepts an upload and reads nothing for two seconds.
        using var reader = await _lab.Server.StartListeningAsync(["python3", "-c", SlowReader, "8100", "2.0"], 8100);

        var (client, server) = await BothEndsCapture.CaptureAsync(_lab, _files, "tcp port 8100", async () =>
            (await _lab.Client.ExecAsync(["python3", "-c", Upload, _lab.Server.IPv4.ToString(), "8100", "4000000"], TimeSpan.FromSeconds(30))).EnsureSuccess());

        foreach (var (end, local) in new[] { (client, ""), (server, " (this host)") })
        {
            // Ground truth: every window the server advertised, as this end saw them (tshark, not the
            // agent): each run of zero windows is one closing, ended by the first non-zero one. Under
            // load the reader may fall behind again after it starts reading, so there may be more than one.
            var closings = await ClosingsAsync(end.Pcap, "tcp.srcport == 8100 && tcp.flags.syn == 0 && tcp.flags.reset == 0");
            Assert.NotEmpty(closings);
            var closed = closings.Sum(c => c.Microseconds);
            var zero = closings[0].Closed;
            var reopen = closings[0].Reopened;

            var finding = Assert.Single(end.Summary.Findings, f => f.Type == FindingTypes.ZeroWindow);
            Assert.Equal(FindingSeverity.Warning, finding.Severity);
            Assert.StartsWith($"{_lab.Server.IPv4}:8100{local} stopped reading: it closed its receive window to {_lab.Client.IPv4}:", finding.Message);
            Assert.Contains($" {(closings.Count switch { 1 => "once", 2 => "twice", var n => $"{n} times" })}, {Durations.Format(closed)} in all", finding.Message);
            Assert.Contains("Flow control, not loss", finding.Message);
            Assert.Contains(zero, finding.Evidence.PacketNumbers);
            Assert.Contains(reopen, finding.Evidence.PacketNumbers);
            Assert.DoesNotContain(end.Summary.Findings, f => f.Type is FindingTypes.DataStalled || f.Message.Contains("lost on the way", StringComparison.Ordinal));
            Assert.Null(HumanReport.AllClear(end.Summary));
        }

        // What the client sent again: the server's capture shows every first copy arrived. The server
        // (the receiver) says so; the client says what it could and could not tell; compared, spurious.
        var truth = await SegmentTruth.OfAsync(client.Pcap, server.Pcap, "tcp.dstport == 8100", "tcp.srcport");
        Assert.Equal(0, truth.FirstCopiesNeverArrived);
        Assert.Equal(truth.SentAgain, client.Summary.Retransmissions);
        Assert.Equal(truth.SentAgain, server.Summary.Retransmissions);
        Assert.DoesNotContain(server.Summary.Findings, f => f.Type == FindingTypes.Retransmissions);
        Assert.All(client.Summary.Findings.Where(f => f.Type == FindingTypes.Retransmissions), f => Assert.Contains("this end cannot tell", f.Message));
        var compared = EndComparison.Compare(client.Summary, server.Summary);
        Assert.DoesNotContain(compared, f => f.Type == FindingTypes.LossOnOneLeg);
        if (truth.SentAgain > 0)
        {
            Assert.Contains(client.Summary.Findings, f => f.Type == FindingTypes.ZeroWindow && f.Message.Contains("again while the window was closed or full", StringComparison.Ordinal)
                || f.Type == FindingTypes.SpuriousRetransmissions);
            Assert.Contains(compared, f => f.Type == FindingTypes.SpuriousRetransmissions && f.Evidence.Indicators.Contains("client-to-server"));
        }
    }

    /// <summary>tshark at the sender: every data segment it sent again (it calls some "out of order", not knowing this is the sending end).</summary>
    private const string SentAgainAtTheSender = "tcp.srcport == 8000 && tcp.len > 0 && (tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission || tcp.analysis.out_of_order)";

    /// <summary>
    /// Jitter without netem (this kernel has none): one server segment in 8 goes through a 20 Mbit
    /// HTB class on the middlebox's link toward the client (nft sets its priority), the rest through a
    /// 10 Gbit one; the slow class delays its packets by a few milliseconds, and the others overtake them.
    /// </summary>
    private async Task AddJitterAsync()
    {
        var link = _lab.Middlebox.Interface;
        (await _lab.Middlebox.ExecAsync("tc", "qdisc", "add", "dev", link, "root", "handle", "1:", "htb", "default", "10")).EnsureSuccess();
        (await _lab.Middlebox.ExecAsync("tc", "class", "add", "dev", link, "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit")).EnsureSuccess();
        (await _lab.Middlebox.ExecAsync("tc", "class", "add", "dev", link, "parent", "1:", "classid", "1:20", "htb", "rate", "20mbit")).EnsureSuccess();
        await _lab.Middlebox.AddNftablesAsync($$"""
            table inet kcrs {
              chain relay {
                type filter hook forward priority 0;
                tcp sport {{Port}} numgen random mod 8 == 0 meta priority set 1:20
              }
            }
            """);
    }

    /// <summary>Packets the middlebox's qdisc toward the client dropped (tc's "dropped" counter).</summary>
    private async Task<long> MiddleboxDropsAsync()
    {
        var stats = (await _lab.Middlebox.ExecAsync("tc", "-s", "qdisc", "show", "dev", _lab.Middlebox.Interface)).EnsureSuccess().Stdout;
        return System.Text.RegularExpressions.Regex.Matches(stats, @"dropped (\d+)").Sum(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>The closings of a receive window by tshark's reading of the window field: from the first zero window to the first non-zero one after it (a closing still open at the end is left out: the traffic here always reopens).</summary>
    private static async Task<List<(long Closed, long Reopened, long Microseconds)>> ClosingsAsync(string pcap, string displayFilter)
    {
        var closings = new List<(long, long, long)>();
        (long Frame, long Time)? closedAt = null;
        foreach (var f in await Tshark.FieldsAsync(pcap, ["frame.number", "frame.time_epoch", "tcp.window_size_value"], displayFilter))
        {
            var (frame, time) = (long.Parse(f[0], CultureInfo.InvariantCulture), (long)Math.Round(decimal.Parse(f[1], CultureInfo.InvariantCulture) * 1_000_000m));
            var zero = f[2] == "0";
            if (zero && closedAt is null)
            {
                closedAt = (frame, time);
            }
            else if (!zero && closedAt is { } c)
            {
                closings.Add((c.Frame, frame, time - c.Time));
                closedAt = null;
            }
        }

        return closings;
    }

    /// <summary>Accepts one connection on port argv[1], reads nothing for argv[2] seconds, then reads it all.</summary>
    private const string SlowReader = """
        import socket, sys, time
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('::', int(sys.argv[1])))
        s.listen()
        c, _ = s.accept()
        time.sleep(float(sys.argv[2]))
        while c.recv(65536):
            pass
        c.close()
        """;

    /// <summary>Sends argv[3] bytes to argv[1]:argv[2], then waits for the peer to close.</summary>
    private const string Upload = """
        import socket, sys
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        s.sendall(bytes(int(sys.argv[3])))
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()
        """;
}
