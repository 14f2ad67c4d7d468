using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Summary;
using KubeCapture.Agent.Tests.Summary;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Pcap;
using PacketDotNet;

namespace KubeCapture.Agent.Tests.Cli;

/// <summary>
/// Captures from tcpdump's own test corpus (Corpus/tcpdump, see its README): BIG TCP and TSO packets
/// judged against the output the tcpdump project expects of its newest release (the <c>.out</c> files:
/// tcpdump 4.99.3 here prints IPv4 ones as "bad-len 0"), and link types read with the installed tcpdump.
/// </summary>
public sealed partial class TcpdumpCorpusTests
{
    private static string Corpus(string name) => Path.Combine(AppContext.BaseDirectory, "Corpus", "tcpdump", name);

    [Theory]
    [InlineData("bigtcp-ipv4")]
    [InlineData("bigtcp-ipv6")]
    [InlineData("bigtcp-ipv6-hbh")]
    [InlineData("ipv4_tcp_http_xml_tso")]
    public async Task BigTcpAndTsoPacketsAreDecodedWithThePayloadLengthTcpdumpPrints(string name)
    {
        var expected = int.Parse(PayloadLength().Match(await File.ReadAllTextAsync(Corpus(name + ".out"))).Groups[1].Value, CultureInfo.InvariantCulture);

        using (var reader = PcapFileReader.Open(Corpus(name + ".pcap")))
        {
            Assert.True(reader.TryRead(out var data, out var wireLength, out _));
            Assert.Equal(TcpHeaderReader.Result.Tcp, TcpHeaderReader.TryRead((LinkLayers)reader.LinkType, data, (int)wireLength, out var segment));
            Assert.Equal(expected, segment.PayloadLength);
        }

        var exit = await AgentProcess.RunAsync(null, ["summarize", "--json", Corpus(name + ".pcap")]);
        Assert.Equal(0, exit.ExitCode);
        var report = JsonSerializer.Deserialize(exit.Stdout, SummaryJsonContext.Default.TcpSummaryReport)!;
        Assert.Equal((1, 0), (report.TcpPackets, report.UndecodablePackets));
    }

    [Theory]
    [InlineData("LINKTYPE_USER2_PKTAP.pcap")]
    [InlineData("nflog.pcap")]
    [InlineData("ieee802.11_htc.pcap")]
    public async Task PacketsOfLinkTypesTheSummaryDoesNotDecodeAreCountedAndNamedAsTcpdumpNamesThem(string name)
    {
        var tcpdump = await Tcpdump.ReadAsync(Corpus(name), null, "--count");
        var count = long.Parse(Regex.Match(string.Join('\n', tcpdump.Lines), @"^(\d+) packets?").Groups[1].Value, CultureInfo.InvariantCulture);

        var exit = await AgentProcess.RunAsync(null, ["summarize", "--json", Corpus(name)]);
        Assert.Equal(5, exit.ExitCode);
        var report = JsonSerializer.Deserialize(exit.Stdout, SummaryJsonContext.Default.TcpSummaryReport)!;
        Assert.Equal(count, report.Input.Packets);
        Assert.Equal(count, report.Input.PacketsNotAnalysed);
        Assert.Equal(tcpdump.LinkType, report.Input.LinkType);
        Assert.Equal(FindingTypes.LinkTypeNotAnalysed, Assert.Single(report.BesideLatency()).Type);
    }

    [Fact]
    public async Task APcapngOfLinuxCookedPacketsIsReadAsTcpdumpReadsIt()
    {
        var pcapng = Corpus("bgp-enhanced-route-refresh-subtype.pcapng");
        var tcpdump = await Tcpdump.ReadAsync(pcapng);
        var exit = await AgentProcess.RunAsync(null, ["summarize", "--json", pcapng]);
        Assert.Equal(0, exit.ExitCode);
        var report = JsonSerializer.Deserialize(exit.Stdout, SummaryJsonContext.Default.TcpSummaryReport)!;
        Assert.Equal(tcpdump.LinkType, report.Input.LinkType);
        Assert.Equal(tcpdump.Lines.Count, report.Input.Packets);
        Assert.Equal(tcpdump.Tcp.Count, report.TcpPackets);
        Assert.True(report.TcpPackets > 0);
    }

    [GeneratedRegex(@"Flags \[[^\]]*\],.*?, length (\d+)")]
    private static partial Regex PayloadLength();
}
