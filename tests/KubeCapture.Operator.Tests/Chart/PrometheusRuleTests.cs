using System.Text.Json;
using KubeCapture.Operator.Tests.Metrics;
using KubeCapture.Testing.Processes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace KubeCapture.Operator.Tests.Chart;

/// <summary>
/// The chart's opt-in PrometheusRule, rendered by the real helm as users enable it, and each of its
/// alerts evaluated by the real promtool (`promtool test rules`) on series named and labelled exactly
/// as the real operator process exports them: a renamed metric, a changed label or a wrong expression fails here.
/// </summary>
public sealed class PrometheusRuleTests
{
    private static readonly string[] Enabled = ["--set", "metrics.prometheusRule.enabled=true"];

    [Fact]
    public async Task By_default_the_chart_renders_no_PrometheusRule_and_enabled_exactly_one()
    {
        Assert.DoesNotContain(await RenderAsync(), d => Kind(d) == "PrometheusRule");

        var rule = Assert.Single(await RenderAsync(Enabled), d => Kind(d) == "PrometheusRule");
        Assert.Equal("kc-kubecapture", Map(rule["metadata"])["name"]);
        Assert.Equal("kubecapture-system", Map(rule["metadata"])["namespace"]);
    }

    [Fact]
    public async Task Every_alert_has_a_severity_a_summary_a_description_and_its_runbook_row_in_the_operations_page()
    {
        var rules = Rules(await RenderAsync([.. Enabled, "--set", "metrics.prometheusRule.labels.release=prometheus", "--set", "metrics.prometheusRule.runbookUrl=https://example.com/kc/docs/operations.md"]));
        var operations = await File.ReadAllTextAsync(Path.Combine(Tools.RepositoryRoot, "docs", "operations.md"));

        Assert.Equal(["KubeCaptureCapturesFailing", "KubeCaptureCertificateExpiring", "KubeCaptureEventsDropped", "KubeCaptureIngestRefusingAgents", "KubeCaptureNoLeader", "KubeCaptureStorageErrors", "KubeCaptureUploadsFailing"],
            rules.Select(r => r.Alert).Distinct().Order());
        foreach (var rule in rules)
        {
            Assert.Contains(rule.Labels["severity"], new[] { "warning", "critical" });
            Assert.True(rule.Annotations.GetValueOrDefault("summary") is { Length: > 10 }, $"{rule.Alert}: no summary");
            Assert.True(rule.Annotations.GetValueOrDefault("description") is { Length: > 20 }, $"{rule.Alert}: no description");
            var anchor = rule.Alert.ToLowerInvariant();
            Assert.Equal($"https://example.com/kc/docs/operations.md#{anchor}", rule.Annotations["runbook_url"]);
            // The runbook is the operations page's row of that alert: its anchor, then its name.
            Assert.Contains($"<a id=\"{anchor}\"></a>`{rule.Alert}`", operations, StringComparison.Ordinal);
        }

        var rendered = Assert.Single(await RenderAsync([.. Enabled, "--set", "metrics.prometheusRule.labels.release=prometheus"]), d => Kind(d) == "PrometheusRule");
        Assert.Equal("prometheus", Map(Map(rendered["metadata"])["labels"])["release"]);
        var directory = Directory.CreateTempSubdirectory("kc-rules-").FullName;
        var file = await WriteRulesAsync(directory, rendered);
        var check = await HostCommand.RunAsync(Promtool, "check", "rules", file);
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
    }

    [Fact]
    public async Task Each_alert_fires_on_the_series_the_operator_exports_and_stays_silent_on_healthy_ones()
    {
        var metrics = await OperatorExposition.ScrapeAsync();
        var rendered = Assert.Single(await RenderAsync(Enabled), d => Kind(d) == "PrometheusRule");
        var rules = Rules([rendered]);

        // Each input series is a series of the real /metrics (its name and every label as exported), on a replica (pod).
        string Series(string pod, string metric, params string[] labels)
        {
            var (name, exported, _) = metrics.Sample(metric, labels);
            return $"{name}{{{(exported.Length > 0 ? exported + "," : "")}pod=\"{pod}\"}}";
        }

        var leaderA = Series("a", "kubecapture_leader");
        var leaderB = Series("b", "kubecapture_leader");
        var unauthenticated = Series("a", "kubecapture_ingest_streams_ended_total", "code=\"Unauthenticated\"");
        var permissionDenied = Series("a", "kubecapture_ingest_streams_ended_total", "code=\"PermissionDenied\"");
        var streamsOk = Series("a", "kubecapture_ingest_streams_ended_total", "code=\"OK\"");
        var uploadsFailed = Series("a", "kubecapture_ingest_uploads_total", "outcome=\"failed\"");
        var uploadsStored = Series("a", "kubecapture_ingest_uploads_total", "outcome=\"stored\"");
        var capturesFailed = Series("a", "kubecapture_captures_ended_total", "phase=\"Failed\"");
        var capturesSucceeded = Series("a", "kubecapture_captures_ended_total", "phase=\"Succeeded\"");
        var storageError = Series("a", "kubecapture_storage_request_duration_seconds_count", "operation=\"HeadBucket\"", "outcome=\"error\"");
        var backlogFull = Series("a", "kubecapture_events_dropped_total", "reason=\"backlog_full\"");
        var refusedEvents = Series("a", "kubecapture_events_dropped_total", "reason=\"refused\"");
        var retriesExhausted = Series("a", "kubecapture_events_dropped_total", "reason=\"retries_exhausted\"");
        var certificate = Series("a", "kubecapture_certificate_expiration_timestamp_seconds");

        // promtool's clock starts at 0 (so time() is the minutes evaluated so far, in seconds); one sample a minute.
        var scenarios = new List<Scenario>
        {
            new("no replica leads", [(leaderA, "0x15"), (leaderB, "0x15")], [10], "KubeCaptureNoLeader", [new()]),
            new("no replica is scraped", [(uploadsStored, "0x15")], [10], "KubeCaptureNoLeader", [new()]),
            new("one replica leads", [(leaderA, "1x15"), (leaderB, "0x15")], [10], "KubeCaptureNoLeader", null),
            new("the Lease changes hands within minutes", [(leaderA, "1x4 0x10"), (leaderB, "0x6 1x8")], [6, 8, 14], "KubeCaptureNoLeader", null),

            new("an agent with a wrong token", [(unauthenticated, "0 0 1x20"), (permissionDenied, "0x22"), (streamsOk, "0+1x22")], [5], "KubeCaptureIngestRefusingAgents", [new()]),
            new("an upload not from the pod's address", [(unauthenticated, "0x22"), (permissionDenied, "0 0 1x20")], [5], "KubeCaptureIngestRefusingAgents", [new()]),
            new("every stream ends OK", [(unauthenticated, "0x30"), (permissionDenied, "0x30"), (streamsOk, "0+3x30")], [20], "KubeCaptureIngestRefusingAgents", null),
            new("a refusal more than 15 minutes ago", [(unauthenticated, "0 1x40"), (permissionDenied, "0x41")], [30], "KubeCaptureIngestRefusingAgents", null),

            new("an upload failed", [(uploadsFailed, "0 0 1x20"), (uploadsStored, "0+1x22")], [5], "KubeCaptureUploadsFailing", [new()]),
            new("every upload is stored", [(uploadsFailed, "0x30"), (uploadsStored, "0+2x30")], [20], "KubeCaptureUploadsFailing", null),

            new("most captures fail", [(capturesFailed, "0+1x70"), (capturesSucceeded, "0x70")], [60], "KubeCaptureCapturesFailing", [new()]),
            new("failures among many successes", [(capturesFailed, "0+1x70"), (capturesSucceeded, "0+5x70")], [60], "KubeCaptureCapturesFailing", null),
            new("two failures in an hour", [(capturesFailed, "0x10 1x10 2x50"), (capturesSucceeded, "0x70")], [60], "KubeCaptureCapturesFailing", null),

            new("storage does not answer", [(storageError, "0+2x30")], [15], "KubeCaptureStorageErrors", [new()]),
            new("a 3-minute storage blip", [(storageError, "0 1 2 3x30")], [5, 12, 20], "KubeCaptureStorageErrors", null),
            new("no storage errors", [(storageError, "0x30")], [15], "KubeCaptureStorageErrors", null),

            new("Events dropped for a full backlog", [(backlogFull, "0 0 3x20"), (refusedEvents, "0x22"), (retriesExhausted, "0x22")], [5], "KubeCaptureEventsDropped", [new() { ["reason"] = "backlog_full" }]),
            new("no Event dropped", [(backlogFull, "0x30"), (refusedEvents, "0x30"), (retriesExhausted, "0x30")], [20], "KubeCaptureEventsDropped", null),

            new("a certificate 10 days from expiry", [(certificate, $"{10 * 86400}x120")], [90], "KubeCaptureCertificateExpiring", [new() { ["severity"] = "warning" }]),
            new("a certificate 1 day from expiry", [(certificate, $"{86400}x100")], [70], "KubeCaptureCertificateExpiring", [new() { ["severity"] = "warning" }, new() { ["severity"] = "critical" }]),
            new("a certificate 30 days from expiry", [(certificate, $"{30 * 86400}x120")], [90], "KubeCaptureCertificateExpiring", null),
            new("a certificate renewed in time", [(certificate, $"{10 * 86400}x30 {30 * 86400}x90")], [90], "KubeCaptureCertificateExpiring", null),
        };

        // Every alert is shown both firing and silent.
        foreach (var alert in rules.Select(r => r.Alert).Distinct())
        {
            Assert.Contains(scenarios, s => s.Alert == alert && s.Fired is not null);
            Assert.Contains(scenarios, s => s.Alert == alert && s.Fired is null);
        }

        var directory = Directory.CreateTempSubdirectory("kc-rules-").FullName;
        await WriteRulesAsync(directory, rendered);
        var tests = new
        {
            rule_files = new[] { "rules.yaml" },
            evaluation_interval = "1m",
            tests = scenarios.Select(s => new
            {
                name = s.Name,
                interval = "1m",
                input_series = s.Input.Select(i => new { series = i.Series, values = i.Values }),
                alert_rule_test = s.EvalMinutes.Select(minute => new
                {
                    eval_time = $"{minute}m",
                    alertname = s.Alert,
                    exp_alerts = (s.Fired ?? []).Select(extra => Expected(rules, s.Alert, extra)),
                }),
            }),
        };
        var testFile = Path.Combine(directory, "tests.yaml");
        await File.WriteAllTextAsync(testFile, JsonSerializer.Serialize(tests)); // JSON is YAML

        var result = await HostCommand.RunAsync(Promtool, ["test", "rules", testFile], TimeSpan.FromMinutes(2));
        Assert.True(result.ExitCode == 0, $"promtool test rules:\n{result.Stdout}{result.Stderr}\nfrom {testFile}");
        Assert.Contains("SUCCESS", result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    private static string Promtool =>
        File.Exists("/usr/bin/promtool") ? "/usr/bin/promtool" : throw new FileNotFoundException("/usr/bin/promtool is missing: scripts/setup.sh installs it (Debian's prometheus package)");

    /// <summary>The alert as promtool must see it fire: the rule's labels (with <paramref name="extra"/> from the expression or choosing the rule) and annotations.</summary>
    private static object Expected(IReadOnlyList<AlertRule> rules, string alert, Dictionary<string, string> extra)
    {
        var rule = rules.Single(r => r.Alert == alert && (!extra.TryGetValue("severity", out var severity) || r.Labels["severity"] == severity));
        var labels = new Dictionary<string, string>(rule.Labels);
        foreach (var (name, value) in extra)
        {
            labels[name] = value;
        }

        return new { exp_labels = labels, exp_annotations = rule.Annotations };
    }

    private static async Task<string> WriteRulesAsync(string directory, Dictionary<string, object> rendered)
    {
        var file = Path.Combine(directory, "rules.yaml");
        var groups = new Dictionary<string, object> { ["groups"] = Map(rendered["spec"])["groups"] };
        await File.WriteAllTextAsync(file, new SerializerBuilder().Build().Serialize(groups));
        return file;
    }

    private static List<AlertRule> Rules(IEnumerable<Dictionary<string, object>> documents) =>
        [.. documents.Where(d => Kind(d) == "PrometheusRule")
            .SelectMany(d => List(Map(d["spec"])["groups"]))
            .SelectMany(g => List(Map(g)["rules"]))
            .Select(Map)
            .Select(r => new AlertRule((string)r["alert"], Strings(r["labels"]), Strings(r["annotations"])))];

    private static async Task<List<Dictionary<string, object>>> RenderAsync(params string[] values)
    {
        var result = (await HostCommand.RunAsync(Tools.Helm, ["template", "kc", Tools.Chart, "--namespace", "kubecapture-system", "--set", "storage.endpoint=minio:9000", .. values])).EnsureSuccess();
        var parser = new Parser(new StringReader(result.Stdout));
        var deserializer = new DeserializerBuilder().Build();
        var documents = new List<Dictionary<string, object>>();
        parser.Consume<StreamStart>();
        while (parser.Accept<DocumentStart>(out _))
        {
            if (deserializer.Deserialize<Dictionary<object, object>?>(parser) is { } document)
            {
                documents.Add(document.ToDictionary(kv => (string)kv.Key, kv => kv.Value));
            }
        }

        return documents;
    }

    private static string? Kind(Dictionary<string, object> document) => document.GetValueOrDefault("kind") as string;

    private static Dictionary<string, object> Map(object value) => ((Dictionary<object, object>)value).ToDictionary(kv => (string)kv.Key, kv => kv.Value);

    private static List<object> List(object value) => (List<object>)value;

    private static Dictionary<string, string> Strings(object value) => Map(value).ToDictionary(kv => kv.Key, kv => (string)kv.Value);

    private sealed record AlertRule(string Alert, Dictionary<string, string> Labels, Dictionary<string, string> Annotations);

    /// <param name="Fired">The alerts expected at each evaluation (each the rule's, with these labels added or chosen), or null: none fires.</param>
    private sealed record Scenario(string Name, IReadOnlyList<(string Series, string Values)> Input, int[] EvalMinutes, string Alert, List<Dictionary<string, string>>? Fired);
}
