using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Reconciliation;

namespace KubeCapture.Operator.Alerts;

/// <summary>
/// One rule of <c>AlertReceiver:CaptureRules</c> (chart <c>alertReceiver.captureRules</c>): a firing
/// alert named in <see cref="AlertNames"/>, with every label of <see cref="MatchLabels"/>, for a pod of
/// one of <see cref="Namespaces"/> (none: any) that no flight recording records, has the operator create
/// a PacketCapture of that pod with the spec of <see cref="Capture"/> (its filter, snaplen, duration,
/// limits and retention; the target and reason are the alert's). The cluster's administrator writes the
/// rules, and each capture is held to the same policy as any other: so an alert can start a capture only
/// where the chart's owner said it may, and only as the policy allows.
/// </summary>
public sealed record AlertCaptureRule(string Name, IReadOnlyList<string> AlertNames, IReadOnlyDictionary<string, string> MatchLabels, IReadOnlyList<string> Namespaces, PacketCaptureSpec Capture)
{
    /// <summary>The label on a capture created for an alert: the rule's name.</summary>
    public const string RuleLabel = "kubecapture.io/alert-rule";

    /// <summary>The annotation on a capture created for an alert: the alert (name, fingerprint, startsAt).</summary>
    public const string AlertAnnotation = "kubecapture.io/alert";

    private const string Setting = "AlertReceiver:CaptureRules (chart: alertReceiver.captureRules)";

    /// <summary>The fields of a PacketCapture's spec a rule's capture may set; the others are the alert's (target, reason) or make no sense for it.</summary>
    private static readonly Dictionary<string, string> NotInTemplate = new(StringComparer.Ordinal)
    {
        ["target"] = "the target is the pod the alert names",
        ["reason"] = "the reason is the alert and the rule",
        ["stop"] = "a capture created for an alert runs for its duration (stop it with kubectl capture stop)",
        ["recorder"] = "a capture created for an alert captures from then on; a flight recording started then would keep nothing from before the alert (run a recording beforehand: its snapshot is taken by the alert)",
    };

    private static readonly JsonSerializerOptions Strict = new() { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow };

    /// <summary>
    /// The rules of <paramref name="json"/> (a JSON array, as the chart renders the values list; empty or
    /// null: none), each checked against <paramref name="policy"/> for every namespace it names: a rule the
    /// policy would refuse is a setting the operator cannot run with, so it says so at start, naming the
    /// rule and the field, instead of answering every alert with a refused capture.
    /// </summary>
    public static IReadOnlyList<AlertCaptureRule> ParseAll(string? json, CapturePolicy policy)
    {
        if (string.IsNullOrWhiteSpace(json))
        {
            return [];
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new OperatorConfigurationException($"{Setting} is not JSON: {e.Message}");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Array)
            {
                throw new OperatorConfigurationException($"{Setting} is a JSON {document.RootElement.ValueKind.ToString().ToLowerInvariant()}, not a list of rules");
            }

            var rules = new List<AlertCaptureRule>();
            var index = 0;
            foreach (var element in document.RootElement.EnumerateArray())
            {
                var rule = Parse(element, $"alertReceiver.captureRules[{index++}]", policy);
                if (rules.Any(r => r.Name == rule.Name))
                {
                    throw new OperatorConfigurationException($"{Setting}: two rules are named '{rule.Name}': a rule's name is in the names of the captures it creates, so each must be unique");
                }

                rules.Add(rule);
            }

            return rules;
        }
    }

    /// <summary>Whether this rule applies to firing <paramref name="alert"/> about a pod of <paramref name="ns"/>.</summary>
    public bool Matches(AlertmanagerAlert alert, string ns) =>
        alert.Status == AlertmanagerAlert.Firing
        && AlertNames.Contains(alert.Name, StringComparer.Ordinal)
        && MatchLabels.All(l => alert.Labels.TryGetValue(l.Key, out var value) && value == l.Value)
        && (Namespaces.Count == 0 || Namespaces.Contains(ns, StringComparer.Ordinal));

    /// <summary>
    /// The PacketCapture this rule creates for <paramref name="alert"/> about <paramref name="ns"/>/<paramref name="pod"/>.
    /// Its name is the same for every notification of this firing of the alert (so a re-send, or another
    /// replica given the same notification, finds it exists: one capture per alert, pod and rule) and new
    /// when the alert fires again after it resolved.
    /// </summary>
    public PacketCapture CaptureFor(AlertmanagerAlert alert, string ns, string pod)
    {
        var spec = JsonSerializer.Deserialize<PacketCaptureSpec>(JsonSerializer.Serialize(Capture))!;
        spec.Target = new CaptureTarget { PodName = pod };
        spec.Reason = $"Alertmanager alert {alert.Describe} about pod {ns}/{pod}: created by the alert receiver's rule {Name}";
        return new PacketCapture
        {
            Metadata = new V1ObjectMeta
            {
                Name = CaptureName(pod, alert),
                NamespaceProperty = ns,
                Labels = new Dictionary<string, string> { [RuleLabel] = Name },
                Annotations = new Dictionary<string, string> { [AlertAnnotation] = alert.Describe },
            },
            Spec = spec,
        };
    }

    /// <summary>
    /// The capture this rule created for <paramref name="pod"/> that has not ended yet, among
    /// <paramref name="captures"/> (its namespace's), or null: while one captures the pod, another alert
    /// about it (another firing, another alert name the rule lists) creates none, so an alert storm never
    /// piles capture containers onto one pod (they cannot be removed from it until it restarts).
    /// </summary>
    public PacketCapture? UnendedCaptureOf(string pod, IEnumerable<PacketCapture> captures) =>
        captures.FirstOrDefault(c => c.Metadata.Labels is { } labels && labels.TryGetValue(RuleLabel, out var rule) && rule == Name && c.Spec.Target.PodName == pod && !CapturePhase.IsTerminal(c.Status?.Phase));

    /// <summary>
    /// <c>RULE-POD-HASH</c>, at most 63 characters (a DNS label, as kubectl and the labels that name a
    /// capture need): the rule and the pod cut to fit, then 10 hex digits of the SHA-256 of the rule,
    /// pod, fingerprint and startsAt, which tell two alerts apart whatever was cut.
    /// </summary>
    public string CaptureName(string pod, AlertmanagerAlert alert)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{Name}\n{pod}\n{alert.Key}")))[..10];
        var readable = new string($"{Name}-{pod}".ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray());
        readable = readable[..Math.Min(readable.Length, 63 - 1 - hash.Length)].TrimEnd('-');
        return $"{readable}-{hash}";
    }

    private static AlertCaptureRule Parse(JsonElement element, string at, CapturePolicy policy)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new OperatorConfigurationException($"{at} is not an object: a rule has name, alertNames, optionally matchLabels and namespaces, and capture");
        }

        var known = new[] { "name", "alertNames", "matchLabels", "namespaces", "capture" };
        if (element.EnumerateObject().Select(p => p.Name).FirstOrDefault(n => !known.Contains(n, StringComparer.Ordinal)) is { } unknown)
        {
            throw new OperatorConfigurationException($"{at}.{unknown}: no such field (a rule has {string.Join(", ", known)})");
        }

        var name = AlertmanagerNotification.Text(element, "name");
        if (name is null || !IsDnsLabel(name) || name.Length > 30)
        {
            throw new OperatorConfigurationException($"{at}.name {(name is null ? "is missing" : $"'{name}' is not a DNS label of at most 30 characters")}: it names the rule, and begins the names of the captures it creates");
        }

        at = $"{at} ({name})";
        var alertNames = Strings(element, "alertNames", at);
        if (alertNames.Count == 0)
        {
            throw new OperatorConfigurationException($"{at}.alertNames is missing or empty: name the alerts (their alertname label) that create a capture, so no other alert does");
        }

        var namespaces = Strings(element, "namespaces", at);
        var matchLabels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (element.TryGetProperty("matchLabels", out var labels))
        {
            if (labels.ValueKind != JsonValueKind.Object || labels.EnumerateObject().Any(l => l.Value.ValueKind != JsonValueKind.String))
            {
                throw new OperatorConfigurationException($"{at}.matchLabels is not a map of label names to strings");
            }

            foreach (var label in labels.EnumerateObject())
            {
                matchLabels[label.Name] = label.Value.GetString()!;
            }
        }

        if (!element.TryGetProperty("capture", out var capture) || capture.ValueKind != JsonValueKind.Object)
        {
            throw new OperatorConfigurationException($"{at}.capture is missing or not an object: it is the spec of the capture created (at least its duration)");
        }

        if (capture.EnumerateObject().Select(p => p.Name).FirstOrDefault(NotInTemplate.ContainsKey) is { } field)
        {
            throw new OperatorConfigurationException($"{at}.capture.{field} cannot be set: {NotInTemplate[field]}");
        }

        PacketCaptureSpec spec;
        try
        {
            spec = capture.Deserialize<PacketCaptureSpec>(Strict)!;
        }
        catch (JsonException e)
        {
            throw new OperatorConfigurationException($"{at}.capture is not a PacketCapture's spec: {e.Message}");
        }

        var rule = new AlertCaptureRule(name, alertNames, matchLabels, namespaces, spec);
        foreach (var ns in namespaces.Count > 0 ? namespaces : [policy.AllowedNamespaces.FirstOrDefault() ?? "default"])
        {
            var sample = rule.CaptureFor(new AlertmanagerAlert(AlertmanagerAlert.Firing, new Dictionary<string, string> { ["alertname"] = alertNames[0] }, "0", DateTimeOffset.UnixEpoch), ns, "pod");
            if (policy.Check(sample) is { Allowed: false } verdict)
            {
                throw new OperatorConfigurationException($"{at}: the captures it creates{(namespaces.Count > 0 ? $" in namespace {ns}" : "")} would be refused ({verdict.Reason}): {verdict.Message.Replace("spec.", "capture.", StringComparison.Ordinal)}");
            }
        }

        return rule;
    }

    private static List<string> Strings(JsonElement element, string field, string at)
    {
        if (!element.TryGetProperty(field, out var list))
        {
            return [];
        }

        if (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String || e.GetString()!.Length == 0))
        {
            throw new OperatorConfigurationException($"{at}.{field} is not a list of non-empty strings");
        }

        return [.. list.EnumerateArray().Select(e => e.GetString()!)];
    }

    private static bool IsDnsLabel(string name) =>
        name.Length is > 0 and <= 63 && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-') && char.IsAsciiLetterOrDigit(name[0]) && char.IsAsciiLetterOrDigit(name[^1]);
}
