using System.Text;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Alerts;
using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Reconciliation;

namespace KubeCapture.Operator.Tests.Alerts;

/// <summary>The alert receiver's capture rules as the chart renders them (a JSON list): what they match, the capture they make, and every bad rule refused at start naming it (the cluster path is in AlertReceiverEndToEndTests).</summary>
public sealed class AlertCaptureRuleTests
{
    private const string Rule = """[{"name":"checkout-resets","alertNames":["CheckoutResets","CheckoutStalls"],"matchLabels":{"severity":"page"},"namespaces":["shop"],"capture":{"duration":"2m","filter":"tcp port 5432","snaplen":96,"maxBytes":"64Mi"}}]""";

    [Fact]
    public void A_rule_matches_a_firing_alert_it_names_with_every_label_it_asks_for_in_a_namespace_it_names_and_nothing_else()
    {
        var rule = Assert.Single(AlertCaptureRule.ParseAll(Rule, new CapturePolicy()));

        Assert.True(rule.Matches(Alert("CheckoutStalls", "firing", ("severity", "page")), "shop"));
        Assert.False(rule.Matches(Alert("CheckoutStalls", "firing", ("severity", "ticket")), "shop"));
        Assert.False(rule.Matches(Alert("CheckoutStalls", "firing"), "shop"));
        Assert.False(rule.Matches(Alert("CartDown", "firing", ("severity", "page")), "shop"));
        Assert.False(rule.Matches(Alert("CheckoutStalls", "firing", ("severity", "page")), "billing"));
        Assert.False(rule.Matches(Alert("CheckoutStalls", "resolved", ("severity", "page")), "shop"));
    }

    [Fact]
    public void The_capture_made_for_an_alert_targets_its_pod_with_the_rules_spec_the_alert_as_reason_and_a_name_each_re_send_shares()
    {
        var rule = Assert.Single(AlertCaptureRule.ParseAll(Rule, new CapturePolicy()));
        var alert = Alert("CheckoutResets", "firing", ("severity", "page"));

        var capture = rule.CaptureFor(alert, "shop", "db-0");

        Assert.Equal(("shop", "db-0", null), (capture.Metadata.NamespaceProperty, capture.Spec.Target.PodName, capture.Spec.Target.PodSelector));
        Assert.Equal(("2m", "tcp port 5432", 96, "64Mi"), (capture.Spec.Duration, capture.Spec.Filter, capture.Spec.Snaplen, capture.Spec.MaxBytes));
        Assert.Equal("Alertmanager alert CheckoutResets (fingerprint f1, startsAt 2026-12-06T10:48:58Z) about pod shop/db-0: created by the alert receiver's rule checkout-resets", capture.Spec.Reason);
        Assert.Equal("checkout-resets", capture.Metadata.Labels[AlertCaptureRule.RuleLabel]);
        Assert.Equal(alert.Describe, capture.Metadata.Annotations[AlertCaptureRule.AlertAnnotation]);
        Assert.Equal(capture.Metadata.Name, rule.CaptureFor(Alert("CheckoutResets", "firing", ("severity", "page")), "shop", "db-0").Metadata.Name);
        Assert.NotEqual(capture.Metadata.Name, rule.CaptureFor(Alert("CheckoutResets", "firing", "2026-12-06T11:00:00Z", ("severity", "page")), "shop", "db-0").Metadata.Name);
        Assert.NotEqual(capture.Metadata.Name, rule.CaptureFor(alert, "shop", "db-1").Metadata.Name);
        Assert.Null(rule.Capture.Target.PodName); // the rule's own spec is not changed by a capture made from it
    }

    [Fact]
    public void A_capture_name_is_a_dns_label_of_at_most_63_characters_however_long_the_pod_name()
    {
        var rule = Assert.Single(AlertCaptureRule.ParseAll(Rule, new CapturePolicy()));
        var pod = "checkout.payments-" + new string('x', 240);

        var name = rule.CaptureFor(Alert("CheckoutResets", "firing"), "shop", pod).Metadata.Name;

        Assert.InRange(name.Length, 1, 63);
        Assert.Matches("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name);
        Assert.StartsWith("checkout-resets-checkout-payments-xxx", name, StringComparison.Ordinal);
        Assert.NotEqual(name, rule.CaptureFor(Alert("CheckoutResets", "firing"), "shop", pod + "y").Metadata.Name);
    }

    [Fact]
    public void While_a_capture_the_rule_made_for_a_pod_has_not_ended_it_is_the_pods_and_no_other_rules_or_pods_or_ended_one_counts()
    {
        var rules = AlertCaptureRule.ParseAll(Rule.Replace("}]", "},{\"name\":\"other\",\"alertNames\":[\"X\"],\"capture\":{\"duration\":\"1m\"}}]", StringComparison.Ordinal), new CapturePolicy());
        var (rule, other) = (rules[0], rules[1]);
        var alert = Alert("CheckoutResets", "firing", ("severity", "page"));
        PacketCapture Made(AlertCaptureRule by, string pod, string? phase)
        {
            var capture = by.CaptureFor(alert, "shop", pod);
            capture.Status = phase is null ? null : new PacketCaptureStatus { Phase = phase };
            return capture;
        }

        var pending = Made(rule, "db-0", null);
        var running = Made(rule, "db-0", CapturePhase.Running);

        Assert.Same(pending, rule.UnendedCaptureOf("db-0", [Made(rule, "db-0", CapturePhase.Succeeded), pending]));
        Assert.Same(running, rule.UnendedCaptureOf("db-0", [Made(rule, "db-0", CapturePhase.Failed), running]));
        Assert.Null(rule.UnendedCaptureOf("db-0", [Made(rule, "db-0", CapturePhase.Succeeded), Made(rule, "db-1", CapturePhase.Running), Made(other, "db-0", CapturePhase.Running)]));
    }

    [Fact]
    public void No_rules_is_no_rule()
    {
        Assert.Empty(AlertCaptureRule.ParseAll("", new CapturePolicy()));
        Assert.Empty(AlertCaptureRule.ParseAll("[]", new CapturePolicy()));
    }

    [Theory]
    [InlineData("{}", "AlertReceiver:CaptureRules (chart: alertReceiver.captureRules) is a JSON object, not a list of rules")]
    [InlineData("""[{"alertNames":["A"],"capture":{"duration":"1m"}}]""", "alertReceiver.captureRules[0].name is missing: it names the rule")]
    [InlineData("""[{"name":"Page_Rule","alertNames":["A"],"capture":{"duration":"1m"}}]""", "alertReceiver.captureRules[0].name 'Page_Rule' is not a DNS label of at most 30 characters")]
    [InlineData("""[{"name":"page","capture":{"duration":"1m"}}]""", "alertReceiver.captureRules[0] (page).alertNames is missing or empty: name the alerts")]
    [InlineData("""[{"name":"page","alertName":["A"],"capture":{"duration":"1m"}}]""", "alertReceiver.captureRules[0].alertName: no such field (a rule has name, alertNames, matchLabels, namespaces, capture)")]
    [InlineData("""[{"name":"page","alertNames":["A"],"matchLabels":{"severity":1},"capture":{"duration":"1m"}}]""", "alertReceiver.captureRules[0] (page).matchLabels is not a map of label names to strings")]
    [InlineData("""[{"name":"page","alertNames":["A"]}]""", "alertReceiver.captureRules[0] (page).capture is missing or not an object")]
    [InlineData("""[{"name":"page","alertNames":["A"],"capture":{"duration":"1m","target":{"podName":"x"}}}]""", "alertReceiver.captureRules[0] (page).capture.target cannot be set: the target is the pod the alert names")]
    [InlineData("""[{"name":"page","alertNames":["A"],"capture":{"duration":"1m","recorder":{"window":"30s"}}}]""", "alertReceiver.captureRules[0] (page).capture.recorder cannot be set: a capture created for an alert captures from then on")]
    [InlineData("""[{"name":"page","alertNames":["A"],"capture":{"durration":"1m"}}]""", "alertReceiver.captureRules[0] (page).capture is not a PacketCapture's spec")]
    [InlineData("""[{"name":"page","alertNames":["A"],"capture":{}}]""", "alertReceiver.captureRules[0] (page): the captures it creates would be refused (InvalidSpec): capture.duration: required")]
    [InlineData("""[{"name":"page","alertNames":["A"],"capture":{"duration":"3h"}}]""", "alertReceiver.captureRules[0] (page): the captures it creates would be refused (PolicyExceeded)")]
    [InlineData("""[{"name":"page","alertNames":["A"],"capture":{"duration":"1m","filter":"tcp port"}}]""", "alertReceiver.captureRules[0] (page): the captures it creates would be refused (InvalidFilter)")]
    [InlineData("""[{"name":"page","alertNames":["A"],"capture":{"duration":"1m"}},{"name":"page","alertNames":["B"],"capture":{"duration":"1m"}}]""", "two rules are named 'page'")]
    public void A_bad_rule_stops_the_operator_at_start_with_an_error_naming_the_rule_and_the_field(string json, string message)
    {
        var e = Assert.Throws<OperatorConfigurationException>(() => AlertCaptureRule.ParseAll(json, new CapturePolicy()));

        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_rule_for_a_namespace_the_policy_does_not_allow_captures_in_is_refused_at_start()
    {
        var policy = new CapturePolicy { AllowedNamespaces = ["shop"] };
        Assert.Single(AlertCaptureRule.ParseAll("""[{"name":"page","alertNames":["A"],"capture":{"duration":"1m"}}]""", policy));

        var e = Assert.Throws<OperatorConfigurationException>(() => AlertCaptureRule.ParseAll("""[{"name":"page","alertNames":["A"],"namespaces":["shop","billing"],"capture":{"duration":"1m"}}]""", policy));

        Assert.Contains("alertReceiver.captureRules[0] (page): the captures it creates in namespace billing would be refused (NamespaceNotAllowed)", e.Message, StringComparison.Ordinal);
    }

    private static AlertmanagerAlert Alert(string name, string status, params (string Name, string Value)[] labels) => Alert(name, status, "2026-12-06T10:48:58Z", labels);

    private static AlertmanagerAlert Alert(string name, string status, string startsAt, params (string Name, string Value)[] labels) => TestAlert.Of(status, labels.Prepend(("alertname", name)), startsAt);
}
