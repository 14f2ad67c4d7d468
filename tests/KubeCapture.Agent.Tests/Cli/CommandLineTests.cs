using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Cli;

namespace KubeCapture.Agent.Tests.Cli;

public sealed class CommandLineTests
{
    private static readonly DateTime Now = new(2026, 11, 26, 6, 30, 15, DateTimeKind.Utc);

    private static CaptureRequest Parse(params string[] args) => CommandLine.ParseCapture(args, Now);

    [Fact]
    public void DefaultsAreTcpdumpsGuardRails()
    {
        var request = Parse();
        Assert.Equal("any", request.Options.Interface);
        Assert.Equal(128, request.Options.Snaplen);
        Assert.Null(request.Options.MaxPackets);
        Assert.Equal(TimeSpan.FromSeconds(60), request.Options.Duration);
        Assert.Equal(64L << 20, request.Options.MaxBytes);
        Assert.Equal(8 << 20, request.Options.BufferBytes);
        Assert.Equal("", request.Options.Filter);
        Assert.True(request.Options.Summary);
        Assert.False(request.Json);
        Assert.False(request.Overwrite);
        Assert.Equal("kubecapture-20261126T063015Z.pcap", request.OutputPath);
    }

    [Fact]
    public void OptionsAreReadAsATcpdumpUserTypesThem()
    {
        var request = Parse("-i", "eth0", "-s", "0", "-c500", "--duration=5m", "--max-bytes", "10MB", "-B", "4096", "-w", "out.pcap", "--json", "--overwrite", "--no-summary", "-nn",
            "tcp", "port", "443", "and", "host", "203.0.113.40");
        var o = request.Options;
        Assert.Equal("eth0", o.Interface);
        Assert.Equal(0, o.Snaplen);
        Assert.Equal(CaptureOptions.MaxSnaplen, CaptureSession.EffectiveSnaplen(o.Snaplen));
        Assert.Equal(500, o.MaxPackets);
        Assert.Equal(TimeSpan.FromMinutes(5), o.Duration);
        Assert.Equal(10_000_000, o.MaxBytes);
        Assert.Equal(4096 * 1024, o.BufferBytes);
        Assert.False(o.Summary);
        Assert.Equal("tcp port 443 and host 203.0.113.40", o.Filter);
        Assert.Equal("out.pcap", request.OutputPath);
        Assert.True(request.Json);
        Assert.True(request.Overwrite);
    }

    [Fact]
    public void FilterQuotedAsOneWordIsKeptAsTyped()
    {
        Assert.Equal("tcp port 8000 or tcp port 8001", Parse("-c", "5", "tcp port 8000 or tcp port 8001").Options.Filter);
    }

    [Fact]
    public void EverythingAfterDoubleDashIsFilter()
    {
        var request = Parse("-c", "3", "--", "-c", "tcp");
        Assert.Equal(3, request.Options.MaxPackets);
        Assert.Equal("-c tcp", request.Options.Filter);
    }

    [Fact]
    public void LongOptionsTakeTheirValueAfterEqualsOrSpace()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(500), Parse("--duration", "500ms").Options.Duration);
        Assert.Equal(TimeSpan.FromHours(1), Parse("--duration=1h").Options.Duration);
        Assert.Equal(64L << 20, Parse("--max-bytes=64Mi").Options.MaxBytes);
        Assert.Equal("lo", Parse("--interface=lo").Options.Interface);
    }

    [Theory]
    [InlineData(new[] { "-s", "262145" }, "invalid snaplen '262145': use 0 (whole packet) or 1 to 262144 bytes")]
    [InlineData(new[] { "-s", "-1" }, "invalid snaplen '-1': use 0 (whole packet) or 1 to 262144 bytes")]
    [InlineData(new[] { "-c", "0" }, "invalid packet count 0 for -c: it must be greater than zero")]
    [InlineData(new[] { "-c", "-3" }, "invalid packet count -3 for -c: it must be greater than zero")]
    [InlineData(new[] { "-c", "ten" }, "invalid packet count 'ten' for -c: use a whole number greater than zero")]
    [InlineData(new[] { "--duration", "0ms" }, "invalid duration '0ms': it must be greater than zero")]
    [InlineData(new[] { "--duration", "soon" }, "invalid duration 'soon': use a number with a unit, e.g. 500ms, 30s, 5m, 1h or 1m30s")]
    [InlineData(new[] { "--duration", "48h" }, "duration '48h' is longer than the 24h a capture may run")]
    [InlineData(new[] { "--max-bytes", "1KB" }, "invalid --max-bytes '1KB': a pcap needs at least 1024 bytes")]
    [InlineData(new[] { "--max-bytes", "big" }, "invalid size 'big': use bytes or a number with a unit, e.g. 64MiB, 64Mi, 10MB")]
    [InlineData(new[] { "-B", "2000000" }, "invalid -B 2000000: the capture buffer may be at most 1 GiB (1048576 KiB)")]
    [InlineData(new[] { "-w" }, "option -w needs a value")]
    [InlineData(new[] { "-i", " " }, "option -i needs a non-empty value")]
    [InlineData(new[] { "-c=500" }, "invalid value '=500' for -c: tcpdump reads everything after -c as its value, '=' included, and so does the agent: write -c 500 or -c500")]
    [InlineData(new[] { "-i=eth0" }, "invalid value '=eth0' for -i: tcpdump reads everything after -i as its value, '=' included, and so does the agent: write -i eth0 or -ieth0")]
    [InlineData(new[] { "-X" }, "unknown option '-X'")]
    [InlineData(new[] { "--promiscuous" }, "unknown option '--promiscuous'")]
    public void BadValuesAreRejectedWithAMessageNamingTheProblem(string[] args, string message)
    {
        var error = Assert.Throws<UsageException>(() => Parse(args));
        Assert.Equal(message, error.Message);
    }
}
