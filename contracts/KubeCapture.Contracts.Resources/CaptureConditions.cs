using k8s.Models;

namespace KubeCapture.Contracts.Resources;

/// <summary>
/// Condition types on a PacketCapture, in Kubernetes style: each is True, False or Unknown with a
/// CamelCase reason; a failure shows as its own condition False with a reason naming the problem.
/// </summary>
public static class CaptureConditions
{
    /// <summary>The admission webhook stamped the capture with the requester kube-apiserver authenticated (False, NotStamped: it did not run).</summary>
    public const string RequesterVerified = "RequesterVerified";

    /// <summary>The spec is valid: the filter compiles, policy allows it, the namespace may capture.</summary>
    public const string Accepted = "Accepted";

    /// <summary>Capture may start now (False while waiting for a concurrency slot).</summary>
    public const string Admitted = "Admitted";

    /// <summary>Every target pod exists, runs Linux, is Running, and Pod Security lets NET_RAW in.</summary>
    public const string TargetsReady = "TargetsReady";

    /// <summary>Object storage can keep the capture as its spec asks (Object Lock for a locked or held capture); checked before anything starts.</summary>
    public const string StorageReady = "StorageReady";

    /// <summary>The ephemeral capture containers were added to every target pod.</summary>
    public const string Injected = "Injected";

    /// <summary>
    /// True when a target's pcap did not come from its capture agent: another agent session uploaded
    /// it (someone with the upload token, inside the pod), and the agent was refused or never
    /// confirmed it. Never clean evidence (reason UploadContested).
    /// </summary>
    public const string Contested = "Contested";

    /// <summary>The reason of a target (and of <see cref="Contested"/>) whose pcap did not come from its capture agent.</summary>
    public const string UploadContested = "UploadContested";

    /// <summary>Every target's pcap is stored and verified (True), or the capture failed (False).</summary>
    public const string Complete = "Complete";

    /// <summary>
    /// Sets a condition, moving lastTransitionTime only when the status changes. Returns true if
    /// anything (status, reason, message, observedGeneration) changed.
    /// </summary>
    public static bool Set(PacketCaptureStatus status, string type, bool? value, string reason, string message, long? generation, DateTime now)
    {
        var text = value switch { true => "True", false => "False", null => "Unknown" };
        var existing = status.Conditions.FirstOrDefault(c => c.Type == type);
        if (existing is null)
        {
            status.Conditions.Add(new V1Condition { Type = type, Status = text, Reason = reason, Message = message, ObservedGeneration = generation, LastTransitionTime = now });
            return true;
        }

        var changed = existing.Status != text || existing.Reason != reason || existing.Message != message || existing.ObservedGeneration != generation;
        if (existing.Status != text)
        {
            existing.LastTransitionTime = now;
        }

        existing.Status = text;
        existing.Reason = reason;
        existing.Message = message;
        existing.ObservedGeneration = generation;
        return changed;
    }

    public static V1Condition? Find(PacketCaptureStatus? status, string type) => status?.Conditions.FirstOrDefault(c => c.Type == type);
}
