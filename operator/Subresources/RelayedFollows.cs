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
        if (await AuthenticatedAsync(context, "follower", RelayPurpose.Follow) is not (var target, var follower, var replica))
        {
            return;
        }

        var (uid, ns, name, pod) = (target.CaptureUid, target.Namespace, target.CaptureName, target.Pod);

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

    /// <summary>
    /// POST <see cref="StreamRelay.SnapshotPath"/>: a snapshot by hand that a requester asked of another
    /// replica (authenticated and authorized there) for the recording this replica streams; passed to the
    /// agent as a snapshot asked here is. Only with the replica credential for a snapshot of this very
    /// target and requester; 409 with the reason when this replica does not hold the agent's stream.
    /// </summary>
    public async Task ServeSnapshotAsync(HttpContext context)
    {
        var alert = context.Request.Query["alert"].FirstOrDefault() is { Length: > 0 } a ? a : null;
        if (await AuthenticatedAsync(context, "requester", RelayPurpose.Snapshot, alert) is not (var target, var requester, var replica))
        {
            return;
        }

        var (ns, name, pod) = (target.Namespace, target.CaptureName, target.Pod);

        if (registry.RequestSnapshot(target, requester, alert) is { } notConnected)
        {
            await SubresourcesApi.WriteStatusAsync(context, 409, "Conflict", notConnected, name);
            return;
        }

        logger.LogInformation("{Namespace}/{Capture}: {User} asked replica {Replica} for a snapshot of pod {Pod}: passed to its agent here", ns, name, requester, replica, pod);
        context.Response.StatusCode = StatusCodes.Status202Accepted;
    }

    /// <summary>
    /// The target, the user it is for (<paramref name="userField"/>: the follower or the requester) and
    /// the asking replica of a relay request carrying the replica credential for <paramref name="purpose"/>;
    /// else null, with 400 (a field missing) or 401 (no valid credential, logged) answered.
    /// </summary>
    private async Task<(CaptureIdentity Target, string User, string Replica)?> AuthenticatedAsync(HttpContext context, string userField, RelayPurpose purpose, string? alert = null)
    {
        var query = context.Request.Query;
        string? Field(string name) => query[name].FirstOrDefault() is { Length: > 0 } value ? value : null;
        if ((Field("uid"), Field("namespace"), Field("name"), Field("pod"), Field(userField), Field("replica")) is not ({ } uid, { } ns, { } name, { } pod, { } user, { } replica))
        {
            await SubresourcesApi.WriteStatusAsync(context, 400, "BadRequest", $"a relay request names uid, namespace, name, pod, {userField} and replica");
            return null;
        }

        var target = new CaptureIdentity(uid, ns, name, pod);
        if (!credential.Verifies(context.Request.Headers.Authorization.FirstOrDefault(), target, RelayCredential.Asker(user, alert), replica, purpose))
        {
            var what = purpose == RelayPurpose.Follow ? "relay" : "relayed snapshot";
            logger.LogWarning("refused a {What} of {Namespace}/{Capture} pod {Pod} for {Peer} (calling itself replica {Replica}): no valid replica credential (an operator replica's, from the ingest token key)", what, ns, name, pod, context.Connection.RemoteIpAddress, replica);
            await SubresourcesApi.WriteStatusAsync(context, 401, "Unauthorized", $"a {what} is served only to an operator replica: this request has no valid replica credential");
            return null;
        }

        return (target, user, replica);
    }
}
