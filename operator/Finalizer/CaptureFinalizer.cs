using System.Text.Json;
using k8s;
using k8s.Models;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Finalizer;

/// <summary>
/// Keeps a deleted PacketCapture until its agents were told to stop and what they captured is
/// stored (or the deadline passed): deleting a capture stops it, it does not lose it.
/// </summary>
public static class CaptureFinalizer
{
    public const string Name = "kubecapture.io/finalizer";

    /// <summary>
    /// The annotation that lets someone other than the operator remove <see cref="Name"/> (its value
    /// says why; the guard webhook records who and why in the audit log), and tells the operator not
    /// to put it back.
    /// </summary>
    public const string BreakGlassAnnotation = "kubecapture.io/break-glass";

    /// <summary>Why someone broke glass on this capture, or null.</summary>
    public static string? BreakGlass(PacketCapture capture) =>
        capture.Metadata.Annotations?.TryGetValue(BreakGlassAnnotation, out var why) == true && !string.IsNullOrWhiteSpace(why) ? why : null;

    public static bool IsPresent(PacketCapture capture) => capture.Metadata.Finalizers?.Contains(Name) == true;

    /// <summary>Adds the finalizer (JSON patch with a resourceVersion test: never clobbers others' finalizers).</summary>
    public static Task<PacketCapture> AddAsync(IKubernetes kubernetes, PacketCapture capture, CancellationToken cancellationToken)
    {
        var finalizers = (capture.Metadata.Finalizers ?? []).Append(Name).ToList();
        return PatchAsync(kubernetes, capture, finalizers, cancellationToken);
    }

    public static Task<PacketCapture> RemoveAsync(IKubernetes kubernetes, PacketCapture capture, CancellationToken cancellationToken)
    {
        var finalizers = (capture.Metadata.Finalizers ?? []).Where(f => f != Name).ToList();
        return PatchAsync(kubernetes, capture, finalizers, cancellationToken);
    }

    private static Task<PacketCapture> PatchAsync(IKubernetes kubernetes, PacketCapture capture, List<string> finalizers, CancellationToken cancellationToken)
    {
        // A merge patch carrying the resourceVersion is a precondition: 409 if someone changed the list meanwhile.
        var body = JsonSerializer.Serialize(new
        {
            metadata = new { resourceVersion = capture.Metadata.ResourceVersion, finalizers },
        });
        return kubernetes.CustomObjects.PatchNamespacedCustomObjectAsync<PacketCapture>(
            new V1Patch(body, V1Patch.PatchType.MergePatch), PacketCapture.Group, PacketCapture.Version,
            capture.Metadata.NamespaceProperty, PacketCapture.Plural, capture.Metadata.Name, cancellationToken: cancellationToken);
    }
}
