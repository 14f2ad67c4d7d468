using System.Globalization;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>
/// "Is it the network or the application?" with real traffic through the middlebox lab: a server that
/// acknowledges a request at once and answers it 1.5 s later, and one that answers at once. The network's
/// round trip comes from the handshake, the application's time from the request's last segment to the
/// response's first; tshark reading the same pcaps (its initial RTT, the packets' times) is the ground truth.
/// </summary>
public sealed class LatencyTrafficTests : IAsyncLifetime
{
    private const int SlowPort = 8200;
    private MiddleboxLab _lab = null!;
    private readonly CaptureFiles _files = new();

    public async Task InitializeAsync() => _lab = await MiddleboxLab.CreateAsync("kcLT");

    public async Task DisposeAsync()
    {
        await _lab.DisposeAsync();
        _files.Dispose();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AServerThatAnswersSecondsAfterItAcknowledgedTheRequestIsTheApplicationsDelayNotTheNetworksAtBothEnds(bool ipv6)
    {
        using var server = await _lab.Server.StartSlowHttpServerAsync(SlowPort, TimeSpan.FromSeconds(1.5));

        var (client, serverEnd) = await BothEndsCapture.CaptureAsync(_lab, _files, $"tcp port {SlowPort}", async () =>
            Assert.Equal("200", (await _lab.Client.CurlAsync($"http://{_lab.Server.UrlHost(ipv6)}:{SlowPort}/report", TimeSpan.FromSeconds(10))).Stdout));

        var endpoint = ipv6 ? $"[{_lab.Server.IPv6}]:{SlowPort}" : $"{_lab.Server.IPv4}:{SlowPort}";
        foreach (var end in (CapturedEnd[])[client, serverEnd])
        {
            // Ground truth: the request, the server's ACK of it, its answer, and the handshake's round trip, as tshark reads them here.
            var request = Assert.Single(await PacketsAsync(end.Pcap, $"tcp.dstport == {SlowPort} && tcp.len > 0"));
            var ack = (await PacketsAsync(end.Pcap, $"tcp.srcport == {SlowPort} && tcp.len == 0 && tcp.ack == {request.NextSequence}")).First();
            var response = (await PacketsAsync(end.Pcap, $"tcp.srcport == {SlowPort} && tcp.len > 0")).First();
            var roundTrip = Assert.Single(await RoundTripsAsync(end.Pcap));

            var finding = Assert.Single(end.Summary.Findings);
            Assert.Equal((FindingTypes.ApplicationLatency, FindingSeverity.Warning), (finding.Type, finding.Severity));
            Assert.Equal([request.Frame, ack.Frame, response.Frame], finding.Evidence.PacketNumbers);
            Assert.True(response.Time - request.Time >= 1.5, $"answered {response.Time - request.Time} s after the request"); // the server's sleep: a floor, load only adds to it
            var answered = Durations.Format(Microseconds(response.Time - request.Time));
            Assert.Equal(
                end == client
                    ? $"{endpoint} acknowledged a request from {finding.Evidence.Flows[0].Split(" -> ")[0]} in {Durations.Format(Microseconds(ack.Time - request.Time))} and answered it {answered} after it was sent, while the network round trip is {Durations.Format(roundTrip)} (the handshake): the delay is in the application at {endpoint}, not the network."
                    : $"This host ({endpoint}) answered a request from {finding.Evidence.Flows[0].Split(" -> ")[0]} {answered} after it arrived; its TCP acknowledged the request after {Durations.Format(Microseconds(ack.Time - request.Time))}. The network round trip to {finding.Evidence.Flows[0].Split(" -> ")[0]} is {Durations.Format(roundTrip)} (the handshake): the delay is in the application here, not the network.",
                finding.Message);
            Assert.Equal(roundTrip, end.Summary.Latency!.RoundTripMinMicroseconds);
        }
    }

    [Fact]
    public async Task AServerThatAnswersAtOnceGetsTheLatencyFiguresAndNoFinding()
    {
        await using var http = await _lab.Server.StartHttpServerAsync(8000, new Dictionary<string, int> { ["small.txt"] = 1000 });
        var (client, server) = await BothEndsCapture.CaptureAsync(_lab, _files, "tcp port 8000", async () =>
        {
            Assert.Equal("200", (await _lab.Client.CurlAsync(http.Url("small.txt"))).Stdout);
            Assert.Equal("200", (await _lab.Client.CurlAsync(http.Url("small.txt", ipv6: true))).Stdout);
        });

        foreach (var end in (CapturedEnd[])[client, server])
        {
            var roundTrips = await RoundTripsAsync(end.Pcap);
            Assert.Equal(2, roundTrips.Count);
            var latency = end.Summary.Latency!;
            Assert.Equal((2, roundTrips.Min(), roundTrips.Max()), (latency.RoundTrips, latency.RoundTripMinMicroseconds!.Value, latency.RoundTripMaxMicroseconds!.Value));
            Assert.Equal(2, latency.Responses);
            var finding = Assert.Single(end.Summary.Findings);
            Assert.Equal((FindingTypes.Latency, FindingSeverity.Info), (finding.Type, finding.Severity));
            Assert.Contains("over 2 handshakes; 2 responses", finding.Message);
            Assert.EndsWith("No response was slow against the round trip: nothing points at the application.", finding.Message);
            Assert.NotNull(HumanReport.AllClear(end.Summary));
        }
    }

    private static long Microseconds(double seconds) => (long)Math.Round(seconds * 1e6);

    /// <summary>tshark's initial round trip of each TCP stream (it repeats it on every packet after the handshake).</summary>
    private static async Task<List<long>> RoundTripsAsync(string pcap) =>
    [
        .. (await Tshark.FieldsAsync(pcap, ["tcp.stream", "tcp.analysis.initial_rtt"], "tcp.analysis.initial_rtt"))
            .GroupBy(f => f[0]).Select(g => Microseconds(double.Parse(g.First()[1], CultureInfo.InvariantCulture))),
    ];

    private sealed record Packet(long Frame, double Time, long NextSequence);

    private static async Task<List<Packet>> PacketsAsync(string pcap, string displayFilter) =>
    [
        .. (await Tshark.FieldsAsync(pcap, ["frame.number", "frame.time_epoch", "tcp.nxtseq"], displayFilter)).Select(f => new Packet(
            long.Parse(f[0], CultureInfo.InvariantCulture), double.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[2], CultureInfo.InvariantCulture))),
    ];
}
