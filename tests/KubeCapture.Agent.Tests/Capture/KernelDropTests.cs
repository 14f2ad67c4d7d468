using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Pcap;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Agent.Tests.Capture;

/// <summary>libpcap's kernel counters reach the manifest: a capture with pages missing says so.</summary>
public sealed class KernelDropTests(LabFixture fixture) : IClassFixture<LabFixture>
{
    private const int SigStop = 19;
    private const int SigCont = 18;

    [Fact]
    public async Task PacketsTheKernelDroppedAreCountedInTheManifestAndWarnedAbout()
    {
        const int sent = 5000;
        using var files = new CaptureFiles();
        var pcap = files.Pcap();
        // A 64 KiB ring, and an agent frozen (SIGSTOP) while a burst arrives: the ring overflows. (--exact-filter:
        // the server's ICMP port unreachables about the datagrams would be kept and counted too, see IcmpTrafficTests.)
        await using var agent = AgentProcess.Start(fixture.Server, ["capture", "-i", fixture.Server.Interface, "-B", "64", "--duration", "30s", "--exact-filter", "-w", pcap, "udp port 9"]);
        await agent.WaitUntilListeningAsync();
        HostCommand.Signal(agent.Pid, SigStop);
        try
        {
            (await fixture.Client.ExecAsync("python3", "-c",
                $"import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range({sent}): s.sendto(b'x' * 200, ('{fixture.Server.IPv4}', 9))")).EnsureSuccess();
        }
        finally
        {
            HostCommand.Signal(agent.Pid, SigCont);
        }

        await Task.Delay(500);
        var exit = await agent.StopAsync();
        Assert.Equal(0, exit.ExitCode);

        var manifest = CaptureFiles.Manifest(pcap);
        Assert.True(manifest.PacketsDroppedByKernel > 0, $"dropped {manifest.PacketsDroppedByKernel}, written {manifest.PacketsWritten}");
        Assert.True(manifest.PacketsWritten < sent, $"written {manifest.PacketsWritten}");
        Assert.InRange(manifest.PacketsReceived, manifest.PacketsWritten + 1, sent);
        Assert.Equal(manifest.PacketsReceived, manifest.PacketsWritten + manifest.PacketsDroppedByKernel); // every packet accounted for, as tcpdump reports it
        Assert.Equal(manifest.PacketsWritten, (await Capinfos.ReadAsync(pcap)).Packets);
        Assert.Contains($"{manifest.PacketsDroppedByKernel} packets dropped by kernel", exit.Stdout);
        Assert.Contains("WARNING: the kernel dropped packets", exit.Stdout);
    }
}
