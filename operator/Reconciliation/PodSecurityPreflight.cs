using KubeCapture.Operator.Watcher;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Pod Security Admission decides whether the capture container may have NET_RAW. Checked on the
/// namespace's enforce label before injecting, so the user gets a clear condition rather than a
/// cryptic API error: restricted forbids NET_RAW (refuse); baseline forbids adding capabilities but
/// common runtimes (containerd, CRI-O) grant NET_RAW by default (do not add it, say so);
/// privileged, or no label (the API server's default), allows adding it. Reads the operator's
/// namespace cache.
/// </summary>
public sealed class PodSecurityPreflight(ClusterCache cluster)
{
    public const string EnforceLabel = NamespaceFields.EnforceLabel;

    public async Task<PodSecurityVerdict> CheckAsync(string ns, CancellationToken cancellationToken)
    {
        var namespaceObject = await cluster.GetNamespaceAsync(ns, cancellationToken);
        var level = namespaceObject.Metadata.Labels?.TryGetValue(EnforceLabel, out var value) == true ? value : "privileged";
        return level switch
        {
            "restricted" => new PodSecurityVerdict(false, false, "PodSecurityRestricted",
                $"namespace '{ns}' enforces Pod Security 'restricted', which forbids the NET_RAW capability a capture needs; " +
                $"capture in a namespace labelled {EnforceLabel}=baseline or privileged"),
            "baseline" => new PodSecurityVerdict(true, false, "PodSecurityBaseline",
                $"namespace '{ns}' enforces Pod Security 'baseline', which forbids adding capabilities: the capture container adds none, keeps the " +
                "container runtime's default NET_RAW (containerd and CRI-O grant it) and drops every other default; it fails to open the capture if the runtime does not grant NET_RAW"),
            _ => new PodSecurityVerdict(true, true, "PodSecurityPrivileged", $"namespace '{ns}' allows adding NET_RAW (Pod Security '{level}')"),
        };
    }
}

public sealed record PodSecurityVerdict(bool Allowed, bool AddNetRaw, string Reason, string Message);
