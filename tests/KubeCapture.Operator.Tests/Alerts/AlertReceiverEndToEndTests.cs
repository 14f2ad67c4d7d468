using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using k8s;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Alerts;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Rbac;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Operator.Tests.KubectlPlugin;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Pcap;
using KubeCapture.Testing.Processes;
using KubeCapture.Testing.S3;

namespace KubeCapture.Operator.Tests.Alerts;

/// <summary>
/// Issue 24, by an alert: the real Alertmanager (Debian's prometheus-alertmanager) with a webhook receiver
/// pointing at the operator's alert receiver (bearer credentials_file with the token the operator put in
/// the chart's Secret, tls_config ca_file with the serving certificate's CA, the extension API Service's
/// name as server_name), on the real kube-apiserver with the agent image recording in the pod's network
/// namespace (the cluster of RecorderEndToEndTests).
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class AlertReceiverEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task A_firing_alert_through_Alertmanager_takes_one_snapshot_of_the_pods_recording_not_again_on_re_sends_nor_when_resolved_and_bad_requests_are_refused()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-alert");
        var pod = await cluster.StartPodAsync(ns, "db");
        await cluster.GrantEditAsync(ns, "alice");
        var spec = PacketCaptureEndToEndTests.Icmp("resets from the database, kept when the page fires", "db", duration: "5m");
        spec.Recorder = new RecorderSpec { Window = "3s", After = "1s", MaxSnapshots = 3 };
        var created = await cluster.StartCaptureAsync(ns, "db-paged", spec, Long);
        await cluster.Admin.WaitForPacketCaptureAsync(ns, "db-paged", c => c.Status?.Targets.FirstOrDefault()?.Recorder?.Armed == true, Long);
        pod.PingFromClient(5);

        // Posted directly: no token, a wrong one (401, counted); a version other than 4 (400); an alert for a pod no recorder records (200, reported).
        var token = await TokenAsync();
        var receiver = $"https://{cluster.ExtensionAddress}:{cluster.ExtensionPort}{AlertReceiver.Path}";
        using var http = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator });
        async Task<(HttpStatusCode Code, string Body)> PostAsync(string? bearer, string body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, receiver) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
            request.Headers.Authorization = bearer is null ? null : new AuthenticationHeaderValue("Bearer", bearer);
            using var response = await http.SendAsync(request);
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }

        var noRecorder = $$"""{"version":"4","status":"firing","receiver":"kubecapture","alerts":[{"status":"firing","labels":{"alertname":"CartDown","namespace":"{{ns}}","pod":"cart"},"startsAt":"2026-12-06T10:00:00Z","fingerprint":"c0ffee"}]}""";
        var missing = await PostAsync(null, noRecorder);
        var wrong = await PostAsync("not-the-token", noRecorder);
        var version3 = await PostAsync(token, noRecorder.Replace("\"version\":\"4\"", "\"version\":\"3\"", StringComparison.Ordinal));
        var reported = await PostAsync(token, noRecorder);
        Assert.Equal((HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized), (missing.Code, wrong.Code));
        static string MessageOf(string body) => JsonDocument.Parse(body).RootElement.GetProperty("message").GetString()!;
        Assert.StartsWith("no bearer token", MessageOf(missing.Body), StringComparison.Ordinal);
        Assert.StartsWith("the bearer token is not the alert receiver's", MessageOf(wrong.Body), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, version3.Code);
        Assert.StartsWith("the notification's version is \"3\", not \"4\"", MessageOf(version3.Body), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, reported.Code);
        var report = JsonDocument.Parse(reported.Body).RootElement.GetProperty("alerts")[0];
        Assert.Equal(("no_recorder", $"alert CartDown (fingerprint c0ffee, startsAt 2026-12-06T10:00:00Z): no flight recording (a PacketCapture with spec.recorder) records pod {ns}/cart: no snapshot"),
            (report.GetProperty("outcome").GetString(), report.GetProperty("message").GetString()));
        Assert.Contains("refused a notification from", cluster.Operator.Output, StringComparison.Ordinal);
        var metrics = await OperatorMetricsAsync();
        Assert.True(Sample(metrics, "kubecapture_alert_receiver_notifications_total", "code=\"401\"") >= 2, metrics);

        // Through Alertmanager: the page for pod db, sent again every repeat_interval, then resolved.
        await using var alertmanager = await Alertmanager.StartAsync(cluster, receiver, token, await CaFileAsync());
        var startsAt = DateTime.UtcNow.AddSeconds(-5).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        await alertmanager.PostAlertAsync(ns, "db", startsAt, endsAt: null);
        var snapshotted = await cluster.Admin.WaitForPacketCaptureAsync(ns, "db-paged", c => c.Status?.Snapshots?.Count >= 1, Long);
        var listed = Assert.Single(snapshotted.Status!.Snapshots!);
        Assert.Equal(("db", 1, "alert", AlertReceiver.Requester), (listed.Pod, listed.Index, listed.TriggerKind, listed.Requester));
        Assert.StartsWith("Alertmanager alert CheckoutResets (fingerprint ", listed.TriggerDetail, StringComparison.Ordinal);

        // Re-sent (repeat_interval 2s): each notification answered 200 and taking nothing.
        await alertmanager.WaitForNotificationsAsync(3);
        await WaitForLogAsync("a notification of this alert already asked for the snapshot of pod db");
        await alertmanager.PostAlertAsync(ns, "db", startsAt, endsAt: DateTime.UtcNow.AddSeconds(-1).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
        await WaitForLogAsync("is resolved: a resolved alert takes no snapshot");
        Assert.Equal(0, await alertmanager.FailedNotificationsAsync());

        var stop = await cluster.PluginAsync(cluster.KubeconfigOf("alice"), ns, "stop", "db-paged");
        Assert.True(stop.ExitCode == 0, stop.Stderr);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "db-paged", CapturePhase.Succeeded, Long);
        var snapshot = Assert.Single(done.Status!.Snapshots!); // one per alert, not one per notification
        Assert.Equal(1, done.Status.Targets[0].Recorder!.SnapshotsTaken);

        // Stored with custody: the SHA-256 as listed, tshark reads its packets, the signed manifest names the alert as the trigger.
        var (exit, stderr, file) = await cluster.KubectlRawAsync(KubeApiServer.UserToken("alice"), SubresourcesCluster.PathOf(ns, "db-paged", ExtensionApi.Pcap) + "?snapshot=1");
        Assert.True(exit == 0, stderr);
        Assert.Equal(snapshot.Artifact!.Sha256, Evidence.Sha256Of(file));
        Assert.Equal(snapshot.Packets, (await Tshark.FieldsAsync(file, ["frame.number"])).Count);
        Assert.NotEmpty(await Tshark.FieldsAsync(file, ["frame.number"], "icmp"));
        var (manifestExit, manifestError, manifestFile) = await cluster.KubectlRawAsync(KubeApiServer.UserToken("alice"), SubresourcesCluster.PathOf(ns, "db-paged", ExtensionApi.Manifest) + "?snapshot=1");
        Assert.True(manifestExit == 0, manifestError);
        var download = await cluster.PluginAsync(cluster.KubeconfigOf("alice"), ns, "download", "db-paged", "--snapshot", "1");
        var verify = await cluster.PluginAsync(cluster.KubeconfigOf("alice"), ns, "verify", "db-paged-snapshot-1.pcap", "--public-key", await cluster.PublicKeyFileAsync());
        Assert.True(download.ExitCode == 0, download.Stderr);
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);
        var trigger = StorageJsonContext.ReadManifest(await File.ReadAllBytesAsync(manifestFile)).Snapshot!.Trigger;
        Assert.Equal(("alert", AlertReceiver.Requester, snapshot.TriggerDetail), (trigger.Kind, trigger.Requester, trigger.Detail));
        Assert.Matches(@"^Alertmanager alert CheckoutResets \(fingerprint [0-9a-f]{16}, startsAt " + Regex(startsAt) + @"\)$", trigger.Detail);

        var audit = await cluster.WaitForAuditAsync(created.Metadata.Uid, "stored");
        var line = Assert.Single(audit, l => l.GetProperty("event").GetString() == "snapshot");
        Assert.Equal(AlertReceiver.Requester, line.GetProperty("actor").GetString());
        Assert.Contains($"snapshot 1 (alert: {trigger.Detail};", line.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    /// <summary>The chart values of the receiver's capture rule the cluster runs with (SubresourcesCluster): a page WebResets alert captures its pod's ICMP for up to 5 minutes.</summary>
    public static readonly string[] CaptureRule =
    [
        "alertReceiver.captureRules[0].name=web-resets", "alertReceiver.captureRules[0].alertNames={WebResets}",
        "alertReceiver.captureRules[0].matchLabels.severity=page", "alertReceiver.captureRules[0].capture.duration=5m", "alertReceiver.captureRules[0].capture.filter=icmp",
    ];

    [SkippableFact]
    public async Task A_firing_alert_for_a_pod_no_recording_records_has_the_rule_create_one_capture_of_it_as_the_operator_and_no_other_alert_creates_a_second()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-alert-rule");
        var pod = await cluster.StartPodAsync(ns, "web");
        await cluster.GrantEditAsync(ns, "alice");
        var token = await TokenAsync();
        var receiver = $"https://{cluster.ExtensionAddress}:{cluster.ExtensionPort}{AlertReceiver.Path}";
        using var http = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator });
        async Task<List<(string? Outcome, string? Message)>> PostAsync(string alerts)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, receiver) { Content = new StringContent($$"""{"version":"4","status":"firing","receiver":"kubecapture","alerts":[{{alerts}}]}""", Encoding.UTF8, "application/json") };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            return [.. JsonDocument.Parse(body).RootElement.GetProperty("alerts").EnumerateArray().Select(a => (a.GetProperty("outcome").GetString(), a.GetProperty("message").GetString()))];
        }

        string Alert(string name, string severity, string pod, string fingerprint) =>
            $$"""{"status":"firing","labels":{"alertname":"{{name}}","severity":"{{severity}}","namespace":"{{ns}}","pod":"{{pod}}"},"startsAt":"2026-12-06T10:00:00Z","fingerprint":"{{fingerprint}}"}""";

        // Through Alertmanager: the page WebResets for pod web, which no recording records, sent again every repeat_interval.
        await using var alertmanager = await Alertmanager.StartAsync(cluster, receiver, token, await CaFileAsync());
        var startsAt = DateTime.UtcNow.AddSeconds(-5).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        await alertmanager.PostAlertAsync(ns, "web", startsAt, endsAt: null, alertname: "WebResets");
        var capture = Assert.Single(await CapturesOfRuleAsync(ns, atLeast: 1));
        await cluster.Admin.WaitForPhaseAsync(ns, capture.Metadata.Name, CapturePhase.Running, Long);
        await cluster.Kubelet.WaitUntilListeningAsync(ns, "web", EphemeralContainerSpec.ContainerName(capture.Metadata.Uid), Long);
        pod.PingFromClient(5);

        // The re-sends create nothing more (one capture per alert, pod and rule), nor does another firing while it captures
        // the pod (no pile of capture containers on one pod), nor alerts no rule matches, nor one about a pod that does not exist.
        await alertmanager.WaitForNotificationsAsync(3);
        await WaitForLogAsync($"a notification of this alert already created capture {ns}/{capture.Metadata.Name} (rule web-resets): none again");
        var others = await PostAsync(string.Join(",", Alert("WebResets", "page", "web", "b1"), Alert("WebResets", "ticket", "web", "b2"), Alert("WebSlow", "page", "web", "b3"), Alert("WebResets", "page", "gone", "b4")));
        Assert.Equal(["already_created", "no_recorder", "no_recorder", "no_recorder"], others.Select(o => o.Outcome));
        Assert.EndsWith($"capture {ns}/{capture.Metadata.Name} of rule web-resets has not ended (Running): it captures pod web for {capture.Metadata.Annotations[AlertCaptureRule.AlertAnnotation]}; none again", others[0].Message, StringComparison.Ordinal);
        Assert.EndsWith($"there is no pod {ns}/gone: rule web-resets creates no capture", others[3].Message, StringComparison.Ordinal);
        Assert.Single(await CapturesOfRuleAsync(ns, atLeast: 1));
        Assert.Equal(0, await alertmanager.FailedNotificationsAsync());

        // Created as the operator (the requester stamp admission wrote), the alert as its reason, the rule's spec; stopped, every packet stored.
        var stop = await cluster.PluginAsync(cluster.KubeconfigOf("alice"), ns, "stop", capture.Metadata.Name);
        Assert.True(stop.ExitCode == 0, stop.Stderr);
        var done = await cluster.Admin.WaitForPhaseAsync(ns, capture.Metadata.Name, CapturePhase.Succeeded, Long);
        Assert.StartsWith("web-resets-web-", capture.Metadata.Name, StringComparison.Ordinal);
        Assert.Equal(KubeCaptureInstall.OperatorUser, KubeCapture.Operator.Provenance.RequesterStamp.Read(done.Metadata)?.Username);
        Assert.Matches(@"^Alertmanager alert WebResets \(fingerprint [0-9a-f]{16}, startsAt " + Regex(startsAt) + @"\) about pod " + Regex($"{ns}/web") + ": created by the alert receiver's rule web-resets$", done.Spec.Reason);
        Assert.Equal(("web", "icmp", "5m"), (done.Spec.Target.PodName, done.Spec.Filter, done.Spec.Duration));
        var target = Assert.Single(done.Status!.Targets);
        Assert.True(target.Packets >= 10, $"{target.Packets} packets"); // 5 echo requests and their replies
        var (exit, stderr, file) = await cluster.KubectlRawAsync(KubeApiServer.UserToken("alice"), SubresourcesCluster.PathOf(ns, capture.Metadata.Name, ExtensionApi.Pcap));
        Assert.True(exit == 0, stderr);
        Assert.Equal(target.Artifact!.Sha256, Evidence.Sha256Of(file));
        Assert.Equal(target.Packets, (await Tshark.FieldsAsync(file, ["frame.number"], "icmp")).Count);

        // Once it has ended, another firing creates a new one.
        var again = await PostAsync(Alert("WebResets", "page", "web", "b5"));
        Assert.Equal("created", Assert.Single(again).Outcome);
        var second = Assert.Single(await CapturesOfRuleAsync(ns, atLeast: 2), c => c.Metadata.Name != capture.Metadata.Name);
        Assert.True((await cluster.PluginAsync(cluster.KubeconfigOf("alice"), ns, "stop", second.Metadata.Name)).ExitCode == 0);
        var metrics = await OperatorMetricsAsync();
        Assert.True(Sample(metrics, "kubecapture_alert_receiver_alerts_total", "outcome=\"created\"") >= 2, metrics);
        Assert.True(Sample(metrics, "kubecapture_alert_receiver_alerts_total", "outcome=\"already_created\"") >= 2, metrics);
    }

    /// <summary>The captures the rule web-resets created in <paramref name="ns"/>, once there are at least <paramref name="atLeast"/>.</summary>
    private async Task<IList<PacketCapture>> CapturesOfRuleAsync(string ns, int atLeast)
    {
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            var list = await cluster.Admin.CustomObjects.ListNamespacedCustomObjectAsync<PacketCaptureList>(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, labelSelector: $"{AlertCaptureRule.RuleLabel}=web-resets");
            if (list.Items.Count >= atLeast)
            {
                return list.Items;
            }

            Assert.True(DateTime.UtcNow < deadline, $"the rule created {list.Items.Count} captures in {ns}, not {atLeast}");
            await Task.Delay(200);
        }
    }

    /// <summary>A sample of the Prometheus text exposition (with any other labels, e.g. the exporter's scope), or 0.</summary>
    private static double Sample(string text, string name, string label)
    {
        var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(name + "{", StringComparison.Ordinal) && l.Contains(label, StringComparison.Ordinal));
        return line is null ? 0 : double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
    }

    private static string Regex(string text) => System.Text.RegularExpressions.Regex.Escape(text);

    private async Task WaitForLogAsync(string text)
    {
        var deadline = DateTime.UtcNow + Long;
        while (!cluster.Operator.Output.Contains(text, StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the operator never logged \"{text}\"");
            await Task.Delay(200);
        }
    }

    private async Task<string> OperatorMetricsAsync()
    {
        using var http = new HttpClient();
        return await http.GetStringAsync($"http://127.0.0.1:{cluster.Operator.HttpPort}/metrics");
    }

    /// <summary>The token the operator wrote into the chart's Secret (as a user reads it to give Alertmanager).</summary>
    private async Task<string> TokenAsync()
    {
        var name = OperatorPermissions.AlertReceiverSecret.Replace(Permission.FullnamePlaceholder, $"{KubeCaptureInstall.Release}-kubecapture", StringComparison.Ordinal);
        var deadline = DateTime.UtcNow + Long;
        while (true)
        {
            try
            {
                var secret = await cluster.Admin.CoreV1.ReadNamespacedSecretAsync(name, KubeCaptureInstall.Namespace);
                return Encoding.UTF8.GetString(secret.Data[AlertReceiverToken.Entry]);
            }
            catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
            }
        }
    }

    /// <summary>The serving certificate's CA (ca.crt of the operator's Secret), in a file for Alertmanager's tls_config.</summary>
    private async Task<string> CaFileAsync()
    {
        var name = OperatorPermissions.ServingCertificateSecret.Replace(Permission.FullnamePlaceholder, $"{KubeCaptureInstall.Release}-kubecapture", StringComparison.Ordinal);
        var secret = await cluster.Admin.CoreV1.ReadNamespacedSecretAsync(name, KubeCaptureInstall.Namespace);
        var file = Path.Combine(cluster.WorkDirectory, "alertmanager-ca.crt");
        await File.WriteAllBytesAsync(file, secret.Data[ServingMaterial.AuthorityKey]);
        return file;
    }

    /// <summary>prometheus-alertmanager on loopback, one route to the webhook receiver, short group and repeat intervals.</summary>
    private sealed class Alertmanager : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly HttpClient _http;

        private Alertmanager(Process process, int port)
        {
            _process = process;
            _http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        }

        public static async Task<Alertmanager> StartAsync(SubresourcesCluster cluster, string receiver, string token, string caFile)
        {
            var work = Directory.CreateDirectory(Path.Combine(cluster.WorkDirectory, "alertmanager-" + Guid.NewGuid().ToString("N")[..8])).FullName;
            var tokenFile = Path.Combine(work, "token");
            await File.WriteAllTextAsync(tokenFile, token + "\n");
            var config = Path.Combine(work, "alertmanager.yml");
            await File.WriteAllTextAsync(config, $$"""
                route:
                  receiver: kubecapture
                  group_by: [alertname, namespace, pod]
                  group_wait: 1s
                  group_interval: 1s
                  repeat_interval: 2s
                receivers:
                  - name: kubecapture
                    webhook_configs:
                      - url: {{receiver}}
                        send_resolved: true
                        http_config:
                          authorization: {credentials_file: {{tokenFile}}}
                          tls_config: {ca_file: {{caFile}}, server_name: {{cluster.ServiceName}}.{{KubeCaptureInstall.Namespace}}.svc}
                """);
            var port = S3rverFixture.FreeTcpPort();
            var process = LoggedProcess.Start("/usr/bin/prometheus-alertmanager",
                [$"--config.file={config}", $"--storage.path={work}", $"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=debug"],
                Path.Combine(work, "alertmanager.log"));
            var alertmanager = new Alertmanager(process, port);
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                try
                {
                    if ((await alertmanager._http.GetAsync("/-/ready")).IsSuccessStatusCode)
                    {
                        return alertmanager;
                    }
                }
                catch (HttpRequestException) when (DateTime.UtcNow < deadline && !process.HasExited)
                {
                }

                // The log is read only once it failed: until the shell has redirected its output, the file does not exist.
                if (DateTime.UtcNow >= deadline || process.HasExited)
                {
                    var log = Path.Combine(work, "alertmanager.log");
                    Assert.Fail($"Alertmanager did not start ({(process.HasExited ? $"exit code {process.ExitCode}" : "still not ready after 60 s")}): {(File.Exists(log) ? await File.ReadAllTextAsync(log) : "no log")}");
                }

                await Task.Delay(200);
            }
        }

        /// <summary>POST /api/v2/alerts: the page (CheckoutResets unless named) for the pod (resolved when endsAt is past).</summary>
        public async Task PostAlertAsync(string ns, string pod, string startsAt, string? endsAt, string alertname = "CheckoutResets")
        {
            var alert = $$"""[{"labels":{"alertname":"{{alertname}}","severity":"page","namespace":"{{ns}}","pod":"{{pod}}"},"annotations":{"summary":"checkout sees resets"},"startsAt":"{{startsAt}}"{{(endsAt is null ? "" : $",\"endsAt\":\"{endsAt}\"")}},"generatorURL":"http://prometheus.example/graph"}]""";
            using var response = await _http.PostAsync("/api/v2/alerts", new StringContent(alert, Encoding.UTF8, "application/json"));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }

        public async Task WaitForNotificationsAsync(int count)
        {
            var deadline = DateTime.UtcNow + Long;
            while (await MetricAsync("alertmanager_notifications_total") < count)
            {
                Assert.True(DateTime.UtcNow < deadline, $"Alertmanager sent fewer than {count} notifications");
                await Task.Delay(200);
            }
        }

        public Task<double> FailedNotificationsAsync() => MetricAsync("alertmanager_notifications_failed_total");

        private async Task<double> MetricAsync(string name) => Sample(await _http.GetStringAsync("/metrics"), name, "integration=\"webhook\"");

        public async ValueTask DisposeAsync()
        {
            _http.Dispose();
            if (!_process.HasExited)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
        }
    }
}
