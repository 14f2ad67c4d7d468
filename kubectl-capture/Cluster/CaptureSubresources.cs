namespace KubeCapture.KubectlPlugin.Cluster;

/// <summary>The operator's extension API behind kube-apiserver: subresources.kubecapture.io/v1alpha1 (docs/user-guide.md, "Download and live follow").</summary>
public static class CaptureSubresources
{
    public const string GroupVersion = "subresources.kubecapture.io/v1alpha1";

    /// <summary>The response header that carries the stored pcap's SHA-256 (lowercase hex).</summary>
    public const string Sha256Header = "X-KubeCapture-SHA256";

    public const string Pcap = "pcap";
    public const string Manifest = "manifest";
    public const string Follow = "follow";

    public static string PathOf(string ns, string name, string subresource, string? pod) =>
        $"/apis/{GroupVersion}/namespaces/{Uri.EscapeDataString(ns)}/packetcaptures/{Uri.EscapeDataString(name)}/{subresource}{(pod is null ? "" : "?pod=" + Uri.EscapeDataString(pod))}";
}
