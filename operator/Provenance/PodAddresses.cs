using k8s.Models;

namespace KubeCapture.Operator.Provenance;

/// <summary>The addresses a pod's status gives it (status.podIPs; status.podIP on older servers).</summary>
public static class PodAddresses
{
    public static IReadOnlyList<string> Of(V1Pod pod)
    {
        var ips = (pod.Status?.PodIPs ?? []).Select(p => p.Ip).Where(ip => !string.IsNullOrEmpty(ip)).ToList();
        if (ips.Count == 0 && !string.IsNullOrEmpty(pod.Status?.PodIP))
        {
            ips.Add(pod.Status.PodIP);
        }

        return ips;
    }
}
