using System.Buffers.Binary;
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

    [Fact]
    public void A_follower_that_falls_too_far_behind_is_ended_and_the_ingest_never_waits()
    {
        var pcap = Pcap(LiveRecordFeed.FollowerBacklog + 10);
        var feed = new LiveRecordFeed();
        using var follow = feed.Subscribe(Target);

        Feed(feed, pcap, 0, pcap.Length, 30); // one chunk per record, nobody reading

        var e = Assert.Throws<FollowerTooSlowException>(() => Drain(follow));
        Assert.Contains("fell more than 4096 chunks behind", e.Message, StringComparison.Ordinal);
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
        while (follow.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (follow.Reader.TryRead(out var chunk))
            {
                output.Write(chunk.Span);
            }
        }

        return output.ToArray();
    }
}
