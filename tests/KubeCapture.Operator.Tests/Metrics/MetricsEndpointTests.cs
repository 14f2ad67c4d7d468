using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.S3;

namespace KubeCapture.Operator.Tests.Metrics;

/// <summary>
/// /metrics of the operator process (its own process: the counters are its alone) after a real
/// capture streamed through the ingest to S3: Prometheus text format, and figures that match what
/// was stored.
/// </summary>
public sealed class MetricsEndpointTests
{
    [Fact]
    public async Task After_a_stored_capture_metrics_show_its_bytes_packets_upload_and_storage_requests()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3);
        settings["Reconciler:Enabled"] = "false";
        settings["Ingest:BindToPodAddress"] = "false";
        await using var host = await OperatorHost.StartProcessAsync(settings);
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-metrics", "shop", "metrics", "web-0");

        await using var agent = await AgentRun.StartAsync(host, target, traffic.Filter, null, "-c", "20");
        await traffic.SendAsync(256 << 10, pause: TimeSpan.FromMilliseconds(5));
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var stored = new FileInfo(s3.ObjectPath("captures/shop/metrics/web-0.pcap")!).Length;

        using var http = new HttpClient();
        using var response = await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/metrics");
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.IsSuccessStatusCode, text);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        Assert.Contains("# TYPE kubecapture_ingest_bytes_total counter", text, StringComparison.Ordinal);
        Assert.Equal(stored, Value(text, "kubecapture_ingest_bytes_total"));
        Assert.Equal(20, Value(text, "kubecapture_ingest_packets_total"));
        Assert.Equal(0, Value(text, "kubecapture_agent_kernel_drops_total"));
        Assert.Equal(1, Value(text, "kubecapture_ingest_uploads_total", "outcome=\"stored\""));
        Assert.Equal(1, Value(text, "kubecapture_ingest_streams_ended_total", "code=\"OK\""));
        Assert.Equal(0, Value(text, "kubecapture_ingest_streams_ended_total", "code=\"Unauthenticated\""));
        Assert.Equal(0, Value(text, "kubecapture_ingest_streams_active"));
        Assert.Equal(1, Value(text, "kubecapture_storage_request_duration_seconds_count", "operation=\"CompleteMultipartUpload\"", "outcome=\"ok\""));
        Assert.True(Value(text, "kubecapture_storage_request_duration_seconds_count", "operation=\"UploadPart\"", "outcome=\"ok\"") >= 1, text);
        // No reconciler in this process: no captures gauge, and nothing reconciled.
        Assert.DoesNotContain("kubecapture_captures{", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_series_the_alerts_watch_are_exported_from_start_and_count_a_refused_upload_storage_errors_and_the_certificates_expiry()
    {
        var metrics = await OperatorExposition.ScrapeAsync();

        // What happened to this process: one upload refused for its token, its store unreachable, a mounted certificate.
        Assert.Equal(1, metrics.Sample("kubecapture_ingest_streams_ended_total", "code=\"Unauthenticated\"").Value);
        Assert.True(metrics.Sample("kubecapture_storage_request_duration_seconds_count", "operation=\"HeadBucket\"", "outcome=\"error\"").Value >= 1, metrics.Text);
        Assert.Equal(metrics.CertificateNotAfter.ToUnixTimeSeconds(), metrics.Sample("kubecapture_certificate_expiration_timestamp_seconds").Value);
        Assert.Contains("# TYPE kubecapture_certificate_expiration_timestamp_seconds gauge", metrics.Text, StringComparison.Ordinal);
        // An ingest-only replica never leads.
        Assert.Equal(0, metrics.Sample("kubecapture_leader").Value);
        // What has not happened is there at 0, so that its first occurrence is an increase Prometheus sees.
        Assert.Equal(0, metrics.Sample("kubecapture_ingest_streams_ended_total", "code=\"PermissionDenied\"").Value);
        Assert.Equal(0, metrics.Sample("kubecapture_ingest_streams_ended_total", "code=\"OK\"").Value);
        Assert.Equal(0, metrics.Sample("kubecapture_ingest_uploads_total", "outcome=\"failed\"").Value);
        Assert.Equal(0, metrics.Sample("kubecapture_ingest_uploads_total", "outcome=\"stored\"").Value);
        Assert.All(new[] { "refused", "backlog_full", "retries_exhausted" }, reason => Assert.Equal(0, metrics.Sample("kubecapture_events_dropped_total", $"reason=\"{reason}\"").Value));
        Assert.All(new[] { "Succeeded", "Failed" }, phase => Assert.Equal(0, metrics.Sample("kubecapture_captures_ended_total", $"phase=\"{phase}\"").Value));
    }

    /// <summary>The value of the one sample of <paramref name="metric"/> whose labels contain every one of <paramref name="labels"/>.</summary>
    private static double Value(string text, string metric, params string[] labels) => new OperatorExposition(text, default).Sample(metric, labels).Value;
}
