using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// Concurrency limits: at most N active captures per namespace and M in the cluster. A capture
/// that has started (has targets) or was admitted holds a slot until it ends; the others wait as
/// Pending, oldest first.
/// </summary>
public sealed class ConcurrencySlots(CapturePolicy policy)
{
    private readonly Lock gate = new();
    private readonly Dictionary<string, string> admitted = new(StringComparer.Ordinal); // uid -> namespace

    /// <summary>Null if admitted, else the reason it must wait.</summary>
    public string? TryAdmit(PacketCapture capture, IReadOnlyList<PacketCapture> all)
    {
        lock (gate)
        {
            var uid = capture.Metadata.Uid;
            if (admitted.ContainsKey(uid))
            {
                return null;
            }

            var live = all.Where(c => c.Metadata.Uid != uid && !CapturePhase.IsTerminal(c.Status?.Phase) && c.Metadata.DeletionTimestamp is null).ToList();
            var liveUids = live.Select(c => c.Metadata.Uid).ToHashSet(StringComparer.Ordinal);
            foreach (var stale in admitted.Keys.Where(k => !liveUids.Contains(k)).ToList())
            {
                admitted.Remove(stale);
            }

            var active = live.Where(c => admitted.ContainsKey(c.Metadata.Uid) || (c.Status?.Targets.Count ?? 0) > 0).ToList();
            var ns = capture.Metadata.NamespaceProperty;
            var inNamespace = active.Count(c => c.Metadata.NamespaceProperty == ns);
            if (inNamespace >= policy.MaxConcurrentPerNamespace)
            {
                return $"{inNamespace} captures already run in namespace '{ns}' (policy allows {policy.MaxConcurrentPerNamespace} at a time); waiting for one to finish";
            }

            if (active.Count >= policy.MaxConcurrentInCluster)
            {
                return $"{active.Count} captures already run in the cluster (policy allows {policy.MaxConcurrentInCluster} at a time); waiting for one to finish";
            }

            // Oldest first: an older capture of the same namespace waiting for a slot goes before this one.
            var created = capture.Metadata.CreationTimestamp ?? DateTime.MaxValue;
            var olderWaiting = live.Where(c => !admitted.ContainsKey(c.Metadata.Uid) && (c.Status?.Targets.Count ?? 0) == 0 &&
                (c.Metadata.CreationTimestamp ?? DateTime.MaxValue) < created).ToList();
            if (olderWaiting.Count(c => c.Metadata.NamespaceProperty == ns) + inNamespace >= policy.MaxConcurrentPerNamespace ||
                olderWaiting.Count + active.Count >= policy.MaxConcurrentInCluster)
            {
                return "older captures are waiting for a slot first";
            }

            admitted[uid] = ns;
            return null;
        }
    }

    public void Release(string uid)
    {
        lock (gate)
        {
            admitted.Remove(uid);
        }
    }
}
