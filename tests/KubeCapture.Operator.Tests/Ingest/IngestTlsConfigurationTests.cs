using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Ingest;
using Microsoft.Extensions.Configuration;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>IngestTls.Problems: settings under which agents would be sent where they must refuse (or would send in clear) stop the operator at start, naming the key.</summary>
public sealed class IngestTlsConfigurationTests
{
    private static readonly Dictionary<string, string?> Managed = new()
    {
        ["Kestrel:Endpoints:Ingest:Url"] = "https://0.0.0.0:8081",
        ["Ingest:AdvertisedUrl"] = "https://kc-ingest.ops.svc:8081",
        ["ServingCertificate:DnsNames:0"] = "kc-ingest.ops.svc",
    };

    [Fact]
    public void ConsistentTlsSettingsHaveNoProblem() => Assert.Empty(IngestTls.Problems(Configuration(Managed)));

    [Theory]
    [InlineData("Kestrel:Endpoints:Ingest:Url", "http://0.0.0.0:8081", "Kestrel:Endpoints:Ingest:Url 'http://0.0.0.0:8081' is plain h2c but Ingest:Tls is true (the default): use https://, or set Ingest:Tls=false (unsafe")]
    [InlineData("Ingest:AdvertisedUrl", "http://kc-ingest.ops.svc:8081", "the ingest URL agents are given ('http://kc-ingest.ops.svc:8081', Ingest:AdvertisedUrl or Reconciler:IngestUrl) must be https:// while Ingest:Tls is true")]
    [InlineData("Ingest:AdvertisedUrl", "https://elsewhere.ops.svc:8081", "names elsewhere.ops.svc, which is not in ServingCertificate:DnsNames or IpAddresses: agents would refuse the certificate")]
    [InlineData("ServingCertificate:Mode", "Mounted", "Ingest:Tls with a Mounted serving certificate needs ServingCertificate:CaFile")]
    public void AnInconsistentTlsSettingIsNamed(string key, string value, string problem)
    {
        var settings = new Dictionary<string, string?>(Managed) { [key] = value };
        Assert.Contains(IngestTls.Problems(Configuration(settings)), p => p.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void TlsWithoutAServingCertificateSectionIsRefusedSayingHowToTurnItOff()
    {
        var problems = IngestTls.Problems(Configuration(new() { ["Kestrel:Endpoints:Ingest:Url"] = "https://0.0.0.0:8081", ["Reconciler:Enabled"] = "false" }));
        Assert.Equal(["Ingest:Tls is true (the default) but there is no ServingCertificate section: give ServingCertificate:DnsNames (the ingest Service's names) or Mounted files, or set Ingest:Tls=false (unsafe)"], problems);
    }

    [Fact]
    public void PlainH2cNeedsAnHttpUrlEverywhere()
    {
        var problems = IngestTls.Problems(Configuration(new()
        {
            ["Ingest:Tls"] = "false",
            ["Kestrel:Endpoints:Ingest:Url"] = "https://0.0.0.0:8081",
            ["Reconciler:IngestUrl"] = "https://10.0.0.1:8081",
        }));
        Assert.Equal(2, problems.Count);
        Assert.Contains("is https:// but Ingest:Tls is false", problems[0], StringComparison.Ordinal);
        Assert.Contains("must be http:// while Ingest:Tls is false", problems[1], StringComparison.Ordinal);
    }

    [Fact]
    public void TheOperatorRefusesToStartWithAPlainIngestWhileTlsIsOn()
    {
        var error = Assert.Throws<OperatorConfigurationException>(() => Program.Build(["--Kestrel:Endpoints:Ingest:Url=http://127.0.0.1:1", "--Reconciler:Enabled=false", "--Storage:LocalPath=/tmp/kcI-never"]));
        Assert.Contains("Kestrel:Endpoints:Ingest:Url 'http://127.0.0.1:1' is plain h2c but Ingest:Tls is true", error.Message, StringComparison.Ordinal);
    }

    private static IConfiguration Configuration(Dictionary<string, string?> settings) => new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
}
