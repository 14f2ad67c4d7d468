namespace KubeCapture.Contracts;

/// <summary>
/// The operator's extension API behind kube-apiserver, subresources.kubecapture.io/v1alpha1
/// (docs/user-guide.md, "Download and live follow"): served by the operator, called by the plugin.
/// </summary>
public static class ExtensionApi
{
    public const string Group = "subresources.kubecapture.io";
    public const string Version = "v1alpha1";
    public const string GroupVersion = Group + "/" + Version;
    public const string Resource = "packetcaptures";
    public const string Pcap = "pcap";
    public const string Manifest = "manifest";
    public const string Follow = "follow";

    /// <summary>POST (RBAC verb create): a snapshot by hand of a flight recording.</summary>
    public const string Snapshot = "snapshot";

    /// <summary>The query parameter of pcap and manifest that chooses snapshot N of a recording instead of the target's own pcap.</summary>
    public const string SnapshotParameter = "snapshot";
    public const string PcapContentType = "application/vnd.tcpdump.pcap";

    /// <summary>The response header that carries the stored pcap's SHA-256 (lowercase hex).</summary>
    public const string Sha256Header = "X-KubeCapture-SHA256";

    /// <summary>The subresources read with GET (RBAC verb get).</summary>
    public static readonly IReadOnlyList<string> Subresources = [Pcap, Manifest, Follow];

    /// <summary>The path of one capture's subresource, with the target pod when one is chosen, and snapshot N of its recording (0: none).</summary>
    public static string PathOf(string ns, string name, string subresource, string? pod, int snapshot = 0)
    {
        var query = new List<string>();
        if (pod is not null)
        {
            query.Add("pod=" + Uri.EscapeDataString(pod));
        }

        if (snapshot > 0)
        {
            query.Add($"{SnapshotParameter}={snapshot.ToString(System.Globalization.CultureInfo.InvariantCulture)}");
        }

        return $"/apis/{GroupVersion}/namespaces/{Uri.EscapeDataString(ns)}/{Resource}/{Uri.EscapeDataString(name)}/{subresource}{(query.Count == 0 ? "" : "?" + string.Join('&', query))}";
    }
}
