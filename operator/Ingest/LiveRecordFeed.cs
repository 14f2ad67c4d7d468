using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Threading.Channels;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// The pcap of each running capture target as it reaches the ingest, for live followers
/// (<c>.../packetcaptures/NAME/follow</c>). The ingest appends every chunk it receives; the feed
/// tracks the record boundaries of the pcap stream, so a follower joining mid-stream gets the pcap
/// file header and then whole records from the next record on. Bytes an agent sends again after
/// a reconnect are not sent twice. A follower that falls more than <see cref="FollowerBacklog"/>
/// chunks behind is ended (its stream stays a valid pcap of whole records); the ingest never waits
/// for a follower.
/// </summary>
public sealed class LiveRecordFeed
{
    public const int FollowerBacklog = 4096;
    private const int FileHeaderLength = 24;
    private const int RecordHeaderLength = 16;
    private readonly ConcurrentDictionary<CaptureIdentity, TargetFeed> feeds = new();

    /// <summary>The ingest received <paramref name="data"/> at <paramref name="offset"/> of the target's pcap.</summary>
    public void Append(CaptureIdentity target, long offset, ReadOnlyMemory<byte> data) => feeds.GetOrAdd(target, _ => new TargetFeed()).Append(offset, data);

    /// <summary>The target's pcap is complete (stored) or will never continue (failed): followers end.</summary>
    public void Complete(CaptureIdentity target)
    {
        if (feeds.TryRemove(target, out var feed))
        {
            feed.Complete();
        }
    }

    /// <summary>
    /// Follows the target: the returned reader yields the pcap header and then whole records, and
    /// completes when the capture ends (or with <see cref="FollowerTooSlowException"/>). Dispose the
    /// subscription to stop following.
    /// </summary>
    public LiveSubscription Subscribe(CaptureIdentity target) => feeds.GetOrAdd(target, _ => new TargetFeed()).Subscribe();

    private sealed class TargetFeed
    {
        private readonly Lock gate = new();
        private readonly List<Follower> followers = [];
        private readonly byte[] header = new byte[FileHeaderLength];
        private long delivered;
        private long nextRecord = FileHeaderLength;
        private bool bigEndian;
        private bool lost;
        private bool completed;

        // The 16-byte record header being read when it straddles two chunks.
        private readonly byte[] recordHeader = new byte[RecordHeaderLength];

        public LiveSubscription Subscribe()
        {
            var follower = new Follower(Channel.CreateBounded<ReadOnlyMemory<byte>>(new BoundedChannelOptions(FollowerBacklog) { SingleReader = true, SingleWriter = true, FullMode = BoundedChannelFullMode.Wait }));
            lock (gate)
            {
                if (completed)
                {
                    follower.Channel.Writer.TryComplete();
                }
                else if (lost)
                {
                    follower.Channel.Writer.TryComplete(new LiveFeedUnavailableException());
                }
                else
                {
                    followers.Add(follower);
                }
            }

            return new LiveSubscription(follower.Channel.Reader, () =>
            {
                lock (gate)
                {
                    followers.Remove(follower);
                }

                follower.Channel.Writer.TryComplete();
            });
        }

        public void Append(long offset, ReadOnlyMemory<byte> data)
        {
            lock (gate)
            {
                if (lost || completed)
                {
                    return;
                }

                if (offset > delivered)
                {
                    // This process missed the start (it began after the agent had sent bytes): record boundaries are unknown.
                    lost = true;
                    foreach (var f in followers)
                    {
                        f.Channel.Writer.TryComplete(new LiveFeedUnavailableException());
                    }

                    followers.Clear();
                    return;
                }

                var skip = delivered - offset;
                if (skip >= data.Length)
                {
                    return; // sent again after a reconnect: already delivered
                }

                data = data[(int)skip..];
                var start = delivered;
                delivered += data.Length;
                CopyHeader(start, data.Span);
                // Followers waiting for a record boundary start at the first one inside this chunk.
                var firstBoundary = -1L;
                while (nextRecord < delivered)
                {
                    if (firstBoundary < 0 && nextRecord >= start)
                    {
                        firstBoundary = nextRecord;
                    }

                    if (!AdvanceRecord(start, data.Span))
                    {
                        break;
                    }
                }

                for (var i = followers.Count - 1; i >= 0; i--)
                {
                    var f = followers[i];
                    var ok = true;
                    if (f.Started)
                    {
                        ok = f.Channel.Writer.TryWrite(data);
                    }
                    else if (firstBoundary >= 0)
                    {
                        f.Started = true;
                        ok = f.Channel.Writer.TryWrite(header.ToArray()) && f.Channel.Writer.TryWrite(data[(int)(firstBoundary - start)..]);
                    }

                    if (!ok)
                    {
                        f.Channel.Writer.TryComplete(new FollowerTooSlowException());
                        followers.RemoveAt(i);
                    }
                }
            }
        }

        public void Complete()
        {
            lock (gate)
            {
                completed = true;
                foreach (var f in followers)
                {
                    f.Channel.Writer.TryComplete();
                }

                followers.Clear();
            }
        }

        private void CopyHeader(long start, ReadOnlySpan<byte> data)
        {
            if (start >= FileHeaderLength)
            {
                return;
            }

            var n = (int)Math.Min(FileHeaderLength - start, data.Length);
            data[..n].CopyTo(header.AsSpan((int)start));
            if (start + n == FileHeaderLength)
            {
                var magic = BinaryPrimitives.ReadUInt32LittleEndian(header);
                bigEndian = magic is 0xd4c3b2a1 or 0x4d3cb2a1;
            }
        }

        /// <summary>Moves <see cref="nextRecord"/> past the record starting there; false when its header is not all here yet.</summary>
        private bool AdvanceRecord(long chunkStart, ReadOnlySpan<byte> chunk)
        {
            // Gather the record header, which may have started in an earlier chunk.
            for (var i = 0; i < RecordHeaderLength; i++)
            {
                var at = nextRecord + i;
                if (at >= chunkStart + chunk.Length)
                {
                    return false;
                }

                if (at >= chunkStart)
                {
                    recordHeader[i] = chunk[(int)(at - chunkStart)];
                }
            }

            var included = bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(recordHeader.AsSpan(8)) : BinaryPrimitives.ReadUInt32LittleEndian(recordHeader.AsSpan(8));
            nextRecord += RecordHeaderLength + included;
            return true;
        }
    }

    private sealed class Follower(Channel<ReadOnlyMemory<byte>> channel)
    {
        public Channel<ReadOnlyMemory<byte>> Channel { get; } = channel;

        public bool Started { get; set; }
    }
}

/// <summary>A live follow of one target: read <see cref="Reader"/> until it completes; dispose to stop.</summary>
public sealed class LiveSubscription(ChannelReader<ReadOnlyMemory<byte>> reader, Action stop) : IDisposable
{
    public ChannelReader<ReadOnlyMemory<byte>> Reader { get; } = reader;

    public void Dispose() => stop();
}

/// <summary>The follower read more slowly than packets arrived; its stream was ended at a record boundary.</summary>
public sealed class FollowerTooSlowException() : Exception($"the follower fell more than {LiveRecordFeed.FollowerBacklog} chunks behind the capture and was disconnected");

/// <summary>This operator process did not see the start of the target's pcap (it started later): it cannot follow it live.</summary>
public sealed class LiveFeedUnavailableException() : Exception("this operator process joined the capture mid-stream and cannot follow it live; download the pcap when the capture ends");
