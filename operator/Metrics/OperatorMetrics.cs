using System.Diagnostics;
using System.Diagnostics.Metrics;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Metrics;

/// <summary>
/// The operator's metrics (System.Diagnostics.Metrics, meter <c>KubeCapture.Operator</c>), served at
/// <c>/metrics</c> in Prometheus text format by OpenTelemetry's exporter. The Prometheus names follow
/// from instrument name and unit (dots become underscores; unit <c>s</c> adds <c>_seconds</c>, <c>By</c>
/// <c>_bytes</c>; counters end in <c>_total</c>). Labels are bounded sets: phase, failure reason
/// (the documented condition reasons), outcome, storage operation. docs/operations.md (Metrics) lists them.
/// </summary>
public static class OperatorMetrics
{
    public const string MeterName = "KubeCapture.Operator";

    private static readonly Meter Meter = new(MeterName);

    private static Func<IReadOnlyCollection<PacketCapture>>? captures;
    private static Func<int>? queueDepth;
    private static long certificateExpiresAt; // Unix seconds; 0 until a certificate is loaded

    /// <summary><c>kubecapture_reconcile_duration_seconds</c>{outcome=ok|error}.</summary>
    public static readonly Histogram<double> ReconcileDuration = Meter.CreateHistogram(
        "kubecapture.reconcile.duration", "s", "Time one reconcile of a PacketCapture took.", advice: new InstrumentAdvice<double>
        {
            HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        });

    /// <summary><c>kubecapture_workqueue_retries_total</c>: reconciles retried after an error, with backoff.</summary>
    public static readonly Counter<long> QueueRetries = Meter.CreateCounter<long>("kubecapture.workqueue.retries", "{retry}", "Reconciles retried after an error.");

    /// <summary><c>kubecapture_events_deferred_total</c>: Events put off for a retry after the server pushed back (or while it asked to wait).</summary>
    public static readonly Counter<long> EventsDeferred = Meter.CreateCounter<long>("kubecapture.events.deferred", "{event}", "Events put off for a retry after the API server pushed back.");

    /// <summary><c>kubecapture_events_dropped_total</c>{reason=refused|backlog_full|retries_exhausted}: Events given up on.</summary>
    public static readonly Counter<long> EventsDropped = Meter.CreateCounter<long>("kubecapture.events.dropped", "{event}", "Events given up on, by reason.");

    /// <summary><c>kubecapture_ingest_streams_active</c>: agents streaming to this ingest now.</summary>
    public static readonly UpDownCounter<long> ActiveStreams = Meter.CreateUpDownCounter<long>("kubecapture.ingest.streams.active", "{stream}", "Agent upload streams open now.");

    /// <summary><c>kubecapture_ingest_bytes_total</c>: pcap bytes received from agents.</summary>
    public static readonly Counter<long> IngestedBytes = Meter.CreateCounter<long>("kubecapture.ingest", "By", "Pcap bytes received from agents.");

    /// <summary><c>kubecapture_ingest_packets_total</c>: packets in the pcaps stored (as the agents' manifests count them).</summary>
    public static readonly Counter<long> IngestedPackets = Meter.CreateCounter<long>("kubecapture.ingest.packets", "{packet}", "Packets in the stored pcaps.");

    /// <summary><c>kubecapture_agent_kernel_drops_total</c>: packets the kernel dropped before the agents read them (missing from the evidence).</summary>
    public static readonly Counter<long> KernelDrops = Meter.CreateCounter<long>("kubecapture.agent.kernel_drops", "{packet}", "Packets dropped by the kernel during stored captures.");

    /// <summary><c>kubecapture_ingest_uploads_total</c>{outcome=stored|failed}.</summary>
    public static readonly Counter<long> Uploads = Meter.CreateCounter<long>("kubecapture.ingest.uploads", "{upload}", "Uploads that ended, by outcome.");

    /// <summary><c>kubecapture_follow_cutoffs_total</c>: live followers cut off for falling behind.</summary>
    public static readonly Counter<long> FollowCutoffs = Meter.CreateCounter<long>("kubecapture.follow.cutoffs", "{follower}", "Live followers cut off for falling behind.");

    /// <summary><c>kubecapture_ingest_streams_ended_total</c>{code}: agent streams the ingest ended, by gRPC status (OK, Unauthenticated, PermissionDenied, ...).</summary>
    public static readonly Counter<long> IngestStreamsEnded = Meter.CreateCounter<long>("kubecapture.ingest.streams.ended", "{stream}", "Agent upload streams that ended, by gRPC status code.");

    /// <summary><c>kubecapture_alert_receiver_notifications_total</c>{code}: Alertmanager notifications the alert receiver answered, by HTTP status (401: a wrong or missing token).</summary>
    public static readonly Counter<long> AlertNotifications = Meter.CreateCounter<long>("kubecapture.alert_receiver.notifications", "{notification}", "Alertmanager notifications the alert receiver answered, by HTTP status code.");

    /// <summary><c>kubecapture_alert_receiver_alerts_total</c>{outcome=asked|already_taken|resolved|not_named|no_recorder|ended|at_max_snapshots|not_reached}: alerts received, by what became of them.</summary>
    public static readonly Counter<long> AlertOutcomes = Meter.CreateCounter<long>("kubecapture.alert_receiver.alerts", "{alert}", "Alerts the alert receiver was sent, by what became of them.");

    /// <summary><c>kubecapture_captures_ended_total</c>{phase=Succeeded|Failed}: captures the reconciler brought to an end.</summary>
    public static readonly Counter<long> CapturesEnded = Meter.CreateCounter<long>("kubecapture.captures.ended", "{capture}", "PacketCaptures that ended, by final phase.");

    /// <summary><c>kubecapture_storage_request_duration_seconds</c>{operation, outcome=ok|refused|error}.</summary>
    public static readonly Histogram<double> StorageRequestDuration = Meter.CreateHistogram(
        "kubecapture.storage.request.duration", "s", "Object storage request latency.", advice: new InstrumentAdvice<double>
        {
            HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        });

    static OperatorMetrics()
    {
        Meter.CreateObservableGauge("kubecapture.captures", ObserveCaptures, "{capture}", "PacketCaptures by phase (and failure reason for Failed).");
        Meter.CreateObservableGauge("kubecapture.workqueue.depth", () => queueDepth?.Invoke() ?? 0, "{item}", "PacketCaptures waiting to be reconciled.");
        Meter.CreateObservableGauge("kubecapture.follow.held", () => followHeld?.Invoke() ?? 0, "By", "Pcap bytes held for live followers that have not read them yet.");
        Meter.CreateObservableGauge("kubecapture.leader", () => captures is null ? 0 : 1, "{replica}", "1 while this replica holds the Lease and reconciles, else 0.");
        Meter.CreateObservableGauge("kubecapture.certificate.expiration_timestamp", ObserveCertificate, "s", "When the serving certificate (webhooks, extension API, TLS ingest) expires, in Unix seconds.");
    }

    private static Func<long>? followHeld;

    /// <summary>Where <c>kubecapture_follow_held_bytes</c> is read from (the live feed).</summary>
    public static void ObserveFollowers(Func<long> held) => followHeld = held;

    /// <summary>
    /// The label sets the alerts watch, recorded as 0 once the exporter listens (by <see cref="MetricsRegistration"/>):
    /// a counter series that first appears at 1 would show Prometheus no increase, and the first failure no alert.
    /// </summary>
    public static void RecordBaseline()
    {
        foreach (var outcome in new[] { "stored", "failed" })
        {
            Uploads.Add(0, new KeyValuePair<string, object?>("outcome", outcome));
        }

        foreach (var reason in new[] { "refused", "backlog_full", "retries_exhausted" })
        {
            EventsDropped.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }

        foreach (var code in new[] { "OK", "Unauthenticated", "PermissionDenied" })
        {
            IngestStreamsEnded.Add(0, new KeyValuePair<string, object?>("code", code));
        }

        foreach (var code in new[] { "200", "401" })
        {
            AlertNotifications.Add(0, new KeyValuePair<string, object?>("code", code));
        }

        foreach (var phase in new[] { CapturePhase.Succeeded, CapturePhase.Failed })
        {
            CapturesEnded.Add(0, new KeyValuePair<string, object?>("phase", phase));
        }
    }

    /// <summary>The serving certificate now in use (every time one is loaded or renewed).</summary>
    public static void ObserveServingCertificate(DateTimeOffset notAfter) => Interlocked.Exchange(ref certificateExpiresAt, notAfter.ToUnixTimeSeconds());

    private static IEnumerable<Measurement<long>> ObserveCertificate() =>
        Interlocked.Read(ref certificateExpiresAt) is var expiresAt and not 0 ? [new Measurement<long>(expiresAt)] : [];

    /// <summary>Where the captures gauge counts from (the reconciler's cache), and the work queue's depth; null while not leading.</summary>
    public static void ObserveReconciler(Func<IReadOnlyCollection<PacketCapture>>? cache, Func<int>? depth)
    {
        captures = cache;
        queueDepth = depth;
    }

    /// <summary>Times one storage request: dispose the result when it ends; <see cref="StorageTiming.Outcome"/> says how.</summary>
    public static StorageTiming TimeStorage(string operation) => new(operation, Stopwatch.GetTimestamp());

    private static IEnumerable<Measurement<int>> ObserveCaptures()
    {
        var all = captures?.Invoke();
        if (all is null)
        {
            return [];
        }

        return all
            .GroupBy(c => (Phase: c.Status?.Phase is { Length: > 0 } phase ? phase : CapturePhase.Pending, Reason: c.Status?.Phase == CapturePhase.Failed ? FailureReason(c) : ""))
            .Select(g => g.Key.Reason.Length > 0
                ? new Measurement<int>(g.Count(), new KeyValuePair<string, object?>("phase", g.Key.Phase), new KeyValuePair<string, object?>("reason", g.Key.Reason))
                : new Measurement<int>(g.Count(), new KeyValuePair<string, object?>("phase", g.Key.Phase)));
    }

    private static string FailureReason(PacketCapture capture) =>
        capture.Status?.Conditions?.FirstOrDefault(c => c.Status == "False" && c.Reason is { Length: > 0 })?.Reason ?? "Unknown";

    /// <summary>One storage request being timed, and traced (a span <c>storage OPERATION</c> while tracing is on).</summary>
    public sealed class StorageTiming(string operation, long started) : IDisposable
    {
        private readonly Activity? span = Tracing.CaptureTracing.StartStorage(operation);

        /// <summary>ok (2xx), refused (4xx), error (5xx, timeouts, unreachable): set before dispose; error if never set.</summary>
        public string Outcome { get; set; } = "error";

        public void Dispose()
        {
            StorageRequestDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds,
                new KeyValuePair<string, object?>("operation", operation), new KeyValuePair<string, object?>("outcome", Outcome));
            if (span is not null)
            {
                span.SetTag("kubecapture.storage.outcome", Outcome);
                if (Outcome != "ok")
                {
                    span.SetStatus(ActivityStatusCode.Error, Outcome);
                }

                span.Dispose();
            }
        }
    }
}
