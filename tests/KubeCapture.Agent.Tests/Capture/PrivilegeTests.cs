using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Capture;

/// <summary>
/// The ephemeral container adds exactly NET_RAW: a non-root user with only ambient CAP_NET_RAW must
/// capture, and one without it must get the clear error, exit 2, and no file left behind.
/// </summary>
public sealed class PrivilegeTests(LabFixture fixture) : IClassFixture<LabFixture>, IDisposable
{
    private const string Nobody = "65534";
    private readonly string _agent = AgentBinary.CopyForEveryone();

    [Fact]
    public async Task NonRootUserWithOnlyAmbientNetRawCaptures()
    {
        using var files = new CaptureFiles(everyoneMayWrite: true);
        var pcap = files.Pcap();
        string[] nonRootWithNetRaw = ["setpriv", $"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw"];
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-i", "any", "--duration", "20s", "-w", pcap, $"tcp port {LabFixture.HttpPort}"], nonRootWithNetRaw, _agent);
        await agent.WaitUntilListeningAsync();
        Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("small.txt"))).Stdout);
        await Task.Delay(300);
        var exit = await agent.StopAsync();

        Assert.Equal(0, exit.ExitCode);
        Assert.Equal(65534u, Owner(pcap)); // written by the unprivileged user itself
        var dump = await Tcpdump.ReadAsync(pcap);
        Assert.Contains(dump.Tcp, l => l.Flags == "S" && l.DestinationPort == LabFixture.HttpPort);
        Assert.Contains(dump.Tcp, l => l.Flags == "P." && l.DestinationPort == LabFixture.HttpPort);
        Assert.Equal("signal", CaptureFiles.Manifest(pcap).StopReason);
    }

    [Fact]
    public async Task NonRootUserWithoutNetRawGetsTheClearErrorAndNoFile()
    {
        using var files = new CaptureFiles(everyoneMayWrite: true);
        var pcap = files.Pcap();
        string[] nonRootWithoutCapabilities = ["setpriv", $"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"];
        var exit = await AgentProcess.RunAsync(fixture.Server, ["capture", "-i", "any", "--duration", "5s", "-w", pcap], wrapper: nonRootWithoutCapabilities, agentPath: _agent);

        Assert.Equal(2, exit.ExitCode);
        var line = Assert.Single(exit.StderrLines);
        Assert.Contains("capture needs root or CAP_NET_RAW", line);
        Assert.StartsWith("kubecapture-agent: ", line);
        Assert.Empty(files.Names());
        Assert.Empty(exit.Stdout);
    }

    private static uint Owner(string path)
    {
        var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u", path]) { RedirectStandardOutput = true })!;
        var text = stat.StandardOutput.ReadToEnd();
        stat.WaitForExit();
        return uint.Parse(text.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_agent)!, recursive: true);
}
