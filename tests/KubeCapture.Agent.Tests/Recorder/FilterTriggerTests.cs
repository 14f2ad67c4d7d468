using KubeCapture.Agent.Recorder;
using KubeCapture.Contracts.Recorder;
using PacketDotNet;

namespace KubeCapture.Agent.Tests.Recorder;

/// <summary>The filter trigger on its own, with libpcap compiling and running the filter: N within the period fires once per event, by packet time, without allocating.</summary>
public sealed class FilterTriggerTests
{
    private static readonly FilterTriggerSpec ResetsSpec = new("tcp[tcpflags] & tcp-rst != 0", new TriggerThreshold(3, TimeSpan.FromSeconds(1)));

    [Fact]
    public void ItFiresOnTheMatchThatMakesNWithinThePeriodOncePerEventAndReArmsAfterAQuietPeriod()
    {
        using var trigger = FilterTrigger.Create(ResetsSpec, LinkLayers.Ethernet);
        var rst = Frame(0x14);
        var ack = Frame(0x10);
        var fired = new List<(long Time, long EventStart)>();
        void Packet(byte[] frame, long time)
        {
            if (trigger.Observe(frame, (uint)frame.Length, time, out var start))
            {
                fired.Add((time, start));
            }
        }

        Packet(rst, 0); // alone: 1 in a period
        Packet(rst, 1_500_000);
        Packet(ack, 1_600_000); // not a match
        Packet(rst, 2_000_000);
        Assert.Empty(fired); // the first RST is more than a period before the third
        Packet(rst, 2_400_000); // 3 within 1 s: 1.5, 2.0, 2.4
        Assert.Equal([(2_400_000L, 1_500_000L)], fired);
        for (var t = 2_500_000L; t < 6_000_000; t += 100_000)
        {
            Packet(rst, t); // the storm goes on: one event
        }

        Assert.Single(fired);
        Packet(ack, 7_000_000); // a quiet period: fewer than 3 within it, re-armed
        Packet(rst, 7_100_000);
        Packet(rst, 7_200_000);
        Packet(rst, 7_300_000);
        Assert.Equal([(2_400_000L, 1_500_000L), (7_300_000L, 7_100_000L)], fired);
        Assert.Equal(4 + 35 + 3, trigger.Matched);
    }

    [Fact]
    public void RunningTheFilterAllocatesNothingPerPacket()
    {
        using var trigger = FilterTrigger.Create(ResetsSpec, LinkLayers.Ethernet);
        var rst = Frame(0x14);
        var ack = Frame(0x10);
        for (var i = 0; i < 1000; i++)
        {
            trigger.Observe(i % 2 == 0 ? rst : ack, 60, i, out _); // warm up
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 200_000; i++)
        {
            trigger.Observe(i % 2 == 0 ? rst : ack, 60, 1000 + (i * 10L), out _);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(100_500, trigger.Matched);
    }

    [Fact]
    public void AFilterLibpcapRejectsIsRefusedWithLibpcapsMessage()
    {
        var refused = Assert.Throws<KubeCapture.Agent.Capture.CaptureSetupException>(() => FilterTrigger.Check("tcp[tcpflags] & tcp-bogus != 0", LinkLayers.Ethernet));
        Assert.StartsWith("invalid --trigger-filter 'tcp[tcpflags] & tcp-bogus != 0': libpcap: ", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>An Ethernet, IPv4 and TCP frame (54 bytes) with the given TCP flags.</summary>
    private static byte[] Frame(byte flags)
    {
        var frame = new byte[54];
        frame[12] = 0x08; // IPv4
        frame[14] = 0x45;
        frame[17] = 40; // total length
        frame[22] = 64; // TTL
        frame[23] = 6; // TCP
        frame[26] = 10;
        frame[30] = 10;
        frame[33] = 2;
        frame[35] = 80; // ports 1 > 80
        frame[46] = 0x50; // data offset
        frame[47] = flags;
        return frame;
    }
}
