using System.Text.Json;
using k8s;
using k8s.Models;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Queue;
using KubeCapture.Operator.Resources;
using KubeCapture.Operator.Watcher;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// The running controller while this replica leads: watchers for PacketCaptures and pods feed a
/// work queue; workers reconcile one key at a time each. Pod changes and ingest progress wake the
/// capture they belong to; every active capture is looked at again at least every resync period.
/// </summary>
public sealed class CaptureOperator
{
    private readonly IKubernetes kubernetes;
    private readonly IIngestStatus ingest;
    private readonly IAgentAddresses addresses;
    private readonly ICustodyWitness? custody;
    private readonly PacketCaptureController controller;
    private readonly ReconcilerOptions options;
    private readonly ILogger logger;
    private readonly TimeProvider time;

    public CaptureOperator(IKubernetes kubernetes, IIngestStatus ingest, ICaptureTokenIssuer tokens, IAgentAddresses addresses, CapturePolicy policy, ReconcilerOptions options,
        ILoggerFactory loggers, TimeProvider time, ICustodyWitness? custody = null, AuditTrail? audit = null,
        KubeCapture.Operator.Storage.EvidenceRetention? retention = null)
    {
        this.custody = custody;
        this.addresses = addresses;
        policy.Validate();
        this.kubernetes = kubernetes;
        this.ingest = ingest;
        this.options = options;
        this.time = time;
        logger = loggers.CreateLogger<CaptureOperator>();
        controller = new PacketCaptureController(kubernetes, ingest, tokens, addresses, policy, options, new TargetResolver(kubernetes, policy),
            new PodSecurityPreflight(kubernetes), new CaptureAdmission(policy), new CaptureEvents(kubernetes, loggers.CreateLogger<CaptureEvents>(), time),
            time, loggers.CreateLogger<PacketCaptureController>(), written => Captures!.Offer(written), custody, audit, retention);
        Captures = new ResourceWatcher<PacketCapture>("PacketCapture", ListCapturesAsync, WatchCapturesAsync, logger, time);
        Pods = new ResourceWatcher<V1Pod>("Pod", ListPodsAsync, WatchPodsAsync, logger, time);
    }

    public ResourceWatcher<PacketCapture> Captures { get; }

    public ResourceWatcher<V1Pod> Pods { get; }

    /// <summary>Reconcile durations, for the benchmark.</summary>
    public ReconcileTimings Timings { get; } = new();

    /// <summary>Runs until cancelled (leadership lost or shutdown); then workers finish their current key.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var queue = new WorkQueue<string>(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(30), time);
        void OnCapture(ResourceChange<PacketCapture> change)
        {
            if (change.Type != WatchEventType.Deleted)
            {
                queue.Add(ResourceWatcher<PacketCapture>.KeyOf(change.Object));
            }
            else
            {
                addresses.Forget(change.Object.Metadata.Uid);
                custody?.Forget(change.Object.Metadata.Uid);
            }
        }

        void OnPod(ResourceChange<V1Pod> change) => WakeCapturesOf(change.Object, queue);
        void OnUpload(TargetUpload upload) => queue.Add($"{upload.Target.Namespace}/{upload.Target.CaptureName}");
        // Unsubscribed when this run ends: after a lost and regained Lease, the next run has its own queue.
        Captures.Changed += OnCapture;
        Pods.Changed += OnPod;
        ingest.Changed += OnUpload;
        void OnRefused(CaptureIdentity target) => queue.Add($"{target.Namespace}/{target.CaptureName}");
        addresses.Refused += OnRefused;
        try
        {
            var watchers = new[] { Captures.RunAsync(cancellationToken), Pods.RunAsync(cancellationToken) };
            var workers = Enumerable.Range(0, Math.Max(1, options.Workers)).Select(_ => WorkAsync(queue, cancellationToken)).ToArray();
            await Task.WhenAll(watchers.Concat(workers));
        }
        finally
        {
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
            if (EphemeralContainerSpec.CaptureUidOf(container.Name) is { } uid)
            {
                var capture = Captures.Snapshot().FirstOrDefault(c => c.Metadata.Uid == uid);
                if (capture is not null)
                {
                    queue.Add(capture.Key);
                }
            }
        }
    }

    private async Task WorkAsync(WorkQueue<string> queue, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            string key;
            try
            {
                key = await queue.TakeAsync(cancellationToken);
            }
            catch (Exception e) when (e is OperationCanceledException or System.Threading.Channels.ChannelClosedException)
            {
                return;
            }

            var started = time.GetTimestamp();
            try
            {
                var capture = Captures.Get(key);
                if (capture is null)
                {
                    queue.Forget(key);
                    continue;
                }

                var result = await controller.ReconcileAsync(capture, Captures.Snapshot(), cancellationToken);
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
                var delay = queue.AddRateLimited(key);
                var conflict = e is k8s.Autorest.HttpOperationException { Response.StatusCode: System.Net.HttpStatusCode.Conflict };
                logger.Log(conflict ? LogLevel.Debug : LogLevel.Warning, "reconcile {Key} failed ({Error}); retrying in {Delay} ms", key, e.Message, delay.TotalMilliseconds);
            }
            finally
            {
                Timings.Add(time.GetElapsedTime(started));
                queue.Done(key);
            }
        }
    }

    private async Task<(IReadOnlyList<PacketCapture>, string)> ListCapturesAsync(CancellationToken cancellationToken)
    {
        var list = await kubernetes.CustomObjects.ListClusterCustomObjectAsync<PacketCaptureList>(
            PacketCapture.Group, PacketCapture.Version, PacketCapture.Plural, cancellationToken: cancellationToken);
        return ([.. list.Items], list.Metadata.ResourceVersion);
    }

    private async IAsyncEnumerable<(WatchEventType, PacketCapture)> WatchCapturesAsync(string resourceVersion, Action<Exception> onError,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var events = kubernetes.CustomObjects.WatchListClusterCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, PacketCapture.Plural,
            allowWatchBookmarks: true, resourceVersion: resourceVersion, timeoutSeconds: 300, onError: onError, cancellationToken: cancellationToken);
        await foreach (var (type, raw) in events.WithCancellation(cancellationToken))
        {
            var json = raw is JsonElement element ? element.GetRawText() : KubernetesJson.Serialize(raw);
            yield return (type, KubernetesJson.Deserialize<PacketCapture>(json));
        }
    }

    private async Task<(IReadOnlyList<V1Pod>, string)> ListPodsAsync(CancellationToken cancellationToken)
    {
        var list = await kubernetes.CoreV1.ListPodForAllNamespacesAsync(cancellationToken: cancellationToken);
        return ([.. list.Items], list.Metadata.ResourceVersion);
    }

    private IAsyncEnumerable<(WatchEventType, V1Pod)> WatchPodsAsync(string resourceVersion, Action<Exception> onError, CancellationToken cancellationToken) =>
        kubernetes.CoreV1.WatchListPodForAllNamespacesAsync(allowWatchBookmarks: true, resourceVersion: resourceVersion, timeoutSeconds: 300,
            onError: onError, cancellationToken: cancellationToken);
}

/// <summary>Reconcile durations in milliseconds, kept for percentiles.</summary>
public sealed class ReconcileTimings
{
    private readonly Lock gate = new();
    private readonly List<double> milliseconds = [];

    public void Add(TimeSpan elapsed)
    {
        lock (gate)
        {
            milliseconds.Add(elapsed.TotalMilliseconds);
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
