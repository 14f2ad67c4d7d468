using System.Buffers.Binary;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Testing.Pcap;

namespace KubeCapture.Operator.Tests.Ingest;

public sealed class LiveRecordFeedTests
{
    private static readonly CaptureIdentity Target = new("uid-1", "ns", "live", "api");

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(16)]
    [InlineData(100)]
    [InlineData(4096)]
    public void A_follower_from_the_start_gets_the_whole_pcap_whatever_the_chunk_sizes(int chunkSize)
    {
        var pcap = Pcap(20);
        var feed = new LiveRecordFeed();
        using var follow = feed.Subscribe(Target);

        Feed(feed, pcap, 0, pcap.Length, chunkSize);
        feed.Complete(Target);

        Assert.Equal(pcap, Drain(follow));
    }

    [Theory]
    [InlineData(5, 3)]
    public void A_follower_joining_mid_stream_gets_the_header_and_whole_records_from_the_next_record_on(int chunkSize, int joinAt)
    {
        var pcap = Pcap(30);
        var feed = new LiveRecordFeed();
        var fed = Feed(feed, pcap, 0, joinAt, chunkSize);
        using var follow = feed.Subscribe(Target);

        Feed(feed, pcap, fed, pcap.Length, chunkSize);
        feed.Complete(Target);

        var followed = PcapFile.Parse(Drain(follow));
        var all = PcapFile.Parse(pcap);
        Assert.Equal(all.LinkType, followed.LinkType);
        Assert.Equal(all.SnapshotLength, followed.SnapshotLength);
        Assert.NotEmpty(followed.Records);
        Assert.Equal(all.Records.TakeLast(followed.Records.Count).Select(r => r.Data), followed.Records.Select(r => r.Data));
        Assert.True(followed.Records.Count >= all.Records.Count - ((fed + chunkSize) / 30) - 1);
    }

    [Fact]
    public void Bytes_an_agent_sends_again_after_reconnecting_are_not_sent_twice()
    {
        var pcap = Pcap(10);
        var feed = new LiveRecordFeed();
        using var follow = feed.Subscribe(Target);

        feed.Append(Target, 0, pcap.AsMemory(0, 200));
        feed.Append(Target, 120, pcap.AsMemory(120, 200)); // resumed from the durable offset 120
        feed.Append(Target, 320, pcap.AsMemory(320));
        feed.Complete(Target);

        Assert.Equal(pcap, Drain(follow));
    }

    [Fact]
    public void A_feed_that_missed_the_start_refuses_followers_rather_than_send_torn_records()
    {
        var pcap = Pcap(10);
        var feed = new LiveRecordFeed();
        using var early = feed.Subscribe(Target);

        feed.Append(Target, 100, pcap.AsMemory(100));
        using var late = feed.Subscribe(Target);

        Assert.Throws<LiveFeedUnavailableException>(() => Drain(early));
        Assert.Throws<LiveFeedUnavailableException>(() => Drain(late));
    }

    [Theory]
    [InlineData(30)] // one chunk per record
    [InlineData(7)] // chunks that cut records in pieces
    [InlineData(4096)]
    public void A_follower_that_falls_more_bytes_behind_than_it_may_be_held_is_cut_off_at_a_whole_record_and_the_ingest_never_waits(int chunkSize)
    {
        var pcap = Pcap(1000); // 30,024 bytes
        var feed = new LiveRecordFeed(new FollowLimits { FollowBufferPerFollower = "8Ki", FollowBufferTotal = "1Mi" });
        using var follow = feed.Subscribe(Target);

        Feed(feed, pcap, 0, pcap.Length, chunkSize); // nobody reading

        Assert.True(feed.HeldBytes <= 8 << 10, $"{feed.HeldBytes} bytes held");
        var (read, error) = DrainUntilError(follow);
        Assert.IsType<FollowerTooSlowException>(error);
        Assert.Contains("fell too far behind the capture", error!.Message, StringComparison.Ordinal);
        Assert.InRange(read.Length, (8 << 10) - 30 - chunkSize, 8 << 10);
        Assert.Equal(0, (read.Length - 24) % 30); // whole records: still a valid pcap
        Assert.Equal(pcap.AsSpan(0, read.Length).ToArray(), read);
        Assert.Equal(0, feed.HeldBytes);
    }

    [Fact]
    public void Past_the_total_the_follower_furthest_behind_is_cut_off_and_one_that_reads_goes_on_to_the_end()
    {
        var pcap = Pcap(1000);
        var other = Target with { CaptureUid = "uid-2", CaptureName = "other" };
        var third = Target with { CaptureUid = "uid-3", CaptureName = "third" };
        var feed = new LiveRecordFeed(new FollowLimits { FollowBufferPerFollower = "16Ki", FollowBufferTotal = "20Ki" });
        using var sleeper = feed.Subscribe(Target); // never reads: each sleeper stays below its own 16 KiB, both together do not
        using var reader = feed.Subscribe(other);
        using var otherSleeper = feed.Subscribe(third);
        var followed = new MemoryStream();

        for (var at = 0; at < pcap.Length; at += 300)
        {
            var n = Math.Min(300, pcap.Length - at);
            feed.Append(Target, at, pcap.AsMemory(at, n));
            feed.Append(other, at, pcap.AsMemory(at, n));
            feed.Append(third, at, pcap.AsMemory(at, n));
            while (reader.TryRead(out var chunk))
            {
                followed.Write(chunk.Span);
            }

            Assert.True(feed.HeldBytes <= 20 << 10, $"{feed.HeldBytes} bytes held at {at}");
        }

        feed.Complete(other);
        feed.Complete(Target);
        feed.Complete(third);

        Assert.Equal(pcap, followed.ToArray().Concat(Drain(reader)).ToArray());
        foreach (var cut in new[] { sleeper, otherSleeper })
        {
            var (slept, error) = DrainUntilError(cut);
            Assert.IsType<FollowerTooSlowException>(error);
            Assert.InRange(slept.Length, 24, 16 << 10);
            Assert.Equal(0, (slept.Length - 24) % 30);
        }
    }

    [Fact]
    public void Following_a_completed_target_ends_at_once()
    {
        var feed = new LiveRecordFeed();
        feed.Append(Target, 0, Pcap(2));
        feed.Complete(Target);

        // A new feed for the same target (the ingest removed the old one): nothing arrives; the request handler ends it.
        using var follow = feed.Subscribe(Target);
        feed.Complete(Target);

        Assert.Empty(Drain(follow));
    }

    /// <summary>A little-endian pcap (Ethernet, snaplen 128) of <paramref name="records"/> 14-byte records.</summary>
    private static byte[] Pcap(int records)
    {
        var bytes = new byte[24 + (records * 30)];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(4), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(6), 4);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(16), 128);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(20), 1);
        for (var i = 0; i < records; i++)
        {
            var at = 24 + (i * 30);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), (uint)i);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 8), 14);
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 12), 60);
            bytes.AsSpan(at + 16, 14).Fill((byte)i);
        }

        return bytes;
    }

    private static int Feed(LiveRecordFeed feed, byte[] pcap, int from, int to, int chunkSize)
    {
        var at = from;
        while (at < to)
        {
            var n = Math.Min(chunkSize, pcap.Length - at);
            feed.Append(Target, at, pcap.AsMemory(at, n));
            at += n;
        }

        return at;
    }

    private static byte[] Drain(LiveSubscription follow)
    {
        var output = new MemoryStream();
        while (follow.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (follow.TryRead(out var chunk))
            {
                output.Write(chunk.Span);
            }
        }

        return output.ToArray();
    }

    /// <summary>What the follower reads before its follow ends, and the exception it ended with (null: it ended with the capture).</summary>
    private static (byte[] Read, Exception? Error) DrainUntilError(LiveSubscription follow)
    {
        var output = new MemoryStream();
        try
        {
            while (follow.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            {
                while (follow.TryRead(out var chunk))
                {
                    output.Write(chunk.Span);
                }
            }

            return (output.ToArray(), null);
        }
        catch (Exception e) when (e is FollowerTooSlowException or LiveFeedUnavailableException)
        {
            return (output.ToArray(), e);
        }
    }
}
