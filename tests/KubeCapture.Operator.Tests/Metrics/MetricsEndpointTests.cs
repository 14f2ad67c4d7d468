using System.Globalization;
using System.Text.RegularExpressions;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.S3;

namespace KubeCapture.Operator.Tests.Metrics;

/// <summary>
/// /metrics of the operator process (its own process: the counters are its alone) after a real
/// capture streamed through the ingest to S3: Prometheus text format, and figures that match what
/// was stored.
/// </summary>
public sealed partial class MetricsEndpointTests
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
        Assert.Equal(0, Value(text, "kubecapture_ingest_streams_active"));
        Assert.Equal(1, Value(text, "kubecapture_storage_request_duration_seconds_count", "operation=\"CompleteMultipartUpload\"", "outcome=\"ok\""));
        Assert.True(Value(text, "kubecapture_storage_request_duration_seconds_count", "operation=\"UploadPart\"", "outcome=\"ok\"") >= 1, text);
        // No reconciler in this process: no captures gauge, and nothing reconciled.
        Assert.DoesNotContain("kubecapture_captures{", text, StringComparison.Ordinal);
    }

    /// <summary>The value of the one sample of <paramref name="metric"/> whose labels contain every one of <paramref name="labels"/>.</summary>
    private static double Value(string text, string metric, params string[] labels)
    {
        var samples = text.Split('\n')
            .Select(l => SampleLine().Match(l))
            .Where(m => m.Success && m.Groups["name"].Value == metric && labels.All(l => m.Groups["labels"].Value.Contains(l, StringComparison.Ordinal)))
            .ToList();
        Assert.True(samples.Count == 1, $"{samples.Count} samples of {metric} {string.Join(',', labels)} in:\n{text}");
        return double.Parse(samples[0].Groups["value"].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)")]
    private static partial Regex SampleLine();
}
