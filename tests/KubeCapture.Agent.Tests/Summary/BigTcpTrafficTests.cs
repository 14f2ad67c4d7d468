using System.Globalization;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Summary;
using KubeCapture.Testing.Agent;
using KubeCapture.Testing.Netns;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Agent.Tests.Summary;

/// <summary>
/// BIG TCP made by the real kernel: two pods whose veth links carry packets up to 185,000 bytes, as
/// on a node with BIG TCP enabled. The sender's segmentation offload (TSO/GSO) hands the capture whole
/// super-packets, or the receiver's GRO merges segments past 64 KB; either way IPv4 says total length
/// 0 and IPv6 carries a jumbo payload option. The agent captures at both ends; tshark reading the same
/// pcaps (it takes such lengths from the capture, as the agent must) is the ground truth.
/// </summary>
public sealed class BigTcpTrafficTests
{
    private const int Port = 5001;
    private const int Bytes = 8_000_000;

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(true, false)]
    public async Task BigTcpPacketsOfTheRealKernelAreDecodedAndEveryByteCountedAsTsharkCountsIt(bool ipv6, bool segmentationOffload)
    {
        await using var lab = await NetnsLab.CreateAsync("kcBT");
        using var files = new CaptureFiles();
        await lab.Client.EnableBigTcpAsync(185_000, segmentationOffload, receiveOffload: true);
        await lab.Server.EnableBigTcpAsync(185_000, segmentationOffload: true, receiveOffload: true);
        using var sink = await lab.Server.StartListeningAsync(["python3", "-c", Sink, Port.ToString(CultureInfo.InvariantCulture)], Port);

        var (clientPcap, serverPcap) = (files.Pcap("client.pcap"), files.Pcap("server.pcap"));
        await using var atClient = AgentProcess.Start(lab.Client, ["capture", "-i", lab.Client.Interface, "--json", "--duration", "60s", "-w", clientPcap]);
        await using var atServer = AgentProcess.Start(lab.Server, ["capture", "-i", lab.Server.Interface, "--json", "--duration", "60s", "-w", serverPcap]);
        await atClient.WaitUntilListeningAsync();
        await atServer.WaitUntilListeningAsync();
        var server = lab.Server.Address(ipv6).ToString();
        (await lab.Client.ExecAsync("python3", "-c", Send, server, Port.ToString(CultureInfo.InvariantCulture), Bytes.ToString(CultureInfo.InvariantCulture))).EnsureSuccess();
        await Task.Delay(300);

        foreach (var (agent, pcap) in new[] { (atClient, clientPcap), (atServer, serverPcap) })
        {
            var exit = await agent.StopAsync();
            Assert.Equal(0, exit.ExitCode);
            var manifest = CaptureManifest.FromJson(exit.Stdout);
            Assert.Equal(0, manifest.PacketsDroppedByKernel); // the ring holds headers only, not 185 KB packets
            var summary = manifest.Summary!;

            // Ground truth: tshark's payload bytes of the upload, and proof that packets past 64 KB were there.
            var upload = $"tcp.dstport == {Port}";
            var lengths = (await Tshark.FieldsAsync(pcap, ["tcp.len"], upload)).Select(f => long.Parse(f[0], CultureInfo.InvariantCulture)).ToList();
            if (segmentationOffload || pcap == serverPcap)
            {
                Assert.True(lengths.Max() > 65_535, $"the kernel made no packet past 64 KB at {pcap} (largest {lengths.Max()}): BIG TCP was not in use");
            }

            Assert.True(lengths.Sum() >= Bytes, $"tshark: {lengths.Sum()} bytes in {lengths.Count} packets at {pcap}");

            Assert.Equal(0, summary.UndecodablePackets);
            Assert.Equal(await CountAsync(pcap, "tcp"), summary.TcpPackets);
            var connection = Assert.Single(summary.ConnectionsWithFindings.Concat(summary.ConnectionsWithoutFindings), c => c.ServerPort == Port);
            Assert.Equal(lengths.Sum(), connection.ClientWireBytes);
            Assert.True(connection.Completed && connection.Closed);
            Assert.DoesNotContain(summary.Findings, f => f.Severity == FindingSeverity.Error);

            // GRO on a veth can drop segments when its queue is full, before the capture point: what
            // the summary calls sent again or out of order, tshark does too.
            var resent = (await Tshark.FieldsAsync(pcap, ["frame.number"], $"{upload} && (tcp.analysis.retransmission || tcp.analysis.out_of_order)"))
                .Select(f => long.Parse(f[0], CultureInfo.InvariantCulture)).ToHashSet();
            Assert.All(summary.Findings.SelectMany(f => f.Evidence.PacketNumbers), n => Assert.Contains(n, resent));
        }
    }

    private static async Task<int> CountAsync(string pcap, string displayFilter) => (await Tshark.FieldsAsync(pcap, ["frame.number"], displayFilter)).Count;

    /// <summary>Accepts connections and reads each to its end (argv[1]: the port), on :: (IPv4 and IPv6).</summary>
    private const string Sink = """
        import socket, sys, threading
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('::', int(sys.argv[1])))
        s.listen()
        def drain(c):
            while c.recv(1 << 20):
                pass
            c.close()
        while True:
            threading.Thread(target=drain, args=(s.accept()[0],)).start()
        """;

    /// <summary>Connects to argv[1]:argv[2], sends argv[3] bytes, then waits for the peer to close.</summary>
    private const string Send = """
        import socket, sys
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        s.sendall(bytes(int(sys.argv[3])))
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        s.close()
        """;
}
