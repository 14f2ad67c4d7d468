using System.Diagnostics.Metrics;
using System.Net;
using k8s;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Health;
using KubeCapture.Operator.Metrics;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Logging;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Tests.Events;

/// <summary>Events against the API emulator's injected 429s, 5xx and refusals.</summary>
public sealed class CaptureEventsTests : IAsyncLifetime
{
    private const string EventsPath = "/api/v1/namespaces/shop/events";
    private KubernetesApiEmulator emulator = null!;
    private IKubernetes client = null!;
    private readonly RecordingLogger<CaptureEvents> logger = new();

    public async Task InitializeAsync()
    {
        emulator = await KubernetesApiEmulator.StartAsync();
        emulator.AddNamespace("shop");
        client = emulator.CreateClient();
    }

    public async Task DisposeAsync()
    {
        client.Dispose();
        await emulator.DisposeAsync();
    }

    [Fact]
    public async Task An_event_throttled_with_429_returns_at_once_and_is_recorded_once_after_its_Retry_After_with_its_original_time()
    {
        var events = Recorder();
        emulator.Faults.FailNext(2, HttpStatusCode.TooManyRequests, "POST", EventsPath, TimeSpan.FromSeconds(1));

        var happened = DateTime.UtcNow;
        await events.OnPodAsync(Pod("api-1"), "Normal", "CaptureStarted", "capture started", CancellationToken.None);
        var returnedAt = DateTimeOffset.UtcNow;
        Assert.Equal(1, events.Backlog);
        await events.Drained.WaitAsync(TimeSpan.FromSeconds(20));

        // At once: the caller was back before the retry the server asked for went out (not a wall-clock figure).
        Assert.True(returnedAt < Posts()[1], $"the caller returned at {returnedAt:O}, after the retry at {Posts()[1]:O}");
        var recorded = Assert.Single((await client.CoreV1.ListNamespacedEventAsync("shop")).Items);
        Assert.Equal("CaptureStarted", recorded.Reason);
        Assert.True(Math.Abs((recorded.FirstTimestamp!.Value - happened).TotalMilliseconds) < 500, $"recorded as of {recorded.FirstTimestamp:O}, happened {happened:O}");
        var posts = Posts();
        Assert.Equal(3, posts.Count);
        Assert.True(posts[1] - posts[0] >= TimeSpan.FromMilliseconds(950), $"retried after {(posts[1] - posts[0]).TotalMilliseconds} ms");
        Assert.True(posts[2] - posts[1] >= TimeSpan.FromMilliseconds(950), $"retried after {(posts[2] - posts[1]).TotalMilliseconds} ms");
        Assert.Equal(0, events.Dropped);
        Assert.Contains(logger.Lines, l => l.Contains("CaptureStarted", StringComparison.Ordinal) && l.Contains("deferred", StringComparison.Ordinal) && l.Contains("429", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Events_recorded_while_the_server_asks_to_wait_send_no_request_until_then_and_arrive_in_order()
    {
        var events = Recorder();
        emulator.Faults.FailNext(1, HttpStatusCode.TooManyRequests, "POST", EventsPath, TimeSpan.FromSeconds(2));

        for (var i = 0; i < 4; i++)
        {
            await events.OnPodAsync(Pod("api-1"), "Normal", $"Step{i}", $"step {i}", CancellationToken.None);
        }

        var recordedAt = DateTimeOffset.UtcNow;
        Assert.Equal(4, events.Backlog);
        Assert.Single(Posts()); // only the first was tried: the others joined the backlog without a request
        await events.Drained.WaitAsync(TimeSpan.FromSeconds(20));

        var posts = Posts();
        Assert.Equal(5, posts.Count);
        Assert.True(recordedAt < posts[1], $"recording the four events ended at {recordedAt:O}, after the wait the server asked for ({posts[1]:O})");
        Assert.True(posts[1] - posts[0] >= TimeSpan.FromMilliseconds(1950), $"the backlog was sent {(posts[1] - posts[0]).TotalMilliseconds} ms after the 429");
        var recorded = (await client.CoreV1.ListNamespacedEventAsync("shop")).Items.OrderBy(e => int.Parse(e.Metadata.ResourceVersion, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(["Step0", "Step1", "Step2", "Step3"], recorded.Select(e => e.Reason));
    }

    [Fact]
    public async Task A_server_error_without_Retry_After_is_retried_with_backoff()
    {
        var events = Recorder();
        emulator.Faults.FailNext(2, HttpStatusCode.ServiceUnavailable, "POST", EventsPath);

        await events.OnPodAsync(Pod("api-1"), "Normal", "CaptureStarted", "capture started", CancellationToken.None);
        await events.Drained.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Single((await client.CoreV1.ListNamespacedEventAsync("shop")).Items);
        var posts = Posts();
        Assert.Equal(3, posts.Count);
        Assert.True(posts[1] - posts[0] >= TimeSpan.FromMilliseconds(950), $"first retry after {(posts[1] - posts[0]).TotalMilliseconds} ms (backoff 1 s)");
        Assert.True(posts[2] - posts[1] >= TimeSpan.FromMilliseconds(1950), $"second retry after {(posts[2] - posts[1]).TotalMilliseconds} ms (backoff 2 s)");
    }

    [Fact]
    public async Task An_event_the_server_refuses_is_dropped_at_once_counted_with_reason_refused_and_logged()
    {
        var events = Recorder();
        using var metric = new DroppedEvents();
        emulator.Faults.FailNext(1, HttpStatusCode.Forbidden, "POST", EventsPath);

        await events.OnPodAsync(Pod("api-1"), "Warning", "UploadRefused", "forged upload", CancellationToken.None);

        Assert.Equal(0, events.Backlog);
        Assert.Equal(1, events.Dropped);
        Assert.True(metric.Count("refused") >= 1);
        Assert.Single(Posts());
        Assert.Empty((await client.CoreV1.ListNamespacedEventAsync("shop")).Items);
        Assert.Contains(logger.Lines, l => l.StartsWith("Warning", StringComparison.Ordinal) && l.Contains("UploadRefused", StringComparison.Ordinal)
            && l.Contains("dropped (refused)", StringComparison.Ordinal) && l.Contains("403", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_full_backlog_drops_new_events_with_a_count_and_a_log_line_and_sends_the_ones_it_kept()
    {
        var events = Recorder(backlogLimit: 2);
        using var metric = new DroppedEvents();
        emulator.Faults.FailNext(1, HttpStatusCode.TooManyRequests, "POST", EventsPath, TimeSpan.FromSeconds(1));

        for (var i = 0; i < 4; i++)
        {
            await events.OnPodAsync(Pod("api-1"), "Normal", $"Step{i}", $"step {i}", CancellationToken.None);
        }

        Assert.Equal(2, events.Backlog);
        Assert.Equal(2, events.Dropped);
        Assert.True(metric.Count("backlog_full") >= 2);
        Assert.Equal(2, logger.Lines.Count(l => l.Contains("dropped (backlog_full)", StringComparison.Ordinal)));
        await events.Drained.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(["Step0", "Step1"], (await client.CoreV1.ListNamespacedEventAsync("shop")).Items.Select(e => e.Reason).Order());
    }

    [Fact]
    public async Task An_event_still_throttled_after_every_try_is_dropped_as_retries_exhausted()
    {
        var events = Recorder();
        using var metric = new DroppedEvents();
        // Retry-After: 0 makes the tries follow each other at once.
        emulator.Faults.FailNext(CaptureEvents.MaxAttempts, HttpStatusCode.TooManyRequests, "POST", EventsPath, TimeSpan.Zero);

        await events.OnPodAsync(Pod("api-1"), "Normal", "CaptureStarted", "capture started", CancellationToken.None);
        await events.Drained.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(CaptureEvents.MaxAttempts, Posts().Count);
        Assert.Equal(1, events.Dropped);
        Assert.True(metric.Count("retries_exhausted") >= 1);
        Assert.Contains(logger.Lines, l => l.Contains("dropped (retries_exhausted)", StringComparison.Ordinal) && l.Contains($"{CaptureEvents.MaxAttempts} tries", StringComparison.Ordinal));
        Assert.Empty((await client.CoreV1.ListNamespacedEventAsync("shop")).Items);
    }

    [Fact]
    public async Task A_retry_of_an_event_whose_answer_was_lost_is_not_a_second_event()
    {
        var events = Recorder();
        // The server records the first POST, but the client gets a 504 instead of the answer.
        emulator.Faults.LoseAnswerNext(1, "POST", EventsPath);

        await events.OnPodAsync(Pod("api-1"), "Normal", "CaptureStarted", "capture started", CancellationToken.None);
        Assert.Equal(1, events.Backlog);
        Assert.Single((await client.CoreV1.ListNamespacedEventAsync("shop")).Items);
        await events.Drained.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(2, Posts().Count); // the retry was a 409: the Event exists
        Assert.Single((await client.CoreV1.ListNamespacedEventAsync("shop")).Items);
        Assert.Equal(0, events.Dropped);
    }

    [Fact]
    public async Task The_audit_log_records_its_events_through_the_processs_one_recorder_so_a_Retry_After_it_met_holds_back_the_other_events_too()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddSingleton(client);
        services.AddKubernetesClient().AddAuditTrail();
        await using var provider = services.BuildServiceProvider();
        var recorder = provider.GetRequiredService<CaptureEvents>();
        var audit = provider.GetRequiredService<AuditTrail>();
        emulator.Faults.FailNext(1, HttpStatusCode.TooManyRequests, "POST", EventsPath, TimeSpan.FromSeconds(1));

        var capture = new PacketCapture { Metadata = new V1ObjectMeta { Name = "checkout", NamespaceProperty = "shop", Uid = Guid.NewGuid().ToString() }, Spec = new() };
        await audit.RecordAsync(capture, new Transition(AuditEvent.Stored, "Normal", "Stored", "stored"), CancellationToken.None);
        Assert.Equal(1, recorder.Backlog); // the audit log's Event waits in the process's recorder
        await recorder.OnPodAsync(Pod("api-1"), "Normal", "CaptureStarted", "capture started", CancellationToken.None);
        Assert.Equal(2, recorder.Backlog); // and the next Event, from anyone, waits behind it without a request
        Assert.Single(Posts());
        await recorder.Drained.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(["CaptureStarted", "Stored"], (await client.CoreV1.ListNamespacedEventAsync("shop")).Items.Select(e => e.Reason).Order());
    }

    private CaptureEvents Recorder(int backlogLimit = CaptureEvents.DefaultBacklogLimit) => new(client, logger, TimeProvider.System, backlogLimit);

    private List<DateTimeOffset> Posts() =>
        [.. emulator.TimedRequests.Where(r => r.Request.StartsWith("POST " + EventsPath, StringComparison.Ordinal)).Select(r => r.At)];

    private static V1Pod Pod(string name) => new() { Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = "shop", Uid = Guid.NewGuid().ToString() } };

    /// <summary>kubecapture.events.dropped as this process counts it, by reason (other tests may add to it: at least).</summary>
    private sealed class DroppedEvents : IDisposable
    {
        private readonly MeterListener listener = new();
        private readonly Dictionary<string, long> counts = new(StringComparer.Ordinal);

        public DroppedEvents()
        {
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == OperatorMetrics.MeterName && instrument.Name == "kubecapture.events.dropped")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == "reason" && tag.Value is string reason)
                    {
                        lock (counts)
                        {
                            counts[reason] = counts.GetValueOrDefault(reason) + value;
                        }
                    }
                }
            });
            listener.Start();
        }

        public long Count(string reason)
        {
            lock (counts)
            {
                return counts.GetValueOrDefault(reason);
            }
        }

        public void Dispose() => listener.Dispose();
    }
}
