using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Pcap;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Agent.Tests.Capture;

/// <summary>When the output fails mid-capture, what was captured before stays, in a valid pcap.</summary>
public sealed class OutputFailureTests(LabFixture fixture) : IClassFixture<LabFixture>
{
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
        }
        finally
        {
            await HostCommand.RunAsync("umount", "-l", disk);
        }
    }
}
