using KubeCapture.Testing.Agent;

namespace KubeCapture.Agent.Tests.Cli;

/// <summary>
/// Bad input gets one clear line on stderr and exit code 2, before any capture starts, and leaves
/// nothing behind: no empty pcap, no manifest.
/// </summary>
public sealed class BadInputTests(LabFixture fixture) : IClassFixture<LabFixture>
{
    [Theory]
    [InlineData(new[] { "tcp port" }, "invalid filter 'tcp port': ")]
    [InlineData(new[] { "host", "not-an-address!" }, "invalid filter 'host not-an-address!': ")]
    [InlineData(new[] { "tcp port 99999" }, "invalid filter 'tcp port 99999': ")]
    [InlineData(new[] { "-s", "300000" }, "invalid snaplen '300000': use 0 (whole packet) or 1 to 262144 bytes")]
    [InlineData(new[] { "-s", "-1" }, "invalid snaplen '-1'")]
    [InlineData(new[] { "-s", "lots" }, "invalid snaplen 'lots'")]
    [InlineData(new[] { "-c", "0" }, "invalid packet count 0 for -c: it must be greater than zero")]
    [InlineData(new[] { "-c", "-5" }, "invalid packet count -5 for -c: it must be greater than zero")]
    [InlineData(new[] { "-c", "many" }, "invalid packet count 'many' for -c")]
    [InlineData(new[] { "--duration", "10parsecs" }, "invalid duration '10parsecs'")]
    [InlineData(new[] { "--duration", "30" }, "invalid duration '30'")]
    [InlineData(new[] { "--duration", "0s" }, "invalid duration '0s': it must be greater than zero")]
    [InlineData(new[] { "--duration", "25h" }, "duration '25h' is longer than")]
    [InlineData(new[] { "--max-bytes", "lots" }, "invalid size 'lots'")]
    [InlineData(new[] { "--max-bytes", "100" }, "invalid --max-bytes '100'")]
    [InlineData(new[] { "--frobnicate" }, "unknown option '--frobnicate'")]
    [InlineData(new[] { "-c" }, "option -c needs a value")]
    public async Task BadOptionGetsOneClearLineAndExit2BeforeAnyCapture(string[] arguments, string expected)
    {
        using var files = new CaptureFiles();
        var exit = await RunAsync(files, [.. arguments]);
        var line = AssertRejected(exit, files);
        Assert.Contains(expected, line);
    }

    [Fact]
    public async Task CountWrittenWithEqualsIsRefusedNamingOptionAndValueAsTcpdumpRefusesIt()
    {
        using var files = new CaptureFiles();
        var exit = await RunAsync(files, ["-i", fixture.Server.Interface, "-c=500"]);
        var line = AssertRejected(exit, files);
        Assert.Equal("kubecapture-agent: invalid value '=500' for -c: tcpdump reads everything after -c as its value, '=' included, and so does the agent: write -c 500 or -c500", line.TrimEnd());

        // tcpdump itself reads "=500" as the count and refuses it, before opening anything.
        var tcpdump = await KubeCapture.Testing.Processes.HostCommand.RunAsync("tcpdump", "-c=500", "-r", "/dev/null");
        Assert.NotEqual(0, tcpdump.ExitCode);
        Assert.Equal("tcpdump: invalid packet count =500", tcpdump.StderrLines.Last());
    }

    [Theory]
    [InlineData("tcp port 99999")]
    [InlineData("tcp port")]
    [InlineData("host 300.1.1.1")]
    public async Task InvalidFilterCarriesLibpcapsOwnMessageAsTcpdumpPrintsIt(string filter)
    {
        using var files = new CaptureFiles();
        var exit = await RunAsync(files, ["-i", fixture.Server.Interface, filter]);
        var line = AssertRejected(exit, files);

        // tcpdump compiling the same filter for the same link type (Ethernet) through libpcap.
        var empty = Path.Combine(files.Directory, "..", $"kcAT-empty-{Guid.NewGuid():n}.pcap");
        using (var stream = File.Create(empty))
        using (var writer = new KubeCapture.Agent.Capture.PcapWriter(stream, 1, 128, 1024))
        {
            writer.Finish();
        }

        var tcpdump = await KubeCapture.Testing.Processes.HostCommand.RunAsync("tcpdump", "-nn", "-r", empty, filter);
        File.Delete(empty);
        Assert.NotEqual(0, tcpdump.ExitCode);
        var libpcapMessage = tcpdump.StderrLines.Last().Replace("tcpdump: ", "", StringComparison.Ordinal);
        Assert.Equal($"kubecapture-agent: invalid filter '{filter}': {libpcapMessage}", line.TrimEnd());
    }

    [Fact]
    public async Task InvalidFilterIsCheckedForTheCookedLinkTypeOfAny()
    {
        // "ether host" is meaningless on Linux cooked captures (-i any): libpcap refuses it there only.
        using var files = new CaptureFiles();
        var exit = await RunAsync(files, ["-i", "any", "ether", "host", "02:00:00:00:00:01"]);
        var line = AssertRejected(exit, files);
        Assert.Contains("invalid filter 'ether host 02:00:00:00:00:01'", line);
    }

    [Fact]
    public async Task UnknownInterfaceListsTheOnesThatExist()
    {
        using var files = new CaptureFiles();
        var exit = await RunAsync(files, ["-i", "eth9"]);
        var line = AssertRejected(exit, files);
        Assert.Contains("unknown interface 'eth9'", line);
        Assert.Contains(fixture.Server.Interface, line);
        Assert.Contains("lo", line);
        Assert.DoesNotContain(fixture.Client.Interface, line); // the other pod's interface is not in this namespace
    }

    [Fact]
    public async Task UnwritableOutputPathIsRejected()
    {
        using var files = new CaptureFiles();
        var exit = await AgentProcess.RunAsync(fixture.Server, ["capture", "--duration", "5s", "-w", Path.Combine(files.Directory, "no-such-dir", "x.pcap")]);
        var line = AssertRejected(exit, files);
        Assert.Contains($"cannot write '{Path.Combine(files.Directory, "no-such-dir", "x.pcap")}'", line);
    }

    [Fact]
    public async Task ExistingOutputFileIsNeverOverwritten()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap("evidence.pcap");
        await File.WriteAllTextAsync(pcap, "earlier evidence");
        var exit = await AgentProcess.RunAsync(fixture.Server, ["capture", "--duration", "5s", "-w", pcap]);

        Assert.Equal(2, exit.ExitCode);
        var line = Assert.Single(exit.StderrLines);
        Assert.Contains($"output file '{pcap}' already exists", line);
        Assert.Equal("earlier evidence", await File.ReadAllTextAsync(pcap));
        Assert.Equal(["evidence.pcap"], files.Names());
    }

    [Fact]
    public async Task ExistingManifestIsNeverOverwrittenEither()
    {
        using var files = new CaptureFiles();
        var pcap = files.Pcap("evidence.pcap");
        await File.WriteAllTextAsync(pcap + ".json", "{}");
        var exit = await AgentProcess.RunAsync(fixture.Server, ["capture", "--duration", "5s", "-w", pcap]);

        Assert.Equal(2, exit.ExitCode);
        var line = Assert.Single(exit.StderrLines);
        Assert.Contains($"manifest file '{pcap}.json' already exists", line);
        Assert.Equal("{}", await File.ReadAllTextAsync(pcap + ".json"));
        Assert.Equal(["evidence.pcap.json"], files.Names());
    }

    private Task<AgentExit> RunAsync(CaptureFiles files, string[] arguments) =>
        AgentProcess.RunAsync(fixture.Server, ["capture", "--duration", "5s", "-w", files.Pcap(), .. arguments]);

    private static string AssertRejected(AgentExit exit, CaptureFiles files)
    {
        Assert.Equal(2, exit.ExitCode);
        var line = Assert.Single(exit.StderrLines);
        Assert.StartsWith("kubecapture-agent: ", line);
        Assert.DoesNotContain("listening on", exit.Stderr);
        Assert.Empty(exit.Stdout);
        Assert.Empty(files.Names()); // no empty pcap, no manifest
        return line;
    }
}
