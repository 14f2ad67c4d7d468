using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Metrics;
using KubeCapture.Operator.Queue;
using KubeCapture.Operator.Tracing;
using KubeCapture.Operator.Watcher;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// The running controller while this replica leads: one list+watch each for PacketCaptures, pods and
/// namespaces (the caches every read is served from) feed a work queue; workers reconcile one key
/// at a time each, once the pod and namespace caches hold their first list. Pod changes and ingest
/// progress wake the capture they belong to; every active capture is looked at again, from the
/// caches, at least every resync period (no API read). A 429 or 5xx answer puts the capture back
/// into the queue after the server's Retry-After or the capture's backoff, whichever is longer.
/// </summary>
public sealed class CaptureOperator
{
    private readonly IKubernetes kubernetes;
    private readonly IIngestStatus ingest;
    private readonly IAgentAddresses addresses;
    private readonly ICustodyWitness custody;
    private readonly PacketCaptureController controller;
    private readonly ReconcilerOptions options;
    private readonly ILogger logger;
    private readonly TimeProvider time;
    private volatile bool deliveryResolved;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> keysByUid = new(StringComparer.Ordinal);

    public CaptureOperator(IKubernetes kubernetes, IIngestStatus ingest, IAgentAddresses addresses, ICustodyWitness custody, CapturePolicy policy, ReconcilerOptions options,
        ClusterCache cluster, CaptureCache captures, PacketCaptureController controller, ILogger<CaptureOperator> logger, TimeProvider time)
    {
        policy.Validate();
        this.kubernetes = kubernetes;
        this.ingest = ingest;
        this.addresses = addresses;
        this.custody = custody;
        this.options = options;
        this.controller = controller;
        this.logger = logger;
        this.time = time;
        Cluster = cluster;
        Captures = captures.Captures;
    }

    public ResourceWatcher<PacketCapture> Captures { get; }

    /// <summary>The pod and namespace caches.</summary>
    public ClusterCache Cluster { get; }

    public ResourceWatcher<V1Pod> Pods => Cluster.Pods;

    /// <summary>Reconcile durations, for the benchmark.</summary>
    public ReconcileTimings Timings { get; } = new();

    /// <summary>Secret or PodSpec once resolved (<see cref="ResolveTokenDeliveryAsync"/>).</summary>
    public TokenDelivery TokenDelivery => controller.TokenDelivery;

    /// <summary>
    /// Resolves <see cref="ReconcilerOptions.TokenDelivery"/> once: Auto asks kube-apiserver's /version
    /// (retrying until it answers: a version it could not read is not a reason to guess) and logs a
    /// warning naming the version and the Kubernetes issue when the token goes in the pod spec.
    /// </summary>
    public async Task ResolveTokenDeliveryAsync(CancellationToken cancellationToken)
    {
        if (deliveryResolved)
        {
            return;
        }

        TokenDeliveryChoice choice;
        if (options.TokenDelivery != TokenDelivery.Auto)
        {
            choice = TokenDeliveryChoice.Configured(options.TokenDelivery);
        }
        else
        {
            string? gitVersion = null;
            while (gitVersion is null)
            {
                try
                {
                    gitVersion = (await kubernetes.Version.GetCodeAsync(cancellationToken)).GitVersion ?? "";
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning("Ingest:TokenDelivery is Auto: could not read kube-apiserver's version ({Error}); retrying", e.Message);
                    await Task.Delay(TimeSpan.FromSeconds(2), time, cancellationToken);
                }
            }

            choice = TokenDeliveryChoice.ForServer(gitVersion);
            logger.LogInformation("kube-apiserver is {Version}: upload tokens reach capture containers by {Delivery} (Ingest:TokenDelivery Auto)", gitVersion, choice.Delivery);
        }

        if (choice.Warning is { } warning)
        {
            logger.LogWarning("{Warning}", warning);
        }

        controller.TokenDelivery = choice.Delivery;
        deliveryResolved = true;
    }

    /// <summary>Runs until cancelled (leadership lost or shutdown); then workers finish their current key.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await ResolveTokenDeliveryAsync(cancellationToken);
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(30), time);
        void OnCapture(ResourceChange<PacketCapture> change)
        {
            if (change.Type != WatchEventType.Deleted)
            {
                var key = ResourceWatcher<PacketCapture>.KeyOf(change.Object);
                keysByUid[change.Object.Metadata.Uid] = key;
                queue.Add(key, ahead: change.Type == WatchEventType.Modified); // a change to a capture under way (a stop) before new ones
            }
            else
            {
                controller.Deleted(change.Object);
                keysByUid.TryRemove(change.Object.Metadata.Uid, out _);
                addresses.Forget(change.Object.Metadata.Uid);
                custody.Forget(change.Object.Metadata.Uid);
            }
        }

        // The next step of a capture under way (its container reported, its upload progressing, a refused
        // upload) is served ahead of new captures: a burst of creates does not hold up the ones about to run.
        void OnPod(ResourceChange<V1Pod> change) => WakeCapturesOf(change.Object, queue);
        void OnUpload(TargetUpload upload) => queue.Add($"{upload.Target.Namespace}/{upload.Target.CaptureName}", ahead: true);
        // Unsubscribed when this run ends: after a lost and regained Lease, the next run has its own queue.
        Captures.Changed += OnCapture;
        Pods.Changed += OnPod;
        OperatorMetrics.ObserveReconciler(() => Captures.Snapshot(), () => queue.Count);
        ingest.Changed += OnUpload;
        void OnRefused(CaptureIdentity target) => queue.Add($"{target.Namespace}/{target.CaptureName}", ahead: true);
        addresses.Refused += OnRefused;
        try
        {
            var watchers = new[] { Captures.RunAsync(cancellationToken), Cluster.RunAsync(cancellationToken) };
            var workers = Enumerable.Range(0, Math.Max(1, options.Workers)).Select(_ => WorkAsync(queue, cancellationToken)).ToArray();
            await Task.WhenAll(watchers.Concat(workers));
        }
        finally
        {
            OperatorMetrics.ObserveReconciler(null, null);
            var (count, p50, p99) = Timings.Percentiles();
            logger.LogInformation("reconciles: {Count}, p50 {P50:F1} ms, p99 {P99:F1} ms", count, p50, p99);
            ingest.Changed -= OnUpload;
            addresses.Refused -= OnRefused;
            Pods.Changed -= OnPod;
            Captures.Changed -= OnCapture;
        }
    }

    private void WakeCapturesOf(V1Pod pod, WorkQueue<string> queue)
    {
        foreach (var container in pod.Status?.EphemeralContainerStatuses ?? [])
        {
            if (EphemeralContainerSpec.CaptureUidOf(container.Name) is { } uid && keysByUid.TryGetValue(uid, out var key))
            {
                queue.Add(key, ahead: true);
            }
        }
    }

    private async Task WorkAsync(WorkQueue<string> queue, CancellationToken cancellationToken)
    {
        try
        {
            // Reads come from the caches: none before they hold their first list.
            await Cluster.Synced.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            string key;
            try
            {
                key = await queue.TakeAsync(cancellationToken);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }

            var started = time.GetTimestamp();
            var outcome = "error";
            System.Diagnostics.Activity? span = null;
            try
            {
                var capture = Captures.Get(key);
                if (capture is null)
                {
                    queue.Forget(key);
                    continue;
                }

                span = CaptureTracing.StartReconcile(key);
                var result = await controller.ReconcileAsync(capture, Captures.Snapshot(), cancellationToken);
                outcome = "ok";
                queue.Forget(key);
                if (result.RequeueAfter is { } after)
                {
                    queue.AddAfter(key, after);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                span?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, e.Message);
                var delay = queue.AddRateLimited(key, ServerPushback.RetryAfter(e));
                OperatorMetrics.QueueRetries.Add(1);
                var conflict = e is k8s.Autorest.HttpOperationException { Response.StatusCode: System.Net.HttpStatusCode.Conflict };
                logger.Log(conflict ? LogLevel.Debug : LogLevel.Warning, "reconcile {Key} failed ({Error}); retrying in {Delay} ms", key, e.Message, delay.TotalMilliseconds);
            }
            finally
            {
                span?.Dispose();
                var elapsed = time.GetElapsedTime(started);
                Timings.Add(elapsed);
                OperatorMetrics.ReconcileDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome));
                queue.Done(key);
            }
        }
    }
}

/// <summary>Reconcile durations in milliseconds, the most recent <see cref="Capacity"/> kept for percentiles (a long-running operator must not grow).</summary>
public sealed class ReconcileTimings
{
    public const int Capacity = 16384;
    private readonly Lock gate = new();
    private readonly List<double> milliseconds = [];
    private int next;

    public void Add(TimeSpan elapsed)
    {
        lock (gate)
        {
            if (milliseconds.Count < Capacity)
            {
                milliseconds.Add(elapsed.TotalMilliseconds);
            }
            else
            {
                milliseconds[next] = elapsed.TotalMilliseconds;
                next = (next + 1) % Capacity;
            }
        }
    }

    public (int Count, double P50, double P99) Percentiles()
    {
        lock (gate)
        {
            if (milliseconds.Count == 0)
            {
                return (0, 0, 0);
            }

            var sorted = milliseconds.Order().ToList();
            return (sorted.Count, sorted[(int)(sorted.Count * 0.50)], sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * 0.99))]);
        }
    }
}
