using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>The capture's own terms for a target's upload, as the ingest holds every stream to them whatever the agent claims.</summary>
public static class CaptureUploadTerms
{
    public static UploadTerms For(PacketCapture capture, V1Pod pod)
    {
        long? maxBytes = Quantities.TryParseSize(capture.Spec.MaxBytes ?? PacketCaptureSpec.DefaultMaxBytes, out var bytes, out _) ? bytes : null;
        TimeSpan? retention = capture.Spec.Retention?.Ttl is { } ttl && Quantities.TryParseDuration(ttl, out var kept, out _) ? kept : null;
        return new UploadTerms(PodAddresses.Of(pod), maxBytes, retention);
    }
}
