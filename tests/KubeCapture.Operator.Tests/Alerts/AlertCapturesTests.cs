using System.Text;
using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Alerts;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.Alerts;

/// <summary>What the receiver's rules decide before asking kube-apiserver anything (the client here reaches no server: a request fails the test); creating is in AlertReceiverEndToEndTests.</summary>
public sealed class AlertCapturesTests
{
    private const string AnyNamespace = """[{"name":"page","alertNames":["CheckoutResets"],"capture":{"duration":"1m"}}]""";

    [Fact]
    public async Task An_alert_from_a_namespace_the_policy_closes_creates_nothing_and_says_the_policy_would_refuse_it()
    {
        var policy = new CapturePolicy { AllowedNamespaces = ["shop"] };
        var captures = Captures(AlertCaptureRule.ParseAll(AnyNamespace, policy), policy);
        var decision = Assert.Single(AlertTargets.Decide(Alert("billing", "ledger-0"), []));
        var rule = captures.RuleFor(decision);
        Assert.NotNull(rule);

        var outcome = await captures.CreateAsync(decision, rule, [], CancellationToken.None);

        Assert.Equal((AlertOutcome.CreateRefused, "create_refused"), (outcome.Outcome, outcome.OutcomeLabel));
        Assert.Contains("rule page creates no capture billing/page-ledger-0-", outcome.Message, StringComparison.Ordinal);
        Assert.EndsWith(": the policy would refuse it (NamespaceNotAllowed): captures are not allowed in namespace 'billing' (policy allows: shop)", outcome.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_re_sent_alert_whose_capture_is_listed_is_already_created_without_a_request()
    {
        var policy = new CapturePolicy();
        var captures = Captures(AlertCaptureRule.ParseAll(AnyNamespace, policy), policy);
        var decision = Assert.Single(AlertTargets.Decide(Alert("shop", "db-0"), []));
        var rule = captures.RuleFor(decision)!;
        var listed = rule.CaptureFor(decision.Alert, "shop", "db-0");
        listed.Status = new PacketCaptureStatus { Phase = CapturePhase.Succeeded };

        var outcome = await captures.CreateAsync(decision, rule, [listed], CancellationToken.None);

        Assert.Equal((AlertOutcome.AlreadyCreated, listed), (outcome.Outcome, outcome.Capture));
        Assert.EndsWith($"a notification of this alert already created capture shop/{listed.Metadata.Name} (rule page): none again", outcome.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Only_an_alert_about_a_pod_no_recording_records_has_a_rule_create_a_capture()
    {
        var policy = new CapturePolicy();
        var captures = Captures(AlertCaptureRule.ParseAll(AnyNamespace, policy), policy);
        var recording = new PacketCapture
        {
            Metadata = new() { Name = "db-resets", NamespaceProperty = "shop" },
            Spec = new PacketCaptureSpec { Recorder = new RecorderSpec { Window = "1m" } },
            Status = new PacketCaptureStatus { Phase = CapturePhase.Running, Targets = [new CaptureTargetStatus { Pod = "db-0", State = TargetState.Capturing }] },
        };

        Assert.Null(captures.RuleFor(Assert.Single(AlertTargets.Decide(Alert("shop", "db-0"), [recording]))));
        Assert.Null(captures.RuleFor(Assert.Single(AlertTargets.Decide(Alert("shop", "db-0", "resolved"), []))));
        Assert.NotNull(captures.RuleFor(Assert.Single(AlertTargets.Decide(Alert("shop", "db-1"), [recording]))));
    }

    private static AlertCaptures Captures(IReadOnlyList<AlertCaptureRule> rules, CapturePolicy policy)
    {
        var nowhere = new Kubernetes(new KubernetesClientConfiguration { Host = "http://127.0.0.1:1" });
        return new AlertCaptures(nowhere, rules, policy, new CaptureEvents(nowhere, NullLogger<CaptureEvents>.Instance, TimeProvider.System));
    }

    private static AlertmanagerAlert Alert(string ns, string pod, string status = "firing") =>
        TestAlert.Of(status, [("alertname", "CheckoutResets"), ("namespace", ns), ("pod", pod)]);
}
