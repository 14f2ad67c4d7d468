using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Watcher;

/// <summary>
/// The pods and namespaces the controller reads, from one list+watch each (informer-style), so a
/// capture costs no pod or namespace GET. Each cached object keeps only the fields the controller
/// uses (<see cref="PodFields"/>, <see cref="NamespaceFields"/>). A miss is confirmed with one live
/// read (the watch may lag an object created a moment ago); what that read finds joins the cache.
/// </summary>
public sealed class ClusterCache
{
    /// <summary>Pods per page of the initial list: the whole cluster's pods never sit in one response.</summary>
    public const int ListPageSize = 500;

    private readonly IKubernetes kubernetes;

    public ClusterCache(IKubernetes kubernetes, ILogger logger, TimeProvider time)
    {
        this.kubernetes = kubernetes;
        Pods = new ResourceWatcher<V1Pod>("Pod", ListAllPodsAsync, WatchPodsAsync, logger, time, PodFields.Keep);
        Namespaces = new ResourceWatcher<V1Namespace>("Namespace", ListNamespacesAsync, WatchNamespacesAsync, logger, time, NamespaceFields.Keep);
    }

    public ResourceWatcher<V1Pod> Pods { get; }

    public ResourceWatcher<V1Namespace> Namespaces { get; }

    /// <summary>Completes when both first lists are in the cache.</summary>
    public Task Synced => Task.WhenAll(Pods.Synced, Namespaces.Synced);

    public Task RunAsync(CancellationToken cancellationToken) => Task.WhenAll(Pods.RunAsync(cancellationToken), Namespaces.RunAsync(cancellationToken));

    /// <summary>The pod from the cache; on a miss, one GET (null when the server has no such pod either).</summary>
    public async Task<V1Pod?> GetPodAsync(string ns, string name, CancellationToken cancellationToken)
    {
        if (Pods.Get($"{ns}/{name}") is { } cached)
        {
            return cached;
        }

        return await ReadPodAsync(ns, name, cancellationToken) is null ? null : Pods.Get($"{ns}/{name}");
    }

    /// <summary>
    /// The pod as the server has it now: one GET, offered to the cache (null when the server has no such
    /// pod). For a decision the cache may be too late for: a pod the cache still shows Pending may have
    /// been reported Running a moment ago, before its watch event arrived.
    /// </summary>
    public async Task<V1Pod?> ReadPodAsync(string ns, string name, CancellationToken cancellationToken)
    {
        try
        {
            var pod = await kubernetes.CoreV1.ReadNamespacedPodAsync(name, ns, cancellationToken: cancellationToken);
            Pods.Offer(pod);
            return PodFields.Keep(pod);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>The pods of a namespace the selector matches, from the cache; when none does, one live list to be sure.</summary>
    public async Task<IReadOnlyList<V1Pod>> ListPodsAsync(string ns, V1LabelSelector selector, string selectorText, CancellationToken cancellationToken)
    {
        var cached = Pods.Where(p => p.Metadata.NamespaceProperty == ns && LabelSelectors.Matches(selector, p.Metadata.Labels));
        if (cached.Count > 0)
        {
            return cached;
        }

        var list = await kubernetes.CoreV1.ListNamespacedPodAsync(ns, labelSelector: selectorText, cancellationToken: cancellationToken);
        foreach (var pod in list.Items)
        {
            Pods.Offer(pod);
        }

        return [.. list.Items.Select(PodFields.Keep)];
    }

    /// <summary>The pods of a namespace that already carry the named container (a capture injected before a crash).</summary>
    public IReadOnlyList<V1Pod> PodsWithContainer(string ns, string container) =>
        Pods.Where(p => p.Metadata.NamespaceProperty == ns && p.Spec?.EphemeralContainers?.Any(c => c.Name == container) == true);

    /// <summary>The namespace from the cache; on a miss, one GET.</summary>
    public async Task<V1Namespace> GetNamespaceAsync(string name, CancellationToken cancellationToken)
    {
        if (Namespaces.Get("/" + name) is { } cached)
        {
            return cached;
        }

        var live = await kubernetes.CoreV1.ReadNamespaceAsync(name, cancellationToken: cancellationToken);
        Namespaces.Offer(live);
        return NamespaceFields.Keep(live);
    }

    private async Task<(IReadOnlyList<V1Pod>, string)> ListAllPodsAsync(CancellationToken cancellationToken)
    {
        var pods = new List<V1Pod>();
        string? next = null;
        string version;
        do
        {
            var page = await kubernetes.CoreV1.ListPodForAllNamespacesAsync(limit: ListPageSize, continueParameter: next, cancellationToken: cancellationToken);
            pods.AddRange(page.Items.Select(PodFields.Keep));
            next = page.Metadata.ContinueProperty;
            version = page.Metadata.ResourceVersion;
        }
        while (!string.IsNullOrEmpty(next));

        return (pods, version);
    }

    private IAsyncEnumerable<(WatchEventType, V1Pod)> WatchPodsAsync(string resourceVersion, Action<Exception> onError, CancellationToken cancellationToken) =>
        kubernetes.CoreV1.WatchListPodForAllNamespacesAsync(allowWatchBookmarks: true, resourceVersion: resourceVersion, timeoutSeconds: 300,
            onError: onError, cancellationToken: cancellationToken);

    private async Task<(IReadOnlyList<V1Namespace>, string)> ListNamespacesAsync(CancellationToken cancellationToken)
    {
        var list = await kubernetes.CoreV1.ListNamespaceAsync(cancellationToken: cancellationToken);
        return ([.. list.Items], list.Metadata.ResourceVersion);
    }

    private IAsyncEnumerable<(WatchEventType, V1Namespace)> WatchNamespacesAsync(string resourceVersion, Action<Exception> onError, CancellationToken cancellationToken) =>
        kubernetes.CoreV1.WatchListNamespaceAsync(allowWatchBookmarks: true, resourceVersion: resourceVersion, timeoutSeconds: 300,
            onError: onError, cancellationToken: cancellationToken);
}

/// <summary>
/// What the controller reads of a pod, and nothing else: name, namespace, UID, resourceVersion,
/// labels, deletion; node, OS, hostNetwork, the ephemeral containers' names; phase, IPs and the
/// ephemeral containers' image and state. App containers, volumes, managed fields, annotations and
/// conditions are dropped before the pod is cached.
/// </summary>
public static class PodFields
{
    public static V1Pod Keep(V1Pod pod) => new()
    {
        ApiVersion = pod.ApiVersion,
        Kind = pod.Kind,
        Metadata = new V1ObjectMeta
        {
            Name = pod.Metadata?.Name,
            NamespaceProperty = pod.Metadata?.NamespaceProperty,
            Uid = pod.Metadata?.Uid,
            ResourceVersion = pod.Metadata?.ResourceVersion,
            Labels = pod.Metadata?.Labels,
            DeletionTimestamp = pod.Metadata?.DeletionTimestamp,
        },
        Spec = pod.Spec is not { } spec ? null : new V1PodSpec
        {
            Containers = [],
            NodeName = spec.NodeName,
            Os = spec.Os,
            HostNetwork = spec.HostNetwork,
            EphemeralContainers = spec.EphemeralContainers?.Select(c => new V1EphemeralContainer { Name = c.Name, Image = c.Image }).ToList(), // the image: the chain of custody records it
        },
        Status = pod.Status is not { } status ? null : new V1PodStatus
        {
            Phase = status.Phase,
            PodIP = status.PodIP,
            PodIPs = status.PodIPs,
            EphemeralContainerStatuses = status.EphemeralContainerStatuses?.Select(c => new V1ContainerStatus
            {
                Name = c.Name,
                Image = c.Image,
                State = c.State,
            }).ToList(),
        },
    };
}

/// <summary>What the controller reads of a namespace: its name and its Pod Security enforce label.</summary>
public static class NamespaceFields
{
    public const string EnforceLabel = "pod-security.kubernetes.io/enforce";

    public static V1Namespace Keep(V1Namespace ns) => new()
    {
        ApiVersion = ns.ApiVersion,
        Kind = ns.Kind,
        Metadata = new V1ObjectMeta
        {
            Name = ns.Metadata?.Name,
            ResourceVersion = ns.Metadata?.ResourceVersion,
            Labels = ns.Metadata?.Labels?.TryGetValue(EnforceLabel, out var level) == true ? new Dictionary<string, string> { [EnforceLabel] = level } : null,
        },
    };
}

/// <summary>matchLabels and matchExpressions, evaluated against a cached pod's labels as the API server would.</summary>
public static class LabelSelectors
{
    public static bool Matches(V1LabelSelector selector, IDictionary<string, string>? labels)
    {
        labels ??= new Dictionary<string, string>();
        foreach (var (key, value) in selector.MatchLabels ?? new Dictionary<string, string>())
        {
            if (!labels.TryGetValue(key, out var actual) || actual != value)
            {
                return false;
            }
        }

        foreach (var e in selector.MatchExpressions ?? [])
        {
            var has = labels.TryGetValue(e.Key, out var actual);
            var matches = e.OperatorProperty switch
            {
                "In" => has && (e.Values ?? []).Contains(actual!),
                "NotIn" => !has || !(e.Values ?? []).Contains(actual!),
                "Exists" => has,
                "DoesNotExist" => !has,
                var other => throw new ArgumentException($"unknown selector operator '{other}'"),
            };
            if (!matches)
            {
                return false;
            }
        }

        return true;
    }
}
