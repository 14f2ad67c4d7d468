using System.Net;
using System.Security.Cryptography.X509Certificates;
using KubeCapture.Operator.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace KubeCapture.Operator.Certificates;

/// <summary>
/// The operator's HTTPS listeners (the extension API, the admission webhooks): each on its own
/// address and port, all serving the one certificate of <see cref="ServingCertificateSource"/>
/// (read on every handshake, so a renewal takes effect without a restart).
/// </summary>
public static class HttpsEndpoints
{
    /// <summary>
    /// An HTTPS endpoint of the section <paramref name="section"/> (Admission, Subresources): it needs
    /// the ServingCertificate section, its <c>{section}:Url</c> must parse (a bad one fails the start,
    /// named), and Kestrel listens there with the serving certificate. <paramref name="service"/>:
    /// whose Service the managed certificate's DnsNames name, for the error.
    /// </summary>
    public static WebApplicationBuilder AddHttpsEndpoint(this WebApplicationBuilder builder, string section, string url, string service, bool requestClientCertificates)
    {
        if (!builder.Configuration.GetSection(ServingCertificateOptions.Section).Exists())
        {
            throw new OperatorConfigurationException($"{section}:Enabled needs a ServingCertificate section (Managed: DnsNames of {service}; or Mounted files)");
        }

        var setting = $"{section}:Url";
        ParseUrl(url, setting);
        builder.Services.AddServingCertificate(builder.Configuration);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenHttps(url, setting, requestClientCertificates));
        return builder;
    }

    /// <summary>
    /// Listens on <paramref name="url"/> (the value of the setting <paramref name="setting"/>).
    /// <paramref name="requestClientCertificates"/>: ask every peer for one (kube-apiserver's front
    /// proxy presents one; the handlers verify it).
    /// </summary>
    public static void ListenHttps(this KestrelServerOptions kestrel, string url, string setting, bool requestClientCertificates)
    {
        var (address, port) = ParseUrl(url, setting);
        var certificates = kestrel.ApplicationServices.GetRequiredService<ServingCertificateSource>();
        kestrel.Listen(address, port, listen =>
        {
            listen.Protocols = HttpProtocols.Http1AndHttp2;
            listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificateSelector = (_, _) => certificates.Current,
                ClientCertificateMode = requestClientCertificates ? ClientCertificateMode.AllowCertificate : ClientCertificateMode.NoCertificate,
                // Verified per request against the requestheader CA, which can change at run time.
                ClientCertificateValidation = requestClientCertificates ? (_, _, _) => true : null,
                // The chain TLS builds for a client certificate never fetches a URL the certificate names (AIA): no request to wherever a peer points.
                OnAuthenticate = (_, ssl) => ssl.CertificateChainPolicy = new X509ChainPolicy { DisableCertificateDownloads = true, RevocationMode = X509RevocationMode.NoCheck },
            });
        });
    }

    /// <summary>The address and port of an https URL with an IP address; throws naming <paramref name="setting"/> otherwise.</summary>
    public static (IPAddress Address, int Port) ParseUrl(string url, string setting)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != "https" || uri.IsDefaultPort && !url.Contains(":443", StringComparison.Ordinal))
        {
            throw new OperatorConfigurationException($"{setting} '{url}' is not an https URL with a port (e.g. https://0.0.0.0:8443)");
        }

        var host = uri.Host.Trim('[', ']');
        return IPAddress.TryParse(host, out var address) ? (address, uri.Port)
            : throw new OperatorConfigurationException($"{setting} '{url}': the host must be an IP address to listen on (0.0.0.0, [::] or one of this machine's), not '{uri.Host}'");
    }
}
