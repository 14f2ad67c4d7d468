using System.Net;
using KubeCapture.Contracts.Arguments;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Reconciliation;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// builder.AddIngestTls(): the ingest endpoint (Kestrel:Endpoints:Ingest) serves TLS with the
/// operator's serving certificate, read on every handshake (a renewal takes effect without a
/// restart). Plain h2c only with Ingest:Tls=false. Every inconsistent setting stops the operator at
/// start, naming it: agents would otherwise be sent where they must refuse to upload.
/// </summary>
public static class IngestTls
{
    public const string EndpointName = "Ingest";
    public const string UrlKey = "Kestrel:Endpoints:" + EndpointName + ":Url";

    public static WebApplicationBuilder AddIngestTls(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        if (Problems(configuration) is { Count: > 0 } problems)
        {
            throw new OperatorConfigurationException(string.Join("; ", problems));
        }

        if (!configuration.GetValue($"{IngestOptions.Section}:Tls", defaultValue: true))
        {
            return builder;
        }

        builder.Services.AddHealthChecks().AddCheck<IngestCertificateHealthCheck>("ingest-tls");
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            var certificates = kestrel.ApplicationServices.GetRequiredService<ServingCertificateSource>();
            (kestrel.ConfigurationLoader ?? kestrel.Configure(configuration.GetSection("Kestrel")))
                .Endpoint(EndpointName, endpoint => endpoint.HttpsOptions.ServerCertificateSelector = (_, _) => certificates.Current);
        });
        return builder;
    }

    /// <summary>Every problem of the ingest's TLS settings, empty when they agree.</summary>
    public static IReadOnlyList<string> Problems(IConfiguration configuration)
    {
        var tls = configuration.GetValue($"{IngestOptions.Section}:Tls", defaultValue: true);
        var problems = new List<string>();
        var url = configuration[UrlKey] ?? "";
        if (tls && url.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"{UrlKey} '{url}' is plain h2c but Ingest:Tls is true (the default): use https://, or set Ingest:Tls=false (unsafe: captured packets and upload tokens cross the network in clear)");
        }
        else if (!tls && url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"{UrlKey} '{url}' is https:// but Ingest:Tls is false: use http:// for plain h2c, or leave Ingest:Tls on");
        }

        var certificate = configuration.GetSection(ServingCertificateOptions.Section);
        if (tls && !certificate.Exists())
        {
            problems.Add("Ingest:Tls is true (the default) but there is no ServingCertificate section: give ServingCertificate:DnsNames (the ingest Service's names) or Mounted files, or set Ingest:Tls=false (unsafe)");
        }

        if (!configuration.GetValue("Reconciler:Enabled", defaultValue: true))
        {
            return problems; // no agents are started by this process
        }

        var advertised = configuration["Reconciler:IngestUrl"] is { Length: > 0 } own ? own : configuration["Ingest:AdvertisedUrl"] ?? "";
        if (advertised.Length == 0)
        {
            return problems;
        }

        if (tls != AgentCaptureCommand.IsTls(advertised))
        {
            problems.Add(tls
                ? $"the ingest URL agents are given ('{advertised}', Ingest:AdvertisedUrl or Reconciler:IngestUrl) must be https:// while Ingest:Tls is true"
                : $"the ingest URL agents are given ('{advertised}', Ingest:AdvertisedUrl or Reconciler:IngestUrl) must be http:// while Ingest:Tls is false");
        }
        else if (tls && certificate.Exists())
        {
            var options = certificate.Get<ServingCertificateOptions>() ?? new ServingCertificateOptions();
            if (options.Mode == ServingCertificateModes.Mounted && options.CaFile.Length == 0)
            {
                problems.Add("Ingest:Tls with a Mounted serving certificate needs ServingCertificate:CaFile: agents verify the ingest's certificate against that CA");
            }
            else if (options.Mode == ServingCertificateModes.Managed && Uri.TryCreate(advertised, UriKind.Absolute, out var uri) && !Names(options, uri.Host.Trim('[', ']')))
            {
                problems.Add($"the ingest URL agents are given ('{advertised}') names {uri.Host}, which is not in ServingCertificate:DnsNames or IpAddresses: agents would refuse the certificate");
            }
        }

        return problems;
    }

    private static bool Names(ServingCertificateOptions options, string host) =>
        IPAddress.TryParse(host, out var ip)
            ? options.IpAddresses.Any(text => IPAddress.TryParse(text, out var named) && named.Equals(ip))
            : options.DnsNames.Any(name => string.Equals(name.TrimEnd('.'), host.TrimEnd('.'), StringComparison.OrdinalIgnoreCase));
}

/// <summary>Readiness: a TLS ingest without its certificate completes no handshake, so the replica is not ready until it is loaded.</summary>
public sealed class IngestCertificateHealthCheck(ServingCertificateSource certificates) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(certificates.Current is null
            ? HealthCheckResult.Unhealthy("the ingest's TLS certificate is not loaded yet (ServingCertificate; see the operator's log)")
            : HealthCheckResult.Healthy());
}
