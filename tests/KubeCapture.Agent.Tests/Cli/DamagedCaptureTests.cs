using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.Json;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;
using KubeCapture.Agent.Tests.Summary;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Cli;

/// <summary>
/// <c>summarize</c> on capture files that are damaged, of another link type, or no capture at all,
/// made by the test from a real capture of the lab's traffic. tcpdump reading the same file is the
/// ground truth: the agent reads exactly as far, says where and why it stopped, and never passes what
/// it could not read off as healthy.
/// </summary>
public sealed class DamagedCaptureTests(LabFixture fixture) : IClassFixture<LabFixture>
{
    [Fact]
    public async Task AFileCutShortIsSummarizedAsFarAsTcpdumpReadsAndReportedIncompleteWithExitCode5()
    {
        using var files = new CaptureFiles();
        var source = PcapFile.Read(await CaptureTrafficAsync(files));
        var cut = files.Pcap("cut.pcap");
        source.Write(cut);
        var bytes = await File.ReadAllBytesAsync(cut);
        await File.WriteAllBytesAsync(cut, bytes[..(bytes.Length * 2 / 3)]);

        var tcpdump = await Tcpdump.ReadDamagedAsync(cut);
        Assert.StartsWith("truncated dump file; tried to read", tcpdump.Error);

        var (exit, report) = await SummarizeAsync(cut);
        Assert.Equal(5, exit.ExitCode);
        Assert.True(report.Input.Incomplete);
        Assert.Equal(tcpdump.Error, report.Input.Error);
        Assert.Equal(tcpdump.Lines.Count, report.Input.Packets); // as far as tcpdump read, not a packet more or less
        Assert.Equal(tcpdump.Lines.Count(l => Tcpdump.ParseTcp(l) is not null), report.TcpPackets);
        Assert.Equal(bytes.Length * 2 / 3, report.Input.FileBytes);
        var finding = report.Findings[0];
        Assert.Equal((FindingTypes.CaptureIncomplete, FindingSeverity.Error), (finding.Type, finding.Severity));
        Assert.Contains($"after packet {tcpdump.Lines.Count} (libpcap: {tcpdump.Error})", finding.Message);
        Assert.Equal([tcpdump.Lines.Count], finding.Evidence.PacketNumbers);
        Assert.Null(HumanReport.AllClear(report));

        var human = await AgentProcess.RunAsync(null, ["summarize", cut]);
        Assert.Equal(5, human.ExitCode);
        Assert.Contains($"INCOMPLETE: reading stopped after packet {tcpdump.Lines.Count}: {tcpdump.Error} at the end of the file", human.Stdout);
        Assert.DoesNotContain("every handshake completed", human.Stdout);
    }

    [Fact]
    public async Task ARecordLengthOf2Pow31Minus1StopsReadingThereWithLibpcapsReasonAsItStopsTcpdump()
    {
        using var files = new CaptureFiles();
        var source = PcapFile.Read(await CaptureTrafficAsync(files));
        var damaged = files.Pcap("huge-record.pcap");
        source.Write(damaged);
        var index = source.Records.Count / 3;
        await using (var file = File.OpenWrite(damaged))
        {
            file.Position = source.RecordOffset(index) + 8; // the record's captured length
            var length = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(length, int.MaxValue);
            await file.WriteAsync(length);
        }

        var tcpdump = await Tcpdump.ReadDamagedAsync(damaged);
        Assert.Equal($"invalid packet capture length {int.MaxValue}, bigger than snaplen of {source.SnapshotLength}", tcpdump.Error);
        Assert.Equal(index, tcpdump.Lines.Count);

        var (exit, report) = await SummarizeAsync(damaged);
        Assert.Equal(5, exit.ExitCode);
        Assert.Equal(tcpdump.Error, report.Input.Error);
        Assert.Equal(index, report.Input.Packets);
        Assert.Equal(source.RecordOffset(index) + 16, report.Input.BytesRead); // stopped right after the bad record header
        Assert.Equal(new FileInfo(damaged).Length, report.Input.FileBytes);
        Assert.Equal(FindingTypes.CaptureIncomplete, report.Findings[0].Type);
    }

    [Fact]
    public async Task AGarbageLinkTypeIsRefusedWithOneLineAndExitCode2AsTcpdumpRefusesIt()
    {
        using var files = new CaptureFiles();
        var source = PcapFile.Read(await CaptureTrafficAsync(files));
        var garbage = files.Pcap("linktype-601.pcap");
        (source with { LinkType = 601 }).Write(garbage);

        Assert.StartsWith("unknown data link type 601", (await Tcpdump.ReadDamagedAsync(garbage)).Error);
        var exit = await AgentProcess.RunAsync(null, ["summarize", garbage]);
        Assert.Equal(2, exit.ExitCode);
        Assert.Equal($"kubecapture-agent: '{garbage}': unknown data link type 601 (min 104, max 289) in its header: not a link type libpcap knows (the file is damaged, or not a capture)", Assert.Single(exit.StderrLines));
        Assert.Empty(exit.Stdout);
    }

    [Fact]
    public async Task PacketsOfALinkTypeTheSummaryDoesNotDecodeAreCountedAndNamedNeverReportedAsNoTcp()
    {
        using var files = new CaptureFiles();
        var source = PcapFile.Read(await CaptureTrafficAsync(files));
        var radiotap = files.Pcap("radiotap.pcap");
        (source with { LinkType = 127 }).Write(radiotap); // LINKTYPE_IEEE802_11_RADIOTAP

        var tcpdump = await Tcpdump.ReadDamagedAsync(radiotap);
        Assert.Equal(source.Records.Count, tcpdump.Lines.Count);
        var (exit, report) = await SummarizeAsync(radiotap);
        Assert.Equal(5, exit.ExitCode);
        Assert.False(report.Input.Incomplete);
        Assert.Equal(tcpdump.LinkType, report.Input.LinkType); // libpcap's name, as tcpdump prints it
        Assert.Equal(source.Records.Count, report.Input.PacketsNotAnalysed);
        var finding = Assert.Single(report.BesideLatency());
        Assert.Equal(FindingTypes.LinkTypeNotAnalysed, finding.Type);
        Assert.StartsWith($"{source.Records.Count} packets of link type IEEE802_11_RADIO (802.11 plus radiotap header) not analysed", finding.Message);
        Assert.Equal(0, report.TcpPackets);
        Assert.Null(HumanReport.AllClear(report));

        var human = await AgentProcess.RunAsync(null, ["summarize", radiotap]);
        Assert.Contains("TCP: not analysed (link type IEEE802_11_RADIO)", human.Stdout);
        Assert.DoesNotContain("TCP: 0 packets", human.Stdout);
    }

    [Theory]
    [InlineData(228, 0x0800)] // LINKTYPE_IPV4
    [InlineData(229, 0x86dd)] // LINKTYPE_IPV6
    public async Task RawIPv4AndIPv6LinkTypesAreDecodedAsTcpdumpDecodesThem(uint linkType, int etherType)
    {
        using var files = new CaptureFiles();
        var source = PcapFile.Read(await CaptureTrafficAsync(files));
        // The same packets without their Ethernet header, only those of the link type's IP version.
        var raw = files.Pcap($"linktype-{linkType}.pcap");
        var records = source.Records
            .Where(r => BinaryPrimitives.ReadUInt16BigEndian(r.Data.AsSpan(12)) == etherType)
            .Select(r => r with { CapturedLength = r.CapturedLength - 14, OriginalLength = r.OriginalLength - 14, Data = r.Data[14..] })
            .ToList();
        (source with { LinkType = linkType, Records = records }).Write(raw);

        var tcpdump = await Tcpdump.ReadAsync(raw);
        var tcp = tcpdump.Tcp;
        Assert.NotEmpty(tcp);
        var (exit, report) = await SummarizeAsync(raw);
        Assert.Equal(0, exit.ExitCode);
        Assert.True(report.Input.Covered);
        Assert.Equal(tcpdump.LinkType, report.Input.LinkType);
        Assert.Equal(tcp.Count, report.TcpPackets);
        Assert.Equal(0, report.UndecodablePackets);
        Assert.Equal(tcp.Count(l => l.Flags == "S"), report.Syns);
        Assert.Equal(tcp.Count(l => l.Flags == "S."), report.SynAcks);
        Assert.Equal(tcp.Sum(l => (long)l.Length), report.ConnectionsWithFindings.Concat(report.ConnectionsWithoutFindings).Sum(c => c.ClientWireBytes + c.ServerWireBytes));
    }

    [Theory]
    [InlineData("pcapng")]
    [InlineData("nsecpcap")]
    public async Task PcapngAndNanosecondPcapGiveTheSameSummaryAsTheMicrosecondPcap(string format)
    {
        using var files = new CaptureFiles();
        var pcap = await CaptureTrafficAsync(files);
        var converted = files.Pcap($"capture.{format}");
        (await KubeCapture.Testing.Processes.HostCommand.RunAsync("editcap", "-F", format, pcap, converted)).EnsureSuccess();

        var (_, original) = await SummarizeAsync(pcap);
        var (exit, again) = await SummarizeAsync(converted);
        Assert.Equal(0, exit.ExitCode);
        Assert.Equal(original.Input.Packets, again.Input.Packets);
        Assert.Equal(Json(original with { Input = new() }), Json(again with { Input = new() }));
    }

    [Fact]
    public async Task ADirectoryEmptyFileTextAndGzippedPcapAreRefusedWithOneLineAndExitCode2()
    {
        using var files = new CaptureFiles();
        var pcap = await CaptureTrafficAsync(files);
        var directory = files.Pcap("a-directory.pcap");
        Directory.CreateDirectory(directory);
        var empty = files.Pcap("empty.pcap");
        await File.WriteAllBytesAsync(empty, []);
        var gzipped = files.Pcap("capture.pcap.gz");
        await using (var output = new GZipStream(File.Create(gzipped), CompressionLevel.Fastest))
        {
            await output.WriteAsync(await File.ReadAllBytesAsync(pcap));
        }

        foreach (var (path, message) in new[]
        {
            (directory, $"kubecapture-agent: '{directory}' is a directory, not a capture file"),
            (empty, $"kubecapture-agent: '{empty}' is not a capture file libpcap can read: truncated dump file; tried to read 4 file header bytes, only got 0"),
            (gzipped, $"kubecapture-agent: '{gzipped}' is not a capture file libpcap can read: unknown file format (it is gzip-compressed: gunzip it first)"),
        })
        {
            var exit = await AgentProcess.RunAsync(null, ["summarize", path]);
            Assert.Equal(2, exit.ExitCode);
            Assert.Equal(message, Assert.Single(exit.StderrLines));
        }
    }

    private static string Json(TcpSummaryReport report) => JsonSerializer.Serialize(report, SummaryJsonContext.Default.TcpSummaryReport);

    private static async Task<(AgentExit Exit, TcpSummaryReport Report)> SummarizeAsync(string pcap)
    {
        var exit = await AgentProcess.RunAsync(null, ["summarize", "--json", pcap]);
        Assert.True(exit.ExitCode is 0 or 5, $"exit {exit.ExitCode}: {exit.Stderr}");
        return (exit, JsonSerializer.Deserialize(exit.Stdout, SummaryJsonContext.Default.TcpSummaryReport)!);
    }

    /// <summary>Real traffic captured by tcpdump on the server's veth (Ethernet): a download over IPv4, one over IPv6, a refusal.</summary>
    private async Task<string> CaptureTrafficAsync(CaptureFiles files)
    {
        var pcap = files.Pcap("source.pcap");
        using (var tcpdump = await TcpdumpCapture.StartAsync(fixture.Server, fixture.Server.Interface, pcap, $"tcp port {LabFixture.HttpPort} or tcp port {LabFixture.ClosedPort}"))
        {
            Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("30k.bin"))).Stdout);
            Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("30k.bin", ipv6: true))).Stdout);
            Assert.Equal(7, (await fixture.Client.CurlAsync($"http://{fixture.Server.UrlHost(false)}:{LabFixture.ClosedPort}/")).ExitCode);
            await Task.Delay(300);
            await tcpdump.StopAsync();
        }

        Assert.True(PcapFile.Read(pcap).Records.Count > 20);
        return pcap;
    }
}
