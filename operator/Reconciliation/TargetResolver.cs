using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Watcher;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Finds a capture's target pods by name or label selector, only in the capture's own namespace,
/// at most the policy's number, each Running on Linux. A problem comes back as a condition reason
/// (PodNotFound, NoPodsMatched, TooManyPods, HostNetworkPod, PodNotRunning, NotLinux) and a message.
/// Reads the operator's pod cache (a miss costs one live read, <see cref="ClusterCache"/>, and so does a
/// pod the cache shows not Running, before the capture fails on it: the cache may be a moment behind).
/// </summary>
public sealed class TargetResolver(ClusterCache cluster, CapturePolicy policy)
{
    public async Task<TargetResolution> ResolveAsync(PacketCapture capture, CancellationToken cancellationToken)
    {
        var ns = capture.Metadata.NamespaceProperty;
        List<V1Pod> pods;
        if (!string.IsNullOrEmpty(capture.Spec.Target.PodName))
        {
            if (await cluster.GetPodAsync(ns, capture.Spec.Target.PodName, cancellationToken) is not { } pod)
            {
                return TargetResolution.Problem("PodNotFound", $"pod '{capture.Spec.Target.PodName}' not found in namespace '{ns}'");
            }

            pods = [pod];
        }
        else
        {
            var selector = LabelSelectorText(capture.Spec.Target.PodSelector!);
            var matching = await cluster.ListPodsAsync(ns, capture.Spec.Target.PodSelector!, selector, cancellationToken);
            pods = matching.Where(p => p.Metadata.DeletionTimestamp is null).OrderBy(p => p.Metadata.Name, StringComparer.Ordinal).ToList();
            if (pods.Count == 0)
            {
                return TargetResolution.Problem("NoPodsMatched", $"no pod in namespace '{ns}' matches the selector '{selector}'");
            }

            if (pods.Count > policy.MaxPodsPerCapture)
            {
                return TargetResolution.Problem("TooManyPods", $"the selector '{selector}' matches {pods.Count} pods; policy allows at most {policy.MaxPodsPerCapture} per capture");
            }
        }

        for (var i = 0; i < pods.Count; i++)
        {
            var pod = pods[i];
            if (pod.Status?.Phase != "Running")
            {
                // The cache may not have the kubelet's "Running" yet (its watch event still on the way):
                // one live read before the capture fails on it.
                pod = await cluster.ReadPodAsync(ns, pod.Metadata.Name, cancellationToken) ?? pod;
                pods[i] = pod;
            }

            var os = pod.Spec?.Os?.Name;
            if (os is not null && !string.Equals(os, "linux", StringComparison.OrdinalIgnoreCase))
            {
                return TargetResolution.Problem("NotLinux", $"pod '{pod.Metadata.Name}' runs on {os}: captures need Linux");
            }

            if (pod.Spec?.HostNetwork == true)
            {
                return TargetResolution.Problem("HostNetworkPod",
                    $"pod '{pod.Metadata.Name}' uses the node's network (hostNetwork: true): its capture would see all of node {pod.Spec.NodeName ?? "?"}'s traffic, " +
                    "and its agent could not be told apart from any other host-network process on the node (the ingest binds an upload to the pod's own IP); capture a pod with its own network");
            }

            if (pod.Status?.Phase != "Running")
            {
                return TargetResolution.Problem("PodNotRunning", $"pod '{pod.Metadata.Name}' is {pod.Status?.Phase ?? "not scheduled"}, not Running");
            }
        }

        return new TargetResolution(pods, null, null);
    }

    /// <summary>matchLabels and matchExpressions as the API's labelSelector query text.</summary>
    public static string LabelSelectorText(V1LabelSelector selector)
    {
        var terms = new List<string>();
        foreach (var (key, value) in selector.MatchLabels ?? new Dictionary<string, string>())
        {
            terms.Add($"{key}={value}");
        }

        foreach (var e in selector.MatchExpressions ?? [])
        {
            terms.Add(e.OperatorProperty switch
            {
                "In" => $"{e.Key} in ({string.Join(',', e.Values ?? [])})",
                "NotIn" => $"{e.Key} notin ({string.Join(',', e.Values ?? [])})",
                "Exists" => e.Key,
                "DoesNotExist" => "!" + e.Key,
                var other => throw new ArgumentException($"unknown selector operator '{other}'"),
            });
        }

        return string.Join(',', terms);
    }
}

public sealed record TargetResolution(IReadOnlyList<V1Pod> Pods, string? Reason, string? Message)
{
    public bool Found => Reason is null;

    public static TargetResolution Problem(string reason, string message) => new([], reason, message);
}
