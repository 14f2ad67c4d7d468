using System.Net;
using k8s;
using k8s.Autorest;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// GET <see cref="StreamRelay.Path"/> on the extension API's listener: the live stream this replica
/// holds, for another replica that a follower reached (<see cref="StreamRelay"/>). Only a request with
/// the <see cref="RelayCredential"/> of this very target and follower is served (the follower was
/// authenticated and authorized by that replica); anything else is refused 401, logged. A replica
/// that does not hold the stream (it ended, or was handed over) answers 409, and the asking replica
/// looks up the holder again.
/// </summary>
public sealed class RelayedFollows(IKubernetes kubernetes, RelayCredential credential, UploadRegistry registry, CaptureDownloads downloads, ILogger<RelayedFollows> logger)
{
    public async Task ServeAsync(HttpContext context)
    {
        var query = context.Request.Query;
        string? Field(string name) => query[name].FirstOrDefault() is { Length: > 0 } value ? value : null;
        if ((Field("uid"), Field("namespace"), Field("name"), Field("pod"), Field("follower"), Field("replica")) is not ({ } uid, { } ns, { } name, { } pod, { } follower, { } replica))
        {
            await SubresourcesApi.WriteStatusAsync(context, 400, "BadRequest", "a relay request names uid, namespace, name, pod, follower and replica");
            return;
        }

        var target = new CaptureIdentity(uid, ns, name, pod);
        if (!credential.Verifies(context.Request.Headers.Authorization.FirstOrDefault(), target, follower, replica))
        {
            logger.LogWarning("refused a relay of {Namespace}/{Capture} pod {Pod} to {Peer} (calling itself replica {Replica}): no valid replica credential (an operator replica's, from the ingest token key)", ns, name, pod, context.Connection.RemoteIpAddress, replica);
            await SubresourcesApi.WriteStatusAsync(context, 401, "Unauthorized", "a live stream is relayed only to an operator replica: this request has no valid replica credential");
            return;
        }

        if (registry.Current(target) is not { Phase: UploadPhase.Streaming })
        {
            await SubresourcesApi.WriteStatusAsync(context, 409, "Conflict", $"this replica does not stream {ns}/{name} pod {pod} now: look the holder up again", name);
            return;
        }

        PacketCapture capture;
        try
        {
            capture = await kubernetes.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, name, context.RequestAborted);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            await SubresourcesApi.WriteStatusAsync(context, 404, "NotFound", $"{PacketCapture.Plural}.{PacketCapture.Group} \"{name}\" not found", name);
            return;
        }

        if (capture.Metadata.Uid != uid)
        {
            await SubresourcesApi.WriteStatusAsync(context, 404, "NotFound", $"capture {ns}/{name} is not the one of uid {uid} any more", name);
            return;
        }

        await downloads.ServeRelayAsync(context, capture, target, new RemoteUser(follower, [], new Dictionary<string, IReadOnlyList<string>>()), $"{replica} ({context.Connection.RemoteIpAddress})");
    }
}
