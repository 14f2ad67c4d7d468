using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Metrics;
using KubeCapture.Operator.Queue;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Events;

/// <summary>
/// Kubernetes Events on the capture and on its target pods (kubectl describe shows them). Recording
/// an event never fails nor holds up a reconcile; the status stays the source of truth.
/// <para>
/// An Event the server pushes back (429 from API Priority and Fairness, 5xx, no answer) joins a
/// bounded backlog and is sent again in the background after the server's Retry-After (else a
/// backoff of 1 s doubling to 1 min), keeping its name, so a retry of one that did arrive is a 409
/// and not a second Event, and its timestamps, so it says when it happened. While the server has
/// asked to wait, or older Events still wait, a new Event joins the backlog without a request, in
/// order. An Event is dropped, with a warning and <c>kubecapture_events_dropped_total{reason}</c>,
/// only when the server refuses it (<c>refused</c>: 4xx other than 429), when the backlog is full
/// (<c>backlog_full</c>) or after <see cref="MaxAttempts"/> tries (<c>retries_exhausted</c>), as
/// client-go's event recorder does (a queue of 1000, 12 tries per event).
/// </para>
/// </summary>
public sealed class CaptureEvents(IKubernetes kubernetes, ILogger<CaptureEvents> logger, TimeProvider time, int backlogLimit = CaptureEvents.DefaultBacklogLimit)
{
    public const string Component = "kubecapture-operator";

    /// <summary>Events kept for a retry at most (the rest are dropped and counted).</summary>
    public const int DefaultBacklogLimit = 1000;

    /// <summary>Tries per Event, the first included.</summary>
    public const int MaxAttempts = 12;

    private static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMinutes(1);
    private static long sequence;

    private readonly Lock gate = new();
    private readonly Queue<PendingEvent> backlog = new();
    private DateTimeOffset waitUntil = DateTimeOffset.MinValue;
    private Task sender = Task.CompletedTask;
    private long dropped;

    /// <summary>Events waiting for a retry now.</summary>
    public int Backlog
    {
        get
        {
            lock (gate)
            {
                return backlog.Count;
            }
        }
    }

    /// <summary>Events given up on since this recorder started (each also counted in the metric).</summary>
    public long Dropped => Interlocked.Read(ref dropped);

    /// <summary>Completes when the backlog is empty (sent or dropped); for tests and shutdown.</summary>
    public Task Drained
    {
        get
        {
            lock (gate)
            {
                return sender;
            }
        }
    }

    public Task OnCaptureAsync(PacketCapture capture, string type, string reason, string message, CancellationToken cancellationToken) =>
        RecordAsync(capture.Metadata.NamespaceProperty, new V1ObjectReference
        {
            ApiVersion = PacketCapture.GroupVersion,
            Kind = PacketCapture.KindName,
            Name = capture.Metadata.Name,
            NamespaceProperty = capture.Metadata.NamespaceProperty,
            Uid = capture.Metadata.Uid,
            ResourceVersion = capture.Metadata.ResourceVersion,
        }, type, reason, message, cancellationToken);

    public Task OnPodAsync(V1Pod pod, string type, string reason, string message, CancellationToken cancellationToken) =>
        RecordAsync(pod.Metadata.NamespaceProperty, new V1ObjectReference
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Name = pod.Metadata.Name,
            NamespaceProperty = pod.Metadata.NamespaceProperty,
            Uid = pod.Metadata.Uid,
        }, type, reason, message, cancellationToken);

    private async Task RecordAsync(string ns, V1ObjectReference involved, string type, string reason, string message, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var pending = new PendingEvent(ns, new Corev1Event
        {
            // A name of its own (as client-go names them: object name and a unique suffix), so that a
            // retry of an Event whose first answer was lost is a 409, not a duplicate.
            Metadata = new V1ObjectMeta { Name = EventName(involved.Name, now), NamespaceProperty = ns },
            InvolvedObject = involved,
            Type = type,
            Reason = reason,
            Message = message.Length > 1024 ? message[..1024] : message,
            Source = new V1EventSource { Component = Component },
            ReportingComponent = Component,
            ReportingInstance = Environment.MachineName,
            FirstTimestamp = now.UtcDateTime,
            LastTimestamp = now.UtcDateTime,
            Count = 1,
        });
        lock (gate)
        {
            if (backlog.Count > 0 || now < waitUntil)
            {
                Defer(pending, "the server asked to wait");
                return;
            }
        }

        var failure = await TrySendAsync(pending, cancellationToken);
        if (failure is not null)
        {
            lock (gate)
            {
                Defer(pending, failure);
            }
        }
    }

    /// <summary>One try: null when the Event is recorded (or given up on); else why it should be tried again.</summary>
    private async Task<string?> TrySendAsync(PendingEvent pending, CancellationToken cancellationToken)
    {
        pending.Attempts++;
        try
        {
            await kubernetes.CoreV1.CreateNamespacedEventAsync(pending.Event, pending.Namespace, cancellationToken: cancellationToken);
            return null;
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && pending.Attempts > 1)
        {
            return null; // an earlier try arrived, its answer did not
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var status = (e as HttpOperationException)?.Response.StatusCode;
            if (status is { } code && !ServerPushback.IsPushback(code))
            {
                Drop(pending, "refused", $"the server refused it: {(int)code} {e.Message}");
                return null;
            }

            var wait = ServerPushback.RetryAfter(e, time.GetUtcNow()) ?? Backoff(pending.Attempts);
            lock (gate)
            {
                var until = time.GetUtcNow() + wait;
                waitUntil = until > waitUntil ? until : waitUntil;
            }

            if (pending.Attempts >= MaxAttempts)
            {
                Drop(pending, "retries_exhausted", $"{pending.Attempts} tries, the last: {e.Message}");
                return null;
            }

            return status is { } pushback ? $"{(int)pushback}, retry in {wait.TotalSeconds:0.#} s" : $"{e.Message}, retry in {wait.TotalSeconds:0.#} s";
        }
    }

    /// <summary>Into the backlog (under the gate), or dropped when it is full; starts the sender.</summary>
    private void Defer(PendingEvent pending, string why)
    {
        if (backlog.Count >= backlogLimit)
        {
            Drop(pending, "backlog_full", $"{backlogLimit} Events already wait for a retry ({why})");
            return;
        }

        backlog.Enqueue(pending);
        OperatorMetrics.EventsDeferred.Add(1);
        logger.Log(backlog.Count == 1 ? LogLevel.Information : LogLevel.Debug, "event {Reason} on {Kind} {Namespace}/{Name} deferred: {Why}; {Count} waiting",
            pending.Event.Reason, pending.Event.InvolvedObject.Kind, pending.Namespace, pending.Event.InvolvedObject.Name, why, backlog.Count);
        if (sender.IsCompleted)
        {
            sender = Task.Run(SendBacklogAsync);
        }
    }

    /// <summary>Sends the backlog in order, each after the wait the server asked for; ends when it is empty.</summary>
    private async Task SendBacklogAsync()
    {
        while (true)
        {
            PendingEvent next;
            TimeSpan wait;
            lock (gate)
            {
                if (!backlog.TryPeek(out var head))
                {
                    sender = Task.CompletedTask;
                    return;
                }

                next = head;
                wait = waitUntil - time.GetUtcNow();
            }

            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, time);
                continue;
            }

            var failure = await TrySendAsync(next, CancellationToken.None);
            if (failure is null)
            {
                lock (gate)
                {
                    backlog.Dequeue();
                }
            }
        }
    }

    private void Drop(PendingEvent pending, string reason, string why)
    {
        Interlocked.Increment(ref dropped);
        OperatorMetrics.EventsDropped.Add(1, new KeyValuePair<string, object?>("reason", reason));
        logger.LogWarning("event {Reason} on {Kind} {Namespace}/{Name} dropped ({DropReason}): {Why}",
            pending.Event.Reason, pending.Event.InvolvedObject.Kind, pending.Namespace, pending.Event.InvolvedObject.Name, reason, why);
    }

    private static TimeSpan Backoff(int attempts) =>
        TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, FirstBackoff.Ticks << Math.Min(attempts - 1, 16)));

    /// <summary>OBJECT.SUFFIX, at most 253 characters; the suffix is the time and a sequence number in hex.</summary>
    private static string EventName(string involved, DateTimeOffset now)
    {
        var suffix = $".{now.ToUnixTimeMilliseconds():x}{Interlocked.Increment(ref sequence) & 0xffff:x4}";
        return (involved.Length + suffix.Length > 253 ? involved[..(253 - suffix.Length)] : involved) + suffix;
    }

    private sealed class PendingEvent(string ns, Corev1Event body)
    {
        public string Namespace { get; } = ns;

        public Corev1Event Event { get; } = body;

        public int Attempts { get; set; }
    }
}
