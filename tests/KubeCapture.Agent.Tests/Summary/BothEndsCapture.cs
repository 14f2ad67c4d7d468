using System.Globalization;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>One end's capture: the manifest the agent printed (its summary inside) and the pcap.</summary>
internal sealed record CapturedEnd(CaptureManifest Manifest, string Pcap)
{
    public TcpSummaryReport Summary => Manifest.Summary ?? throw new InvalidOperationException("no summary in the manifest");
}

/// <summary>The agent capturing at both ends of a <see cref="MiddleboxLab"/>, and the ground truth tshark reads from their pcaps.</summary>
internal static class BothEndsCapture
{
    /// <summary>Starts an agent in the client and one in the server with <paramref name="filter"/>, runs <paramref name="traffic"/> once both listen, and stops them.</summary>
    public static async Task<(CapturedEnd Client, CapturedEnd Server)> CaptureAsync(MiddleboxLab lab, CaptureFiles files, string filter, Func<Task> traffic)
    {
        var (clientPcap, serverPcap) = (files.Pcap("client.pcap"), files.Pcap("server.pcap"));
        await using var clientAgent = AgentProcess.Start(lab.Client, ["capture", "-i", lab.Client.Interface, "--json", "--duration", "60s", "-w", clientPcap, filter]);
        await using var serverAgent = AgentProcess.Start(lab.Server, ["capture", "-i", lab.Server.Interface, "--json", "--duration", "60s", "-w", serverPcap, filter]);
        await clientAgent.WaitUntilListeningAsync();
        await serverAgent.WaitUntilListeningAsync();
        await traffic();
        await Task.Delay(300);
        return (await StopAsync(clientAgent, clientPcap), await StopAsync(serverAgent, serverPcap));
    }

    private static async Task<CapturedEnd> StopAsync(AgentProcess agent, string pcap)
    {
        var exit = await agent.StopAsync();
        Assert.Equal(0, exit.ExitCode);
        return new CapturedEnd(CaptureManifest.FromJson(exit.Stdout), pcap);
    }

    /// <summary>tshark's frame numbers of the packets <paramref name="displayFilter"/> matches.</summary>
    public static async Task<List<long>> FramesAsync(string pcap, string displayFilter) =>
        [.. (await Tshark.FieldsAsync(pcap, ["frame.number"], displayFilter)).Select(f => long.Parse(f[0], CultureInfo.InvariantCulture))];

    /// <summary>tshark's sum of tcp.len over the packets <paramref name="displayFilter"/> matches.</summary>
    public static async Task<long> PayloadBytesAsync(string pcap, string displayFilter) =>
        (await Tshark.FieldsAsync(pcap, ["tcp.len"], displayFilter)).Sum(f => long.Parse(f[0], CultureInfo.InvariantCulture));

    /// <summary>Every packet number a finding cites is a packet of the pcap that <paramref name="displayFilter"/> matches (tshark's frame.number).</summary>
    public static async Task AssertPacketsAreAsync(string pcap, Finding finding, string displayFilter)
    {
        Assert.NotEmpty(finding.Evidence.PacketNumbers);
        var matching = (await FramesAsync(pcap, displayFilter)).ToHashSet();
        Assert.All(finding.Evidence.PacketNumbers, n => Assert.Contains(n, matching));
    }
}
