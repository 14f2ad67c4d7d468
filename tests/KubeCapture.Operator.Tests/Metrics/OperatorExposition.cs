using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Grpc.Core;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.S3;

namespace KubeCapture.Operator.Tests.Metrics;

/// <summary>
/// The /metrics of a real operator process (ingest only, as a replica that does not lead) after what
/// the alerts watch has happened to it: its object storage does not answer (a /readyz check tries it),
/// an agent's upload is refused for a wrong token, and it serves a mounted certificate.
/// </summary>
public sealed partial record OperatorExposition(string Text, DateTimeOffset CertificateNotAfter)
{
    public static async Task<OperatorExposition> ScrapeAsync()
    {
        var files = IngestCertificateFiles.Issue("127.0.0.1");
        var settings = new Dictionary<string, string>
        {
            ["Storage:S3:Endpoint"] = $"http://127.0.0.1:{S3rverFixture.FreeTcpPort()}", // nothing listens there
            ["Storage:S3:Bucket"] = "captures",
            ["Storage:S3:AccessKey"] = "key",
            ["Storage:S3:SecretKey"] = "secret",
            ["ServingCertificate:Mode"] = "Mounted",
            ["ServingCertificate:CertificateFile"] = files.CertificateFile,
            ["ServingCertificate:KeyFile"] = files.KeyFile,
            ["ServingCertificate:CaFile"] = files.AuthorityFile,
        };
        await using var host = await OperatorHost.StartProcessAsync(settings);
        using var http = new HttpClient();

        using var readiness = await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/readyz");
        Assert.False(readiness.IsSuccessStatusCode, "ready without its storage");
        var target = new CaptureIdentity("uid-alerts", "shop", "alerts", "web-0");
        var stranger = new CaptureTokenIssuer("not-the-operators-key").Issue(target);
        using (var agent = new TestAgent(host.IngestUrl, target, stranger, caPem: files.AuthorityPem))
        {
            var refused = await Assert.ThrowsAsync<RpcException>(() => agent.OpenAsync());
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        }

        // Counted before the agent was told: the interceptor's count runs as the refusal leaves the handler, before gRPC sends the status.
        var text = await http.GetStringAsync($"http://127.0.0.1:{host.HttpPort}/metrics");
        var notAfter = new DateTimeOffset(X509Certificate2.CreateFromPemFile(files.CertificateFile, files.KeyFile).NotAfter.ToUniversalTime());
        return new OperatorExposition(text, notAfter);
    }

    /// <summary>Every sample line: metric name, the label text between the braces (as exported), value.</summary>
    public static IEnumerable<(string Name, string Labels, double Value)> Samples(string text) =>
        text.Split('\n').Select(l => SampleLine().Match(l)).Where(m => m.Success)
            .Select(m => (m.Groups["name"].Value, m.Groups["labels"].Value, double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture)));

    /// <summary>The one sample of <paramref name="metric"/> whose labels contain every one of <paramref name="labels"/> (name="value").</summary>
    public (string Name, string Labels, double Value) Sample(string metric, params string[] labels)
    {
        var found = Samples(Text).Where(s => s.Name == metric && labels.All(l => s.Labels.Contains(l, StringComparison.Ordinal))).ToList();
        Assert.True(found.Count == 1, $"{found.Count} samples of {metric}{{{string.Join(',', labels)}}} in the operator's /metrics:\n{Text}");
        return found[0];
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)")]
    private static partial Regex SampleLine();
}
