using System.Buffers.Binary;
using KubeCapture.Agent.Summary;
using PacketDotNet;

namespace KubeCapture.Agent.Tests.Summary;

public sealed class TcpSummaryLoopbackTests
{
    [Fact]
    public void OutgoingEchoOfALoopbackPacketOnAnyIsNotCountedAsARetransmission()
    {
        var summary = new TcpSummary(LinkLayers.LinuxSll);
        var data = SllTcp(packetType: 4, hatype: 772, sequence: 1000, payload: 100);
        var echo = SllTcp(packetType: 0, hatype: 772, sequence: 1000, payload: 100);

        summary.Observe(data);
        summary.Observe(echo);
        summary.Observe(SllTcp(packetType: 4, hatype: 772, sequence: 1100, payload: 100));
        summary.Observe(SllTcp(packetType: 0, hatype: 772, sequence: 1100, payload: 100));

        var report = summary.Report();
        Assert.Equal(2, report.TcpPackets);
        Assert.Equal(0, report.Retransmissions);
    }

    [Fact]
    public void TheSameSegmentSeenTwiceOnARealInterfaceIsARetransmission()
    {
        var summary = new TcpSummary(LinkLayers.LinuxSll);
        summary.Observe(SllTcp(packetType: 4, hatype: 1, sequence: 1000, payload: 100));
        summary.Observe(SllTcp(packetType: 4, hatype: 1, sequence: 1000, payload: 100));

        Assert.Equal(1, summary.Report().Retransmissions);
    }

    /// <summary>A Linux cooked (SLL) frame carrying IPv4/TCP with an ACK and a payload of the given size.</summary>
    private static byte[] SllTcp(ushort packetType, ushort hatype, uint sequence, int payload)
    {
        var frame = new byte[16 + 20 + 20];
        BinaryPrimitives.WriteUInt16BigEndian(frame, packetType);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(2), hatype);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), 0x0800);
        var ip = frame.AsSpan(16);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 20 + payload));
        ip[8] = 64;
        ip[9] = 6;
        ip[12] = 127;
        ip[15] = 1;
        ip[16] = 127;
        ip[19] = 1;
        var tcp = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 8000);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], 1);
        tcp[12] = 5 << 4;
        tcp[13] = 0x18; // PSH, ACK
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 512);
        return frame; // snaplen-truncated: the payload length comes from the IP header
    }
}
