using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Operator.Alerts;

/// <summary>
/// No storm of snapshots from one alert: which alerts (fingerprint and startsAt) already asked for a
/// snapshot of which pod of a recording, in the recording's annotation
/// <c>kubecapture.io/alert-snapshots</c> (a JSON list of <c>POD FINGERPRINT@STARTSAT</c>, the newest
/// <see cref="Kept"/>). A replica claims an alert's snapshot by adding it with a merge patch that
/// carries the resourceVersion it read: kube-apiserver takes one of two replicas' patches and answers the
/// other 409, which reads again and finds it taken. So Alertmanager's re-sends (every
/// <c>repeat_interval</c>, a new alert joining the group, a retry, another replica) take no second
/// snapshot, while the same alert firing again later (a new startsAt) takes one. A claim whose
/// agent could not be asked is given back, so Alertmanager's retry can take it.
/// </summary>
public sealed class AlertSnapshotClaims(IKubernetes kubernetes)
{
    public const string Annotation = "kubecapture.io/alert-snapshots";

    /// <summary>Claims kept per recording (well above spec.recorder.maxSnapshots, at most 100).</summary>
    public const int Kept = 200;

    private const int Attempts = 8;

    public static string ClaimOf(string pod, AlertmanagerAlert alert) => $"{pod} {alert.Key}";

    /// <summary>The claims recorded on <paramref name="capture"/>.</summary>
    public static IReadOnlyList<string> Of(PacketCapture capture)
    {
        if (capture.Metadata.Annotations is null || !capture.Metadata.Annotations.TryGetValue(Annotation, out var json) || json.Length == 0)
        {
            return [];
        }

        try
        {
            return JsonSerializer.Deserialize(json, AlertsJsonContext.Default.ListString) ?? [];
        }
        catch (JsonException)
        {
            return []; // written by hand: it is replaced by the next claim
        }
    }

    /// <summary>
    /// Adds <paramref name="claims"/> to <paramref name="capture"/>'s; returns those this call added (the
    /// others were there already: another notification of the same alert took them).
    /// </summary>
    public async Task<IReadOnlyList<string>> ClaimAsync(PacketCapture capture, IReadOnlyList<string> claims, CancellationToken cancellationToken)
    {
        var added = new List<string>();
        await ChangeAsync(capture, held =>
        {
            added = [.. claims.Distinct().Where(c => !held.Contains(c))];
            return added.Count == 0 ? null : [.. held, .. added];
        }, cancellationToken);
        return added;
    }

    /// <summary>Gives <paramref name="claims"/> back (their snapshots could not be asked).</summary>
    public Task ReleaseAsync(PacketCapture capture, IReadOnlyList<string> claims, CancellationToken cancellationToken) =>
        ChangeAsync(capture, held => held.Any(claims.Contains) ? [.. held.Where(c => !claims.Contains(c))] : null, cancellationToken);

    private async Task ChangeAsync(PacketCapture capture, Func<IReadOnlyList<string>, List<string>?> change, CancellationToken cancellationToken)
    {
        var current = capture;
        for (var attempt = 1; ; attempt++)
        {
            if (change(Of(current)) is not { } next)
            {
                return;
            }

            var body = JsonSerializer.Serialize(new AnnotationPatch(new AnnotationPatchMetadata(current.Metadata.ResourceVersion,
                new Dictionary<string, string> { [Annotation] = JsonSerializer.Serialize(next.TakeLast(Kept).ToList(), AlertsJsonContext.Default.ListString) })), AlertsJsonContext.Default.AnnotationPatch);
            try
            {
                // The resourceVersion in a merge patch is a precondition: 409 when another replica changed the capture meanwhile.
                await kubernetes.CustomObjects.PatchNamespacedCustomObjectAsync<PacketCapture>(new V1Patch(body, V1Patch.PatchType.MergePatch),
                    PacketCapture.Group, PacketCapture.Version, current.Metadata.NamespaceProperty, PacketCapture.Plural, current.Metadata.Name, cancellationToken: cancellationToken);
                return;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < Attempts)
            {
                current = await kubernetes.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version,
                    current.Metadata.NamespaceProperty, PacketCapture.Plural, current.Metadata.Name, cancellationToken: cancellationToken);
            }
        }
    }
}

internal sealed record AnnotationPatch([property: JsonPropertyName("metadata")] AnnotationPatchMetadata Metadata);

internal sealed record AnnotationPatchMetadata(
    [property: JsonPropertyName("resourceVersion")] string ResourceVersion,
    [property: JsonPropertyName("annotations")] Dictionary<string, string> Annotations);
