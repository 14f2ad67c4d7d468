using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// POST .../namespaces/NS/packetcaptures/NAME/snapshot[?pod=POD]: a snapshot by hand of a flight
/// recording (<c>kubectl capture snapshot NAME</c>), RBAC verb <c>create</c> on
/// <c>packetcaptures/snapshot</c>. Authenticated (front proxy) and authorized (SubjectAccessReview)
/// as the downloads are; the agent of each chosen target (all of them without ?pod=) is told on the
/// stream it holds open to the ingest (through the replica holding that stream, when it is another:
/// <see cref="StreamRelay.AskSnapshotAsync"/>), and the user kube-apiserver authenticated is named as the
/// snapshot's requester in its manifest. Recorded as an Event on the PacketCapture. A capture that is
/// not a recording, has ended, or whose agent is not connected is refused, saying which.
/// </summary>
public sealed class CaptureSnapshots(
    IKubernetes kubernetes,
    FrontProxyAuthenticator authenticator,
    AccessReview access,
    UploadRegistry registry,
    CaptureEvents events,
    ILogger<CaptureSnapshots> logger,
    StreamRelay? relay = null)
{
    public async Task HandleAsync(HttpContext context, string ns, string name)
    {
        var cancellationToken = context.RequestAborted;
        var (user, refusal) = await authenticator.AuthenticateAsync(context, requireUser: true, cancellationToken);
        if (user is null)
        {
            logger.LogWarning("refused a snapshot of {Namespace}/{Capture} from {Peer}: {Refusal}", ns, name, context.Connection.RemoteIpAddress, refusal);
            await SubresourcesApi.WriteStatusAsync(context, 401, "Unauthorized", refusal!);
            return;
        }

        try
        {
            var (allowed, reason) = await access.MayAsync(user, ns, name, ExtensionApi.Snapshot, "create", cancellationToken);
            if (!allowed)
            {
                logger.LogWarning("denied a snapshot of {Namespace}/{Capture} to {User}: {Reason}", ns, name, user, reason);
            }

            if (await SubresourcesApi.ReadCaptureAsync(context, kubernetes, user, allowed, "create", ns, name, ExtensionApi.Snapshot) is not { } capture)
            {
                return;
            }

            if (Refusal(capture, context.Request.Query["pod"].FirstOrDefault(), out var targets) is { } problem)
            {
                await SubresourcesApi.WriteStatusAsync(context, problem.Code, problem.Reason, problem.Message, name);
                return;
            }

            var asked = new List<string>();
            foreach (var target in targets)
            {
                var identity = new CaptureIdentity(capture.Metadata.Uid, ns, name, target.Pod);
                if (await AskAsync(identity, user.Name, null, cancellationToken) is { } notConnected)
                {
                    await SubresourcesApi.WriteStatusAsync(context, 409, "Conflict",
                        $"{notConnected}{(asked.Count == 0 ? "" : $" (asked of pod {string.Join(", ", asked)} already)")}", name);
                    return;
                }

                asked.Add(target.Pod);
            }

            var message = $"{user.Name} asked for a snapshot of pod {string.Join(", ", asked)}: it is listed in status.snapshots once stored";
            logger.LogInformation("{Namespace}/{Capture}: {User} asked for a snapshot of pod {Pods}", ns, name, user, string.Join(", ", asked));
            await events.OnCaptureAsync(capture, "Normal", "SnapshotRequested", message, cancellationToken);
            context.Response.StatusCode = StatusCodes.Status202Accepted;
            await SubresourcesApi.WriteJsonAsync(context, new JsonObject
            {
                ["kind"] = "Status",
                ["apiVersion"] = "v1",
                ["metadata"] = new JsonObject(),
                ["status"] = "Success",
                ["message"] = message,
                ["code"] = StatusCodes.Status202Accepted,
            });
        }
        catch (HttpOperationException e)
        {
            logger.LogError("snapshot of {Namespace}/{Capture} for {User}: the Kubernetes API answered {Status}: {Error}", ns, name, user, (int)e.Response.StatusCode, e.Message);
            await SubresourcesApi.WriteStatusAsync(context, 503, "ServiceUnavailable", $"the Kubernetes API answered {(int)e.Response.StatusCode} to the operator: {e.Response.Content}", name);
        }
        catch (HttpRequestException e)
        {
            await SubresourcesApi.WriteStatusAsync(context, 503, "ServiceUnavailable", $"the operator cannot reach the Kubernetes API: {e.Message}", name);
        }
    }

    /// <summary>
    /// Passes the snapshot to the target's agent through the stream it holds open to this replica, or
    /// (every replica ingests) to the replica holding that stream; null when asked, else why not.
    /// <paramref name="alert"/>: the Alertmanager alert that asked (the alert receiver), named as the trigger.
    /// </summary>
    internal async Task<string?> AskAsync(CaptureIdentity target, string requester, string? alert, CancellationToken cancellationToken)
    {
        if (registry.RequestSnapshot(target, requester, alert) is not { } notHere)
        {
            return null;
        }

        return relay is not null && await relay.AskSnapshotAsync(target, requester, alert, cancellationToken) is { } elsewhere ? elsewhere.Problem : notHere;
    }

    /// <summary>Why no snapshot can be asked of <paramref name="capture"/> (not a recording, ended, no such pod, none running yet), or null with the targets to ask.</summary>
    internal static (int Code, string Reason, string Message)? Refusal(PacketCapture capture, string? pod, out IReadOnlyList<CaptureTargetStatus> targets)
    {
        var name = capture.Metadata.Name;
        targets = [];
        if (capture.Spec.Recorder is null)
        {
            return (400, "BadRequest", $"capture {name} is not a flight recording (it has no spec.recorder): it has no ring to take a snapshot of; its pcap is downloaded with 'kubectl capture download {name}'");
        }

        if (CapturePhase.IsTerminal(capture.Status?.Phase))
        {
            return (409, "Conflict", $"capture {name} has ended ({capture.Status!.Phase}): its recorders stopped, so no snapshot can be taken; those taken are in status.snapshots");
        }

        if (pod is { Length: > 0 })
        {
            var (chosen, problem) = CaptureDownloads.ChooseTarget(capture, pod);
            targets = chosen is null ? [] : [chosen];
            return problem;
        }

        targets = [.. capture.Status?.Targets ?? []];
        return targets.Count == 0
            ? (409, "Conflict", $"capture {name} has no target pod yet (phase {capture.Status?.Phase ?? CapturePhase.Pending}); try again when it records")
            : null;
    }
}
