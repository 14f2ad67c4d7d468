using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Reconciliation;

namespace KubeCapture.Operator.Alerts;

/// <summary>
/// The captures the alert receiver's rules (<see cref="AlertCaptureRule"/>) create: for a firing alert
/// about a pod that no flight recording records, the first rule that matches has the operator create a
/// PacketCapture of that pod, as its own ServiceAccount (the requester stamp names it; the reason names
/// the alert and the rule), held to the policy as any capture is (one it would refuse is not created). One capture per alert, pod and rule:
/// its name comes from the alert's fingerprint and startsAt, so a re-sent notification, or the same one
/// given to another replica, finds it exists (409) and creates nothing.
/// </summary>
public sealed class AlertCaptures(IKubernetes kubernetes, IReadOnlyList<AlertCaptureRule> rules, CapturePolicy policy, CaptureEvents events)
{
    public IReadOnlyList<AlertCaptureRule> Rules => rules;

    /// <summary>The rule that creates a capture for <paramref name="decision"/> (an alert for a pod no recording records), or null.</summary>
    public AlertCaptureRule? RuleFor(AlertDecision decision) =>
        decision.Outcome == AlertOutcome.NoRecorder && PodOf(decision.Alert) is ({ } ns, { })
            ? rules.FirstOrDefault(r => r.Matches(decision.Alert, ns))
            : null;

    /// <summary>
    /// What became of <paramref name="decision"/> once <paramref name="rule"/>'s capture is created (or
    /// found created, or still capturing the pod for another alert, or refused); <paramref name="captures"/>
    /// are the namespace's, and a capture created is added to them.
    /// </summary>
    public async Task<AlertDecision> CreateAsync(AlertDecision decision, AlertCaptureRule rule, List<PacketCapture> captures, CancellationToken cancellationToken)
    {
        var (ns, pod) = PodOf(decision.Alert);
        var alert = decision.Alert.Describe;
        AlertDecision Taken(PacketCapture capture) => decision with
        {
            Outcome = AlertOutcome.AlreadyCreated,
            Capture = capture,
            Pod = pod,
            Message = $"alert {alert}: a notification of this alert already created capture {ns}/{capture.Metadata.Name} (rule {rule.Name}): none again",
        };

        var name = rule.CaptureName(pod!, decision.Alert);
        if (captures.FirstOrDefault(c => c.Metadata.Name == name) is { } same)
        {
            return Taken(same);
        }

        if (rule.UnendedCaptureOf(pod!, captures) is { } unended)
        {
            return decision with
            {
                Outcome = AlertOutcome.AlreadyCreated,
                Capture = unended,
                Pod = pod,
                Message = $"alert {alert}: capture {ns}/{unended.Metadata.Name} of rule {rule.Name} has not ended ({unended.Status?.Phase ?? CapturePhase.Pending}): it captures pod {pod} for {(unended.Metadata.Annotations is { } annotations && annotations.TryGetValue(AlertCaptureRule.AlertAnnotation, out var other) ? other : "another alert")}; none again",
            };
        }

        var capture = rule.CaptureFor(decision.Alert, ns!, pod!);
        var named = $"capture {ns}/{capture.Metadata.Name}";
        if (policy.Check(capture) is { Allowed: false } verdict)
        {
            // A rule naming no namespaces, for an alert from one the policy closes (rules are checked at start for the namespaces they name).
            return decision with { Outcome = AlertOutcome.CreateRefused, Pod = pod, Message = $"alert {alert}: rule {rule.Name} creates no {named}: the policy would refuse it ({verdict.Reason}): {verdict.Message}" };
        }

        try
        {
            await kubernetes.CoreV1.ReadNamespacedPodAsync(pod, ns, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return decision with { Message = $"alert {alert}: there is no pod {ns}/{pod}: rule {rule.Name} creates no capture" };
        }

        try
        {
            var created = await kubernetes.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(capture, PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, cancellationToken: cancellationToken);
            captures.Add(created);
            await events.OnCaptureAsync(created, "Normal", "CreatedForAlert", $"created for Alertmanager alert {alert} by the alert receiver's rule {rule.Name}", cancellationToken);
            return decision with { Outcome = AlertOutcome.Created, Capture = created, Pod = pod, Message = $"alert {alert}: no flight recording records pod {ns}/{pod}; rule {rule.Name} created {named} (its status tells what it captures)" };
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
        {
            return Taken(capture);
        }
        catch (HttpOperationException e) when ((int)e.Response.StatusCode is >= 400 and < 500 and not 429)
        {
            // Refused by kube-apiserver (the CRD's schema, RBAC, an admission webhook): sending it again changes nothing.
            return decision with { Outcome = AlertOutcome.CreateRefused, Pod = pod, Message = $"alert {alert}: rule {rule.Name} could not create {named}: kube-apiserver answered {(int)e.Response.StatusCode}: {ContainerInjection.StatusMessage(e)}" };
        }
    }

    private static (string? Namespace, string? Pod) PodOf(AlertmanagerAlert alert) => (AlertTargets.NamespaceOf(alert), AlertTargets.PodOf(alert));
}
