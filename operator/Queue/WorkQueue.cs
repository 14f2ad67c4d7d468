namespace KubeCapture.Operator.Queue;

/// <summary>
/// The controller's work queue, as in client-go: a key is queued at most once however many events
/// arrive for it; a key being processed is never handed to a second worker (events meanwhile mark it
/// to run again once done); failures come back after a per-key exponential backoff. A key the
/// server pushed back (429/5xx with Retry-After) is not run before that time, whatever events
/// arrive meanwhile: they are deferred to it, not dropped. A key added <c>ahead</c> (the next step
/// of work already under way: a pod reporting the capture container running, ingest progress) is
/// taken before keys added plainly (new captures), as controller-runtime's priority queue serves
/// events ahead of its initial list: a burst of 1000 new captures must not hold up the captures
/// that only wait to be marked Running.
/// </summary>
public sealed class WorkQueue<TKey>(TimeSpan baseDelay, TimeSpan maxDelay, TimeProvider? time = null) : IDisposable
    where TKey : notnull
{
    private readonly Lock gate = new();
    /// <summary>The keys waiting to be taken, each with whether it was added ahead.</summary>
    private readonly Dictionary<TKey, bool> queued = [];
    private readonly HashSet<TKey> processing = [];
    /// <summary>The keys added while they were processed, each with whether it was added ahead.</summary>
    private readonly Dictionary<TKey, bool> dirtyWhileProcessing = [];
    private readonly Dictionary<TKey, int> failures = [];
    private readonly Dictionary<TKey, ITimer> delayed = [];
    private readonly Dictionary<TKey, DateTimeOffset> notBefore = [];
    private readonly Queue<TKey> readyAhead = new();
    private readonly Queue<TKey> readyInTurn = new();
    private readonly SemaphoreSlim readyCount = new(0);
    /// <summary>Cancelled (under the gate) when the queue is disposed.</summary>
    private readonly CancellationTokenSource closed = new();
    private readonly TimeProvider time = time ?? TimeProvider.System;

    public int Count
    {
        get
        {
            lock (gate)
            {
                return queued.Count;
            }
        }
    }

    /// <summary>
    /// Queues the key unless it is already queued; if it is being processed, it runs again afterwards.
    /// <paramref name="ahead"/> serves it before the keys queued plainly (a key already queued plainly moves ahead).
    /// </summary>
    public void Add(TKey key, bool ahead = false)
    {
        TimeSpan? wait = null;
        lock (gate)
        {
            if (notBefore.TryGetValue(key, out var at))
            {
                var remaining = at - time.GetUtcNow();
                if (remaining > TimeSpan.Zero)
                {
                    wait = remaining;
                }
                else
                {
                    notBefore.Remove(key);
                }
            }
        }

        if (wait is { } deferred)
        {
            AddAfter(key, deferred);
            return;
        }

        lock (gate)
        {
            if (closed.IsCancellationRequested)
            {
                return;
            }

            if (processing.Contains(key))
            {
                dirtyWhileProcessing[key] = ahead || dirtyWhileProcessing.GetValueOrDefault(key);
                return;
            }

            if (!queued.TryGetValue(key, out var queuedAhead))
            {
                queued[key] = ahead;
                (ahead ? readyAhead : readyInTurn).Enqueue(key);
                readyCount.Release();
            }
            else if (ahead && !queuedAhead)
            {
                // Queued plainly already: it moves ahead; its place in the plain line is skipped when reached.
                queued[key] = true;
                readyAhead.Enqueue(key);
                readyCount.Release();
            }
        }
    }

    /// <summary>Queues the key after a delay (replacing a pending delay for the key).</summary>
    public void AddAfter(TKey key, TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero)
        {
            Add(key);
            return;
        }

        lock (gate)
        {
            if (delayed.TryGetValue(key, out var existing))
            {
                existing.Dispose();
            }

            delayed[key] = time.CreateTimer(_ =>
            {
                lock (gate)
                {
                    delayed.Remove(key);
                }

                Add(key);
            }, null, delay, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// Queues the key after its backoff: base * 2^failures, capped; never sooner than
    /// <paramref name="atLeast"/> (the server's Retry-After).
    /// </summary>
    public TimeSpan AddRateLimited(TKey key, TimeSpan? atLeast = null)
    {
        int count;
        lock (gate)
        {
            failures.TryGetValue(key, out count);
            failures[key] = count + 1;
        }

        var delay = TimeSpan.FromTicks(Math.Min(maxDelay.Ticks, baseDelay.Ticks * (1L << Math.Min(count, 30))));
        if (atLeast is { } wait && wait > delay)
        {
            delay = wait;
            lock (gate)
            {
                notBefore[key] = time.GetUtcNow() + wait;
            }
        }

        AddAfter(key, delay);
        return delay;
    }

    /// <summary>The key succeeded: its backoff starts over.</summary>
    public void Forget(TKey key)
    {
        lock (gate)
        {
            failures.Remove(key);
            notBefore.Remove(key);
        }
    }

    /// <summary>Waits for the next key; the caller must call <see cref="Done"/> when finished with it.</summary>
    public async ValueTask<TKey> TakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            using (var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, closed.Token))
            {
                try
                {
                    await readyCount.WaitAsync(waiting.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new ObjectDisposedException(nameof(WorkQueue<TKey>));
                }
            }

            lock (gate)
            {
                ObjectDisposedException.ThrowIf(closed.IsCancellationRequested, this);
                var fromAhead = readyAhead.Count > 0;
                var key = fromAhead ? readyAhead.Dequeue() : readyInTurn.Dequeue();
                if (!queued.TryGetValue(key, out var queuedAhead) || (queuedAhead && !fromAhead))
                {
                    continue; // taken already from the other line, or it moved ahead and this is its old place in the plain line
                }

                queued.Remove(key);
                processing.Add(key);
                return key;
            }
        }
    }

    public void Done(TKey key)
    {
        bool again, ahead;
        lock (gate)
        {
            processing.Remove(key);
            again = dirtyWhileProcessing.Remove(key, out ahead);
        }

        if (again)
        {
            Add(key, ahead); // honours a pushback set while it ran
        }
    }

    public void Dispose()
    {
        lock (gate)
        {
            foreach (var timer in delayed.Values)
            {
                timer.Dispose();
            }

            delayed.Clear();
            closed.Cancel(); // waiting takers end with ObjectDisposedException
        }
    }
}
