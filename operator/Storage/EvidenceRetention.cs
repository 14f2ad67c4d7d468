using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Storage;

/// <summary>What became of one target's stored pcap and manifest when its PacketCapture was deleted.</summary>
public sealed record TargetDisposal(string Pod, string Uri, bool Deleted, string? Kept);

/// <summary>
/// The reconciler's view of retention in object storage: whether a locked capture can be kept as
/// asked (checked before it starts), and deleting a deleted capture's objects unless a lock or legal
/// hold keeps them.
/// </summary>
public sealed class EvidenceRetention(IArtifactStore store, TimeProvider time) : IEvidenceRetention
{
    /// <summary>Null when the store can lock objects; otherwise why a locked or held capture cannot be kept.</summary>
    public Task<string?> CheckObjectLockAsync(CancellationToken cancellationToken) => store.CheckObjectLockAsync(cancellationToken);

    /// <summary>Deletes each target's pcap and manifest, except those a lock or legal hold keeps (and says until when).</summary>
    public async Task<IReadOnlyList<TargetDisposal>> DisposeAsync(IEnumerable<CaptureIdentity> targets, CancellationToken cancellationToken)
    {
        var result = new List<TargetDisposal>();
        foreach (var target in targets)
        {
            if (await store.FindStoredAsync(target, cancellationToken) is not { } stored || stored.CaptureUid != target.CaptureUid)
            {
                continue;
            }

            var retention = stored.Retention;
            if (retention?.LegalHold == true)
            {
                result.Add(new TargetDisposal(target.Pod, stored.Uri, false, "kept: on legal hold until the hold is removed in the bucket"));
                continue;
            }

            if (retention is { Lock: not "none", RetainUntil: { } until } && until > time.GetUtcNow())
            {
                result.Add(new TargetDisposal(target.Pod, stored.Uri, false, $"kept: {retention.Lock} lock until {until.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}"));
                continue;
            }

            try
            {
                await store.DeleteStoredAsync(stored, cancellationToken);
                result.Add(new TargetDisposal(target.Pod, stored.Uri, true, null));
            }
            catch (S3ErrorException e) when (e.Code == "AccessDenied")
            {
                result.Add(new TargetDisposal(target.Pod, stored.Uri, false, $"kept: the storage refused to delete it ({e.Message})"));
            }
        }

        return result;
    }
}
