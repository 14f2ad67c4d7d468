using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Agent.Tests.Capture;

/// <summary>When the output or the interface fails mid-capture: exit 1, and what was captured stays, in a valid pcap.</summary>
public sealed class RuntimeFailureTests(LabFixture fixture) : IClassFixture<LabFixture>
{
    [Fact]
    public async Task InterfaceDisappearingMidCaptureKeepsWhatWasCapturedAndExits1()
    {
        await using var lab = await NetnsLab.CreateAsync("kcAT"); // its own: this test deletes the link
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        // --exact-filter: the server's ICMP port unreachables about these datagrams would be kept too (IcmpTrafficTests).
        await using var agent = AgentProcess.Start(lab.Server, ["capture", "-i", lab.Server.Interface, "--duration", "20s", "--exact-filter", "-w", pcap, "udp port 9"]);
        await agent.WaitUntilListeningAsync();
        (await lab.Client.ExecAsync("bash", "-c", $"for i in 1 2 3 4 5; do echo $i > /dev/udp/{lab.Server.IPv4}/9; done")).EnsureSuccess();
        await Task.Delay(300);
        (await HostCommand.RunAsync("ip", "-n", lab.Server.Name, "link", "del", lab.Server.Interface)).EnsureSuccess(); // the pod's network goes away
        var exit = await agent.WaitForExitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(1, exit.ExitCode);
        Assert.Contains(exit.StderrLines, l => l.Contains("libpcap stopped reading", StringComparison.Ordinal) && l.Contains($"the 5 packets captured before are in {pcap}", StringComparison.Ordinal));
        var manifest = CaptureFiles.Manifest(pcap);
        Assert.Equal("error", manifest.StopReason);
        Assert.NotNull(manifest.Error);
        Assert.Equal(5, manifest.PacketsWritten);
        Assert.Equal(5, PcapFile.Read(pcap).Records.Count);
        Assert.Equal(5, (await Tcpdump.ReadAsync(pcap)).Lines.Count);
        Assert.Equal(CaptureFiles.Sha256(pcap), manifest.Sha256);

        // The summary says it is incomplete, where and why, first; never an all-clear.
        var summary = manifest.Summary!;
        Assert.True(summary.Input.Incomplete);
        Assert.Equal(5, summary.Input.Packets);
        Assert.Equal(manifest.Error, summary.Input.Error);
        var incomplete = summary.Findings[0];
        Assert.Equal((FindingTypes.CaptureIncomplete, FindingSeverity.Error), (incomplete.Type, incomplete.Severity));
        Assert.StartsWith($"The capture is incomplete: it stopped after packet 5 ({manifest.Error}).", incomplete.Message);
        Assert.Null(HumanReport.AllClear(summary));
        Assert.Contains("INCOMPLETE: reading stopped after packet 5: libpcap stopped reading", exit.Stdout);
    }

    [Fact]
    public async Task DiskFullMidCaptureKeepsAValidPcapOfWholeRecordsAndExits1()
    {
        using var files = new CaptureFiles();
        var disk = Path.Combine(files.Directory, "small-disk");
        Directory.CreateDirectory(disk);
        (await HostCommand.RunAsync("mount", "-t", "tmpfs", "-o", "size=64k", "kcAT-full", disk)).EnsureSuccess();
        try
        {
            var pcap = Path.Combine(disk, "capture.pcap");
            await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-s", "0", "--duration", "20s", "-w", pcap, $"tcp port {LabFixture.HttpPort}"]);
            await agent.WaitUntilListeningAsync();
            Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("small.txt"))).Stdout);
            await Task.Delay(1500); // the agent writes what it holds at least once a second: this much fits
            Assert.Equal("200", (await fixture.Client.CurlAsync(fixture.Http.Url("200k.bin"))).Stdout);
            var exit = await agent.WaitForExitAsync(TimeSpan.FromSeconds(10));

            Assert.Equal(1, exit.ExitCode);
            Assert.Contains(exit.StderrLines, l => l.Contains("writing the pcap failed", StringComparison.Ordinal) && l.Contains($"packets captured before are in {pcap}", StringComparison.Ordinal));
            var file = PcapFile.Read(pcap); // whole records only, or it throws
            var manifest = CaptureFiles.Manifest(pcap);
            Assert.Equal("error", manifest.StopReason);
            Assert.Contains("No space left on device", manifest.Error);
            Assert.True(file.Records.Count >= 10, $"{file.Records.Count} packets kept"); // the first request, at least
            Assert.Equal(file.Records.Count, manifest.PacketsWritten);
            Assert.Equal(new FileInfo(pcap).Length, manifest.BytesWritten);
            Assert.Equal(CaptureFiles.Sha256(pcap), manifest.Sha256);
            var dump = await Tcpdump.ReadAsync(pcap);
            Assert.Equal(file.Records.Count, dump.Lines.Count);
            Assert.DoesNotContain("truncated", dump.Stderr, StringComparison.OrdinalIgnoreCase);
            Assert.True(manifest.Summary!.Input.Incomplete);
            Assert.Equal(FindingTypes.CaptureIncomplete, manifest.Summary.Findings[0].Type);
        }
        finally
        {
            await HostCommand.RunAsync("umount", "-l", disk);
        }
    }
}
