using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Metrics;
using KubeCapture.Operator.Subresources;

namespace KubeCapture.Operator.Alerts;

/// <summary>
/// POST <see cref="Path"/> on the extension API's HTTPS listener: Alertmanager's webhook receiver. A
/// notification with the receiver's bearer token (<see cref="AlertReceiverToken"/>) has each firing
/// alert that names a recording's pod (<see cref="AlertTargets"/>) snapshot it, through the same path
/// as <c>kubectl capture snapshot</c> (the agent, through the replica holding its stream), with
/// requester <c>alertmanager</c> and the alert (name, fingerprint, startsAt) as the trigger's detail;
/// once per alert and pod (<see cref="AlertSnapshotClaims"/>). An alert about a pod no recording records
/// takes nothing, unless a rule of the receiver says to create a capture of it (<see cref="AlertCaptures"/>). The answer: 401 for a wrong or missing
/// token; 400 for a body that is not a version 4 notification; 413 over <see cref="MaxBodyBytes"/>; 503
/// when an alert's recording could not be reached now or the Kubernetes API failed (Alertmanager
/// retries 5xx; alerts already asked are not asked twice); else 200, with what became of each alert
/// (also logged and counted), an alert for a pod with no recorder included: Alertmanager never
/// retries a 4xx, and sending it again would not change it.
/// </summary>
public sealed class AlertReceiver(
    IKubernetes kubernetes,
    AlertReceiverToken token,
    AlertSnapshotClaims claims,
    AlertCaptures captures,
    CaptureSnapshots snapshots,
    CaptureEvents events,
    ILogger<AlertReceiver> logger)
{
    public const string Path = "/alerts/v1/alertmanager";

    /// <summary>The requester named in an alert's snapshot (its manifest, status.snapshots, the audit line's actor).</summary>
    public const string Requester = "alertmanager";

    public const int MaxBodyBytes = 4 << 20;

    public async Task HandleAsync(HttpContext context)
    {
        var code = await ServeAsync(context);
        OperatorMetrics.AlertNotifications.Add(1, new KeyValuePair<string, object?>("code", code.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    private async Task<int> ServeAsync(HttpContext context)
    {
        var peer = context.Connection.RemoteIpAddress;
        if (!token.IsLoaded)
        {
            return await AnswerAsync(context, 503, $"the alert receiver's token ({token.Describe}) is not read yet: see the operator's log; Alertmanager sends the notification again");
        }

        if (token.Refusal(context.Request.Headers.Authorization.FirstOrDefault()) is { } refusal)
        {
            logger.LogWarning("alert receiver: refused a notification from {Peer}: {Refusal}", peer, refusal);
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return await AnswerAsync(context, 401, refusal);
        }

        if (await ReadBodyAsync(context) is not { } body)
        {
            return await AnswerAsync(context, 413, $"the notification is larger than {MaxBodyBytes >> 20} MiB: lower max_alerts in Alertmanager's webhook_config");
        }

        var (notification, problem) = AlertmanagerNotification.Parse(body);
        if (notification is null)
        {
            logger.LogWarning("alert receiver: refused a notification from {Peer}: {Problem}", peer, problem);
            return await AnswerAsync(context, 400, problem!);
        }

        List<AlertDecision> decisions;
        try
        {
            decisions = await DecideAsync(notification, context.RequestAborted);
        }
        catch (HttpOperationException e)
        {
            logger.LogError("alert receiver: the Kubernetes API answered {Status}: {Error}", (int)e.Response.StatusCode, e.Message);
            return await AnswerAsync(context, 503, $"the Kubernetes API answered {(int)e.Response.StatusCode} to the operator; Alertmanager sends the notification again");
        }
        catch (HttpRequestException e)
        {
            logger.LogError("alert receiver: the Kubernetes API cannot be reached: {Error}", e.Message);
            return await AnswerAsync(context, 503, $"the operator cannot reach the Kubernetes API ({e.Message}); Alertmanager sends the notification again");
        }

        foreach (var decision in decisions)
        {
            OperatorMetrics.AlertOutcomes.Add(1, new KeyValuePair<string, object?>("outcome", decision.OutcomeLabel));
            var level = decision.Outcome switch
            {
                AlertOutcome.Asked or AlertOutcome.AlreadyTaken or AlertOutcome.Resolved or AlertOutcome.Created or AlertOutcome.AlreadyCreated => LogLevel.Information,
                _ => LogLevel.Warning,
            };
            logger.Log(level, "alert receiver ({Receiver}): {Decision}", notification.Receiver, decision.Message);
        }

        var retry = decisions.Any(d => d.Retry);
        var status = retry ? 503 : 200;
        context.Response.StatusCode = status;
        await SubresourcesApi.WriteJsonAsync(context, new JsonObject
        {
            ["status"] = retry ? "retry: some alerts' recordings could not be reached now" : "ok",
            ["alerts"] = new JsonArray([.. decisions.Select(d => (JsonNode)new JsonObject
            {
                ["alertname"] = d.Alert.Name,
                ["fingerprint"] = d.Alert.Fingerprint,
                ["startsAt"] = d.Alert.StartsAtText,
                ["status"] = d.Alert.Status,
                ["outcome"] = d.OutcomeLabel,
                ["capture"] = d.Capture?.Metadata.Name,
                ["pod"] = d.Pod,
                ["message"] = d.Message,
            })]),
        });
        return status;
    }

    /// <summary>Every alert's decisions, with the snapshots claimed and asked.</summary>
    private async Task<List<AlertDecision>> DecideAsync(AlertmanagerNotification notification, CancellationToken cancellationToken)
    {
        var inNamespace = new Dictionary<string, List<PacketCapture>>(StringComparer.Ordinal);
        var decisions = new List<AlertDecision>();
        foreach (var alert in notification.Alerts)
        {
            List<PacketCapture>? existing = null;
            if (alert.Status == AlertmanagerAlert.Firing && AlertTargets.NamespaceOf(alert) is { } ns && !inNamespace.TryGetValue(ns, out existing))
            {
                var list = await kubernetes.CustomObjects.ListNamespacedCustomObjectAsync<PacketCaptureList>(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, cancellationToken: cancellationToken);
                inNamespace[ns] = existing = [.. list.Items];
            }

            decisions.AddRange(AlertTargets.Decide(alert, existing ?? []));
        }

        // A pod no recording records: the first rule that matches the alert creates a capture of it.
        foreach (var (decision, index) in decisions.Select((d, i) => (d, i)).ToList())
        {
            if (captures.RuleFor(decision) is { } rule)
            {
                decisions[index] = await captures.CreateAsync(decision, rule, inNamespace[AlertTargets.NamespaceOf(decision.Alert)!], cancellationToken);
            }
        }

        // One claim per alert and pod, one patch per recording; one snapshot per recording's pod per notification.
        foreach (var recording in decisions.Where(d => d.Outcome == AlertOutcome.ToAsk).GroupBy(d => d.Capture!.Metadata.Uid).ToList())
        {
            var capture = recording.First().Capture!;
            var claimed = await claims.ClaimAsync(capture, [.. recording.Select(d => AlertSnapshotClaims.ClaimOf(d.Pod!, d.Alert))], cancellationToken);
            var asked = new Dictionary<string, AlertDecision>(StringComparer.Ordinal);
            var released = new List<string>();
            foreach (var decision in recording)
            {
                var claim = AlertSnapshotClaims.ClaimOf(decision.Pod!, decision.Alert);
                var capturing = $"capture {capture.Metadata.NamespaceProperty}/{capture.Metadata.Name}";
                AlertDecision outcome;
                if (!claimed.Contains(claim))
                {
                    outcome = decision with { Outcome = AlertOutcome.AlreadyTaken, Message = $"alert {decision.Alert.Describe}: a notification of this alert already asked for the snapshot of pod {decision.Pod} by {capturing}: none again" };
                }
                else if (asked.TryGetValue(decision.Pod!, out var first))
                {
                    outcome = decision with
                    {
                        Outcome = first.Outcome,
                        Message = first.Outcome == AlertOutcome.Asked
                            ? $"alert {decision.Alert.Describe}: pod {decision.Pod} by {capturing} is snapshotted for alert {first.Alert.Name} of the same notification"
                            : $"alert {decision.Alert.Describe}: {first.Message}",
                    };
                    if (first.Outcome != AlertOutcome.Asked)
                    {
                        released.Add(claim);
                    }
                }
                else
                {
                    var identity = new CaptureIdentity(capture.Metadata.Uid, capture.Metadata.NamespaceProperty, capture.Metadata.Name, decision.Pod!);
                    if (await snapshots.AskAsync(identity, Requester, decision.Alert.Describe, cancellationToken) is { } notReached)
                    {
                        outcome = decision with { Outcome = AlertOutcome.NotReached, Message = $"alert {decision.Alert.Describe}: {notReached}; asking Alertmanager to send it again" };
                        released.Add(claim);
                    }
                    else
                    {
                        outcome = decision with { Outcome = AlertOutcome.Asked, Message = $"alert {decision.Alert.Describe} asked for a snapshot of pod {decision.Pod} by {capturing}: it is listed in status.snapshots once stored" };
                        await events.OnCaptureAsync(capture, "Normal", "SnapshotRequested", $"Alertmanager alert {decision.Alert.Describe} asked for a snapshot of pod {decision.Pod}: it is listed in status.snapshots once stored", cancellationToken);
                    }

                    asked[decision.Pod!] = outcome;
                }

                decisions[decisions.IndexOf(decision)] = outcome;
            }

            if (released.Count > 0)
            {
                await claims.ReleaseAsync(capture, released, cancellationToken);
            }
        }

        return decisions;
    }

    private static async Task<byte[]?> ReadBodyAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while ((read = await context.Request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
        {
            if (body.Length + read > MaxBodyBytes)
            {
                return null;
            }

            body.Write(buffer, 0, read);
        }

        return body.ToArray();
    }

    private static async Task<int> AnswerAsync(HttpContext context, int code, string message)
    {
        context.Response.StatusCode = code;
        await SubresourcesApi.WriteJsonAsync(context, new JsonObject { ["status"] = "refused", ["message"] = message });
        return code;
    }
}
