using System.Buffers.Binary;
using System.Collections.Concurrent;
using KubeCapture.Contracts;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// The pcap of each running capture target as it reaches the ingest, for live followers
/// (<c>.../packetcaptures/NAME/follow</c>). The ingest appends every chunk it receives; the feed
/// tracks the record boundaries of the pcap stream, so a follower joining mid-stream gets the pcap
/// file header and then whole records from the next record on. Bytes an agent sends again after
/// a reconnect are not sent twice. The ingest never waits for a follower: what a follower has not
/// read yet is held for it in memory, at most <see cref="FollowLimits.PerFollower"/> bytes, and
/// <see cref="FollowLimits.Total"/> for all followers together; a follower that would go past
/// either (the one furthest behind, for the total) is cut off, its stream ending at the last whole
/// record it was given (still a valid pcap), with <see cref="FollowerTooSlowException"/>.
/// </summary>
public sealed class LiveRecordFeed(FollowLimits limits)
{
    private const int FileHeaderLength = 24;
    private const int RecordHeaderLength = 16;
    private readonly ConcurrentDictionary<CaptureIdentity, TargetFeed> feeds = new();
    private readonly FollowerBudget budget = new(limits);

    public LiveRecordFeed()
        : this(new FollowLimits())
    {
    }

    public LiveRecordFeed(Microsoft.Extensions.Options.IOptions<FollowLimits> options)
        : this(options.Value)
    {
    }

    /// <summary>Bytes held now for followers that have not read them, all followers together.</summary>
    public long HeldBytes => budget.Held;

    /// <summary>The ingest received <paramref name="data"/> at <paramref name="offset"/> of the target's pcap.</summary>
    public void Append(CaptureIdentity target, long offset, ReadOnlyMemory<byte> data)
    {
        var evicted = feeds.GetOrAdd(target, _ => new TargetFeed(budget)).Append(offset, data);
        foreach (var follower in evicted)
        {
            follower.Feed.Cut(follower); // outside the appending feed's lock: another feed's follower, furthest behind of all
        }
    }

    /// <summary>The target's pcap is complete (stored) or will never continue (failed): followers end.</summary>
    public void Complete(CaptureIdentity target)
    {
        if (feeds.TryRemove(target, out var feed))
        {
            feed.Complete();
        }
    }

    /// <summary>
    /// Follows the target: the subscription yields the pcap header and then whole records, and
    /// completes when the capture ends (or with <see cref="FollowerTooSlowException"/>). Dispose it to
    /// stop following.
    /// </summary>
    public LiveSubscription Subscribe(CaptureIdentity target) => feeds.GetOrAdd(target, _ => new TargetFeed(budget)).Subscribe();

    internal sealed class TargetFeed(FollowerBudget budget)
    {
        private readonly Lock gate = new();
        private readonly List<Follower> followers = [];
        private readonly byte[] header = new byte[FileHeaderLength];
        private long delivered;
        private long nextRecord = FileHeaderLength;

        /// <summary>The largest record start delivered so far: everything before it is whole records.</summary>
        private long completeEnd = FileHeaderLength;

        /// <summary><see cref="completeEnd"/> before the chunk being appended (for a follower that did not get that chunk).</summary>
        private long wholeBefore = FileHeaderLength;
        private bool bigEndian;
        private bool lost;
        private bool completed;

        // The 16-byte record header being read when it straddles two chunks.
        private readonly byte[] recordHeader = new byte[RecordHeaderLength];

        public LiveSubscription Subscribe()
        {
            var follower = new Follower(this);
            lock (gate)
            {
                if (completed)
                {
                    follower.Complete(null);
                }
                else if (lost)
                {
                    follower.Complete(new LiveFeedUnavailableException());
                }
                else
                {
                    followers.Add(follower);
                }
            }

            return new LiveSubscription(follower, budget, () =>
            {
                lock (gate)
                {
                    followers.Remove(follower);
                }

                follower.Complete(null);
            });
        }

        /// <summary>Appends a chunk; returns followers of other feeds to cut to stay within the total (cut them outside this lock).</summary>
        public List<Follower> Append(long offset, ReadOnlyMemory<byte> data)
        {
            var elsewhere = new List<Follower>();
            lock (gate)
            {
                if (lost || completed)
                {
                    return elsewhere;
                }

                if (offset > delivered)
                {
                    // This process missed the start (it began after the agent had sent bytes): record boundaries are unknown.
                    lost = true;
                    foreach (var f in followers)
                    {
                        f.Complete(new LiveFeedUnavailableException());
                    }

                    followers.Clear();
                    return elsewhere;
                }

                var skip = delivered - offset;
                if (skip >= data.Length)
                {
                    return elsewhere; // sent again after a reconnect: already delivered
                }

                data = data[(int)skip..];
                var start = delivered;
                wholeBefore = completeEnd;
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

                    completeEnd = nextRecord;
                    if (!AdvanceRecord(start, data.Span))
                    {
                        break;
                    }
                }

                if (nextRecord <= delivered)
                {
                    completeEnd = nextRecord;
                }

                for (var i = followers.Count - 1; i >= 0; i--)
                {
                    var f = followers[i];
                    Entry[] entries = f.Started ? [new Entry(start, data)]
                        : firstBoundary >= 0 ? [new Entry(-1, header.ToArray()), new Entry(firstBoundary, data[(int)(firstBoundary - start)..])]
                        : [];
                    if (entries.Length == 0 || f.IsCut || elsewhere.Contains(f))
                    {
                        continue; // an evicted one is cut below
                    }

                    if (!budget.TryHold(f, entries.Sum(e => e.Data.Length), elsewhere))
                    {
                        CutHere(f);
                        continue;
                    }

                    f.Started = true;
                    f.Enqueue(entries, delivered);
                }

                elsewhere.RemoveAll(f => f.Feed == this && CutHere(f));
                wholeBefore = completeEnd;
                return elsewhere;
            }
        }

        /// <summary>Cuts a follower of this feed (the budget chose it) at the last whole record it was given.</summary>
        public void Cut(Follower follower)
        {
            lock (gate)
            {
                CutHere(follower);
            }
        }

        private bool CutHere(Follower follower)
        {
            if (followers.Remove(follower))
            {
                budget.Drop(follower);
                follower.CutAt(!follower.Started ? 0 : follower.QueuedEnd >= delivered ? completeEnd : wholeBefore);
            }

            return true;
        }

        public void Complete()
        {
            lock (gate)
            {
                completed = true;
                foreach (var f in followers)
                {
                    f.Complete(null);
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

    /// <summary>Bytes at <see cref="Offset"/> of the pcap stream (-1: the file header sent to a follower that joined late).</summary>
    internal readonly record struct Entry(long Offset, ReadOnlyMemory<byte> Data);

    /// <summary>One follower's queue: what it has not read yet, and how it ends.</summary>
    internal sealed class Follower(TargetFeed feed)
    {
        private readonly Lock gate = new();
        private readonly Queue<Entry> queue = new();
        private readonly TaskCompletionSource cut = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource? waiting;
        private Exception? ending;
        private bool ended;

        public TargetFeed Feed { get; } = feed;

        public bool Started { get; set; }

        /// <summary>Bytes queued and not read yet (the budget's, under its lock).</summary>
        public long Queued { get; set; }

        /// <summary>The stream offset just past what was queued last.</summary>
        public long QueuedEnd { get; private set; }

        public bool IsCut => cut.Task.IsCompleted;

        /// <summary>Completes when the follower is cut off.</summary>
        public Task Cut => cut.Task;

        public void Enqueue(Entry[] entries, long end)
        {
            lock (gate)
            {
                foreach (var entry in entries)
                {
                    queue.Enqueue(entry);
                }

                QueuedEnd = end;
                Wake();
            }
        }

        /// <summary>Ends the follower's stream at <paramref name="end"/> (a record boundary): what is queued past it is dropped now.</summary>
        public void CutAt(long end)
        {
            lock (gate)
            {
                var kept = queue.Where(e => e.Offset < end).Select(e => e.Offset < 0 || e.Offset + e.Data.Length <= end ? e : e with { Data = e.Data[..(int)(end - e.Offset)] }).ToList();
                queue.Clear();
                foreach (var entry in kept)
                {
                    queue.Enqueue(entry);
                }

                ending ??= new FollowerTooSlowException();
                ended = true;
                Wake();
            }

            cut.TrySetResult();
        }

        public void Complete(Exception? error)
        {
            lock (gate)
            {
                if (ended)
                {
                    return;
                }

                ending = error;
                ended = true;
                Wake();
            }
        }

        public bool TryRead(out Entry entry)
        {
            lock (gate)
            {
                return queue.TryDequeue(out entry);
            }
        }

        /// <summary>True when there is something to read; false at the end; throws the reason it was ended otherwise.</summary>
        public async ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                Task wait;
                lock (gate)
                {
                    if (queue.Count > 0)
                    {
                        return true;
                    }

                    if (ended)
                    {
                        return ending is null ? false : throw ending;
                    }

                    waiting ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    wait = waiting.Task;
                }

                await wait.WaitAsync(cancellationToken);
            }
        }

        private void Wake()
        {
            waiting?.TrySetResult();
            waiting = null;
        }
    }

    /// <summary>The bytes held for followers: per follower and for all.</summary>
    internal sealed class FollowerBudget(FollowLimits limits)
    {
        private readonly Lock gate = new();
        private readonly HashSet<Follower> holding = [];
        private long held;

        public long Held
        {
            get
            {
                lock (gate)
                {
                    return held;
                }
            }
        }

        /// <summary>
        /// Holds <paramref name="bytes"/> more for <paramref name="follower"/>; false when it would go
        /// past its own limit, or past the total while it is the one furthest behind. Followers further
        /// behind are let go of to make room and added to <paramref name="evicted"/>: cut them.
        /// </summary>
        public bool TryHold(Follower follower, long bytes, List<Follower> evicted)
        {
            lock (gate)
            {
                if (follower.Queued + bytes > limits.PerFollower)
                {
                    return false;
                }

                while (held + bytes > limits.Total)
                {
                    var furthest = holding.Where(f => !evicted.Contains(f)).MaxBy(f => f.Queued);
                    if (furthest is null || furthest == follower || furthest.Queued <= follower.Queued)
                    {
                        return false;
                    }

                    DropLocked(furthest);
                    evicted.Add(furthest);
                }

                holding.Add(follower);
                follower.Queued += bytes;
                held += bytes;
                return true;
            }
        }

        /// <summary>The follower read <paramref name="bytes"/>: no longer held for it.</summary>
        public void Release(Follower follower, long bytes)
        {
            lock (gate)
            {
                if (holding.Contains(follower))
                {
                    var released = Math.Min(bytes, follower.Queued);
                    follower.Queued -= released;
                    held -= released;
                }
            }
        }

        /// <summary>
        /// Lets go of everything held for the follower (cut off, or gone). A cut-off follower's last
        /// whole records stay queued until it reads them or its request is ended (within
        /// Subresources:FollowCutGrace), no longer counted.
        /// </summary>
        public void Drop(Follower follower)
        {
            lock (gate)
            {
                DropLocked(follower);
            }
        }

        private void DropLocked(Follower follower)
        {
            if (holding.Remove(follower))
            {
                held -= follower.Queued;
                follower.Queued = 0;
            }
        }
    }
}

/// <summary>
/// Configuration of live follow memory (section <c>Subresources</c>): how many bytes of pcap the
/// operator holds for one follower that has not read them yet, and for all followers together.
/// </summary>
public sealed class FollowLimits
{
    /// <summary>At most this many bytes are held for one follower ("8Mi"): a follower further behind is cut off.</summary>
    public string FollowBufferPerFollower { get; set; } = "8Mi";

    /// <summary>At most this many for all followers together ("32Mi"): past it, the follower furthest behind is cut off.</summary>
    public string FollowBufferTotal { get; set; } = "32Mi";

    /// <summary>How long a cut-off follower may take to read its last whole records before its request is ended ("10s").</summary>
    public string FollowCutGrace { get; set; } = "10s";

    public TimeSpan CutGrace => Quantities.TryParseDuration(FollowCutGrace, out var grace, out var error) && grace > TimeSpan.Zero
        ? grace : throw new InvalidOperationException($"Subresources:FollowCutGrace: {error}");

    public long PerFollower => Parse(FollowBufferPerFollower, "Subresources:FollowBufferPerFollower");

    public long Total => Parse(FollowBufferTotal, "Subresources:FollowBufferTotal");

    private static long Parse(string text, string key) =>
        Quantities.TryParseSize(text, out var value, out var error) && value > 0 ? value : throw new InvalidOperationException($"{key}: {error}");
}

/// <summary>A live follow of one target: read it until it completes; dispose it to stop.</summary>
public sealed class LiveSubscription : IDisposable
{
    private readonly LiveRecordFeed.Follower follower;
    private readonly LiveRecordFeed.FollowerBudget budget;
    private readonly Action stop;

    internal LiveSubscription(LiveRecordFeed.Follower follower, LiveRecordFeed.FollowerBudget budget, Action stop)
    {
        this.follower = follower;
        this.budget = budget;
        this.stop = stop;
    }

    /// <summary>Completes when the follower is cut off for falling behind (its last whole records still to read).</summary>
    public Task Cut => follower.Cut;

    /// <summary>Waits until there is something to read; false when the follow ended; throws <see cref="FollowerTooSlowException"/> or <see cref="LiveFeedUnavailableException"/> when it was ended so.</summary>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default) => follower.WaitToReadAsync(cancellationToken);

    /// <summary>The next bytes of the follower's pcap, if any are here.</summary>
    public bool TryRead(out ReadOnlyMemory<byte> data)
    {
        if (follower.TryRead(out var entry))
        {
            budget.Release(follower, entry.Data.Length);
            data = entry.Data;
            return true;
        }

        data = default;
        return false;
    }

    public void Dispose()
    {
        stop();
        budget.Drop(follower);
    }
}

/// <summary>The follower read more slowly than packets arrived; its stream was ended at a record boundary.</summary>
public sealed class FollowerTooSlowException() : Exception("the follower fell too far behind the capture (more unread pcap than the operator holds for a follower: Subresources:FollowBufferPerFollower, or for all followers: Subresources:FollowBufferTotal) and was cut off at the last whole record; follow again, or download the pcap when the capture ends");

/// <summary>This operator process did not see the start of the target's pcap (it started later): it cannot follow it live.</summary>
public sealed class LiveFeedUnavailableException() : Exception("this operator process joined the capture mid-stream and cannot follow it live; download the pcap when the capture ends");
