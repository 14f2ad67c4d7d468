using System.Buffers.Binary;
using KubeCapture.Agent.Recorder;

namespace KubeCapture.Agent.Tests.Recorder;

/// <summary>The ring on its own: whole records, oldest evicted first, by room and by age, and nothing allocated per packet.</summary>
public sealed class PacketRingTests
{
    [Fact]
    public void AcrossManyWrapsTheRingHoldsTheNewestWholeRecordsInOrderWithoutGaps()
    {
        var ring = new PacketRing(1000);
        var sizes = new[] { 10, 37, 64, 5, 90, 23 };
        for (var i = 0; i < 500; i++)
        {
            ring.Append(1, (uint)i, Payload(i, sizes[i % sizes.Length]), 1500, retainFrom: 0);
            var held = Held(ring);
            Assert.Equal(ring.Count, held.Count);
            Assert.Equal(i, held[^1].Number); // the newest is always kept
            Assert.Equal(Enumerable.Range(held[0].Number, held.Count), held.Select(r => r.Number)); // consecutive: no gap, no duplicate
            Assert.All(held, r => Assert.Equal(sizes[r.Number % sizes.Length], r.Length)); // whole records
            Assert.Equal(held.Sum(r => 16L + r.Length), ring.Bytes);
            Assert.True(ring.Bytes <= 1000);
            if (held[0].Number > 0)
            {
                // the record before the oldest no longer fitted: at most one record's room is lost at the wrap
                var previous = 16 + sizes[(held[0].Number - 1) % sizes.Length];
                Assert.True(ring.Bytes + previous > 1000 - 106, $"held {ring.Bytes} bytes, the one before would have needed {previous}");
            }
        }

        Assert.True(ring.Wraps > 20, $"{ring.Wraps} wraps"); // 500 records of 54 bytes on average through 1000 bytes
        Assert.True(ring.EvictedForSpace > 400);
    }

    [Fact]
    public void RecordsOlderThanTheRetentionAreEvictedByPacketTime()
    {
        var ring = new PacketRing(1 << 20);
        for (var i = 0; i < 100; i++)
        {
            // one packet every 10 ms; keep the last 250 ms
            var time = 1_000_000L + (i * 10_000L);
            ring.Append((uint)(time / 1_000_000), (uint)(time % 1_000_000), Payload(i, 20), 20, retainFrom: time - 250_000);
        }

        var held = Held(ring);
        Assert.Equal(Enumerable.Range(74, 26), held.Select(r => r.Number)); // 990 ms back to 740 ms
        Assert.Equal(0, ring.EvictedForSpace);
        Assert.Equal(long.MinValue, ring.NewestEvictedForSpace);
    }

    [Fact]
    public void AppendingAllocatesNothingPerPacket()
    {
        var ring = new PacketRing(64 << 10);
        var payload = new byte[128];
        for (var i = 0; i < 1000; i++)
        {
            ring.Append(1, (uint)i, payload, 1500, retainFrom: 0); // warm up
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        long walked = 0;
        for (var i = 0; i < 200_000; i++)
        {
            ring.Append((uint)(i / 1000), (uint)(i % 1000), payload, 1500, retainFrom: 0);
        }

        foreach (var record in ring)
        {
            walked += record.Length;
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(ring.Bytes, walked);
        Assert.True(ring.Wraps > 400);
    }

    [Fact]
    public void ARecordLargerThanTheRingIsRefused() =>
        Assert.Throws<ArgumentException>(() => new PacketRing(100).Append(0, 0, new byte[85], 85, 0));

    private static byte[] Payload(int number, int length)
    {
        var payload = new byte[length];
        BinaryPrimitives.WriteInt32BigEndian(payload, number);
        return payload;
    }

    private static List<(int Number, int Length)> Held(PacketRing ring)
    {
        var held = new List<(int, int)>();
        foreach (var record in ring)
        {
            held.Add((BinaryPrimitives.ReadInt32BigEndian(record[16..]), record.Length - 16));
        }

        return held;
    }
}
