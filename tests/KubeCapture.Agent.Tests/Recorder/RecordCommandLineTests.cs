using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Recorder;
using KubeCapture.Contracts.Recorder;
using KubeCapture.Testing.Agent;

namespace KubeCapture.Agent.Tests.Recorder;

/// <summary>The recorder's command line: what it takes, and bad input refused with an error that names the problem (exit 2, nothing started).</summary>
public sealed class RecordCommandLineTests
{
    [Fact]
    public void TheRecordersOptionsAreTakenOutAndTheRestParsedAsCapturesAre()
    {
        var options = RecordCommandLine.Parse(
            ["-i", "eth0", "-s", "96", "--duration", "1h", "--window=5m", "--after", "30s", "--max-bytes", "16MiB", "--snapshot-dir", "/tmp",
             "--trigger-filter", "tcp[tcpflags] & tcp-rst != 0", "--trigger-count", "20/10s", "--trigger-finding", "ConnectionRefused>5/1m, ResetBare,Error",
             "tcp", "port", "443"]);
        Assert.Equal("eth0", options.Capture.Interface);
        Assert.Equal(96, options.Capture.Snaplen);
        Assert.Equal("tcp port 443", options.Capture.Filter);
        Assert.Equal(16L << 20, options.Capture.MaxBytes);
        Assert.Equal(TimeSpan.FromMinutes(5), options.Window);
        Assert.Equal(TimeSpan.FromMinutes(5), options.Cooldown); // the window by default
        Assert.Equal(TimeSpan.FromSeconds(30), options.After);
        Assert.Equal(new FilterTriggerSpec("tcp[tcpflags] & tcp-rst != 0", new TriggerThreshold(20, TimeSpan.FromSeconds(10))), options.FilterTrigger);
        Assert.Equal(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(10), options.Retention);
        Assert.Equal(["ConnectionRefused>5/1m", "ResetBare", "Error"], options.FindingTriggers.Select(f => f.ToString()));
        Assert.True(options.FindingTriggers[2].IsSeverity);
        Assert.True(options.Capture.Summary);
        Assert.False(RecordCommandLine.Parse(["--window", "5s", "--snapshot-dir", "/tmp"]).Capture.Summary); // no finding trigger: no live summary
    }

    [Fact]
    public void TheCommandLineTheOperatorWritesIsAClusterRecordingWithoutASnapshotDirectory()
    {
        var command = new AgentCaptureCommand
        {
            IngestUrl = "http://127.0.0.1:8081",
            Target = new CaptureIdentity("uid-1", "shop", "db-resets", "db-0"),
            Interface = "eth0",
            Duration = "1h",
            MaxBytes = "16Mi",
            Filter = "tcp port 5432",
            Recorder = new AgentRecorderArguments { Window = "5m", After = "30s", MaxSnapshots = 2, TriggerFilter = "tcp[tcpflags] & tcp-rst != 0", TriggerCount = "20/10s" },
        };
        Environment.SetEnvironmentVariable(AgentCaptureCommand.TokenVariable, "token-of-the-test");
        var args = command.ToArgs();
        Assert.Equal("record", args[0]);
        var options = RecordCommandLine.Parse([.. args.Skip(1)]);
        Assert.Null(options.SnapshotDirectory);
        Assert.Equal((new Uri("http://127.0.0.1:8081"), "db-resets", "db-0"), (options.Ingest!.Url, options.Ingest.CaptureName, options.Ingest.Pod));
        Assert.Equal((TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(30), 2, 16L << 20, "tcp port 5432"),
            (options.Window, options.After, options.MaxSnapshots, options.Capture.MaxBytes, options.Capture.Filter));
    }

    [Theory]
    [InlineData("--window 10m --duration 5m", "--window 10m is longer than --duration 5m")]
    [InlineData("--window 0s", "invalid --window '0s': it must be greater than zero")]
    [InlineData("--window 10s --after 2m --duration 1m", "--after 2m is longer than --duration 1m")]
    [InlineData("--window 10s -s 2000 --max-bytes 1024", "--max-bytes 1024 cannot hold one packet at snaplen 2000 (2016 bytes with its record header)")]
    [InlineData("--window 10s -s 0 --max-bytes 64KiB", "cannot hold one packet at snaplen 262144 (262160 bytes with its record header)")]
    [InlineData("--window 10s --max-bytes 2GiB", "--max-bytes 2 GiB is too large for a ring held in memory: at most 1GiB")]
    [InlineData("--window 10s --trigger-filter tcp --trigger-count 20/", "invalid --trigger-count '20/': the period after '/' must be a duration above zero")]
    [InlineData("--window 10s --trigger-filter tcp --trigger-count 20", "invalid --trigger-count '20': give a rate COUNT/PERIOD")]
    [InlineData("--window 10s --trigger-filter tcp --trigger-count 0/10s", "invalid --trigger-count '0/10s': the count before '/' must be a whole number of at least 1")]
    [InlineData("--window 10s --trigger-filter tcp --trigger-count x/10s", "invalid --trigger-count 'x/10s'")]
    [InlineData("--window 10s --trigger-filter tcp --trigger-count 20/0s", "invalid --trigger-count '20/0s': the period after '/' must be a duration above zero")]
    [InlineData("--window 10s --trigger-count 20/10s", "--trigger-count needs --trigger-filter EXPR")]
    [InlineData("--window 10s --trigger-finding ConnectionRefused>5", "invalid --trigger-finding 'ConnectionRefused>5': give a rate COUNT/PERIOD")]
    [InlineData("--window 10s --trigger-finding ConnectionRefused>five/1m", "invalid --trigger-finding 'ConnectionRefused>five/1m': the count before '/'")]
    [InlineData("--window 10s --trigger-finding Refused", "--trigger-finding: unknown finding type 'Refused'")]
    [InlineData("--window 10s --trigger-finding ResetFromMiddlebox", "--trigger-finding ResetFromMiddlebox: that finding comes from comparing both ends")]
    [InlineData("--window 10s --trigger-finding ResetBare --no-summary", "--trigger-finding needs the summary, which --no-summary turns off")]
    [InlineData("--window 10s --max-snapshots 0", "invalid --max-snapshots '0': use a whole number from 1 to 100")]
    [InlineData("--window 10s -w out.pcap", "-w does not apply to record")]
    [InlineData("--window 10s --ingest http://127.0.0.1:1 --token t --capture-uid u --capture-namespace n --capture-name c --pod p", "--snapshot-dir and --ingest cannot be combined: in cluster mode each snapshot is uploaded to the ingest")]
    [InlineData("--window 10s --ingest https://x --token t --capture-uid u --capture-namespace n --capture-name c --pod p", "--ingest https://x is TLS: give --ingest-ca-pem CA")]
    [InlineData("--snapshot-dir /tmp", "record needs --window D")]
    public void BadInputIsRefusedWithAnErrorNamingTheProblem(string arguments, string error)
    {
        var args = arguments.Split(' ').ToList();
        if (!args.Contains("--snapshot-dir"))
        {
            args.AddRange(["--snapshot-dir", "/tmp"]);
        }

        var refused = Assert.Throws<UsageException>(() => RecordCommandLine.Parse(args));
        Assert.Contains(error, refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--trigger-filter", "tcp[tcpflags] & tcp-bogus != 0", "invalid --trigger-filter 'tcp[tcpflags] & tcp-bogus != 0': libpcap: ")]
    [InlineData("--snapshot-dir", "/nonexistent/kcAT-snapshots", "--snapshot-dir '/nonexistent/kcAT-snapshots' does not exist: create it first")]
    public async Task TheAgentRefusesWhatOnlyLibpcapOrTheFileSystemCanTellBeforeRecording(string option, string value, string error)
    {
        using var files = new CaptureFiles();
        string[] args = option == "--snapshot-dir"
            ? ["record", "-i", "lo", "--window", "1s", "--duration", "2s", option, value]
            : ["record", "-i", "lo", "--window", "1s", "--duration", "2s", "--snapshot-dir", files.Directory, option, value];
        var exit = await AgentProcess.RunAsync(null, args, TimeSpan.FromSeconds(30));
        Assert.Equal(2, exit.ExitCode);
        Assert.StartsWith($"kubecapture-agent: {error}", exit.Stderr, StringComparison.Ordinal);
        Assert.Empty(exit.Stdout);
        Assert.Empty(files.Names());
    }
}
