using KubeCapture.Operator.Queue;

namespace KubeCapture.Operator.Tests.Queue;

public sealed class WorkQueueTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task A_key_added_many_times_before_it_is_taken_is_handed_out_once()
    {
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(1));
        queue.Add("shop/a");
        queue.Add("shop/a");
        queue.Add("shop/b");
        queue.Add("shop/a");

        var first = await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout);
        var second = await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout);

        Assert.Equal(["shop/a", "shop/b"], new[] { first, second });
        Assert.Equal(0, queue.Count);
        using var none = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queue.TakeAsync(none.Token).AsTask());
    }

    [Fact]
    public async Task A_key_changed_while_it_is_processed_goes_to_no_other_worker_and_runs_again_after_Done()
    {
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(1));
        queue.Add("shop/a");
        var key = await queue.TakeAsync(CancellationToken.None);

        queue.Add("shop/a");
        using var meanwhile = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queue.TakeAsync(meanwhile.Token).AsTask());

        queue.Done(key);
        Assert.Equal("shop/a", await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
    }

    [Fact]
    public async Task Keys_added_ahead_are_taken_before_keys_queued_in_turn_and_a_key_queued_in_turn_moves_ahead_once()
    {
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(1));
        foreach (var name in new[] { "new-1", "new-2", "new-3" })
        {
            queue.Add($"shop/{name}");
        }

        queue.Add("shop/running-1", ahead: true);
        queue.Add("shop/new-3", ahead: true); // queued in turn already: it moves ahead
        queue.Add("shop/running-1", ahead: true);

        var order = new List<string>();
        while (queue.Count > 0)
        {
            order.Add(await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
        }

        Assert.Equal(["shop/running-1", "shop/new-3", "shop/new-1", "shop/new-2"], order);
        using var none = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => queue.TakeAsync(none.Token).AsTask()); // new-3's old place is not handed out
    }

    [Fact]
    public async Task A_key_added_ahead_while_it_is_processed_runs_again_ahead_of_keys_in_turn()
    {
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(1));
        queue.Add("shop/a");
        var key = await queue.TakeAsync(CancellationToken.None);
        queue.Add("shop/b");
        queue.Add("shop/a", ahead: true);

        queue.Done(key);

        Assert.Equal("shop/a", await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
        Assert.Equal("shop/b", await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
    }

    [Fact]
    public async Task A_worker_waiting_for_a_key_ends_with_ObjectDisposedException_when_the_queue_is_disposed()
    {
        var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(1));
        var waiting = queue.TakeAsync(CancellationToken.None).AsTask();

        queue.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.WaitAsync(Timeout));
        queue.Add("shop/a"); // an event after disposal is dropped, not thrown
    }

    [Fact]
    public void Failures_back_off_exponentially_up_to_the_cap_and_Forget_starts_over()
    {
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(500));

        var delays = Enumerable.Range(0, 5).Select(_ => queue.AddRateLimited("shop/a").TotalMilliseconds).ToList();
        queue.Forget("shop/a");
        var afterForget = queue.AddRateLimited("shop/a").TotalMilliseconds;

        Assert.Equal([100, 200, 400, 500, 500], delays);
        Assert.Equal(100, afterForget);
    }

    [Fact]
    public async Task A_delayed_key_arrives_after_its_delay()
    {
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(1));
        var started = DateTime.UtcNow;
        queue.AddAfter("shop/a", TimeSpan.FromMilliseconds(300));

        var key = await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout);

        Assert.Equal("shop/a", key);
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(280));
    }

    [Fact]
    public async Task A_key_the_server_pushed_back_waits_its_Retry_After_even_when_events_add_it_meanwhile()
    {
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(1));
        var started = DateTime.UtcNow;

        var delay = queue.AddRateLimited("shop/a", atLeast: TimeSpan.FromMilliseconds(600));
        queue.Add("shop/a"); // a watch event during the pushback
        queue.Add("shop/b");

        Assert.Equal(600, delay.TotalMilliseconds);
        Assert.Equal("shop/b", await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
        Assert.Equal("shop/a", await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(580), $"taken after {(DateTime.UtcNow - started).TotalMilliseconds} ms");
    }

    [Fact]
    public async Task A_key_pushed_back_while_an_event_marked_it_during_processing_still_waits_its_Retry_After()
    {
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(1));
        queue.Add("shop/a");
        var key = await queue.TakeAsync(CancellationToken.None);
        var started = DateTime.UtcNow;

        queue.Add(key); // a watch event while the reconcile runs
        queue.AddRateLimited(key, atLeast: TimeSpan.FromMilliseconds(600)); // the reconcile got a 429
        queue.Done(key);

        Assert.Equal("shop/a", await queue.TakeAsync(CancellationToken.None).AsTask().WaitAsync(Timeout));
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(580), $"taken after {(DateTime.UtcNow - started).TotalMilliseconds} ms");
    }
}
