using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using KubeCapture.Contracts.Arguments;

namespace KubeCapture.Contracts.Ingest;

/// <summary>
/// The agent's trust in a TLS ingest: exactly the CA it was given (--ingest-ca-pem), never the
/// system's roots. A certificate that does not chain to that CA, is not for the ingest's host name,
/// or is out of its validity period is refused, and the refusal says which.
/// </summary>
public static class IngestAuthority
{
    private const string ServerAuthentication = "1.3.6.1.5.5.7.3.1";

    /// <summary>The CA certificates in <paramref name="text"/>: PEM, or PEM in base64 (one word, as the operator passes it).</summary>
    public static X509Certificate2Collection Parse(string text)
    {
        var pem = text.Contains("-----BEGIN", StringComparison.Ordinal) ? text : Decode(text);
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPem(pem);
        }
        catch (CryptographicException e)
        {
            throw new UsageException($"invalid --ingest-ca-pem: a PEM certificate does not parse ({e.Message})");
        }

        return certificates.Count > 0 ? certificates
            : throw new UsageException("invalid --ingest-ca-pem: it holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }

    /// <summary>Why the ingest's certificate is refused, or null when it is issued by the CA for <paramref name="url"/>'s host.</summary>
    public static string? Refusal(Uri url, X509Certificate2Collection authority, X509Certificate? presented, X509Chain? presentedChain, SslPolicyErrors errors)
    {
        if (presented is null)
        {
            return $"the ingest at {url} presented no certificate: refusing to send the capture";
        }

        using var certificate = X509CertificateLoader.LoadCertificate(presented.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid(ServerAuthentication));
        if (presentedChain is not null)
        {
            foreach (var element in presentedChain.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        var who = $"(subject {certificate.Subject}, issuer {certificate.Issuer})";
        if (!chain.Build(certificate))
        {
            var statuses = chain.ChainStatus.Select(s => s.Status).ToHashSet();
            if (statuses.Contains(X509ChainStatusFlags.UntrustedRoot) || statuses.Contains(X509ChainStatusFlags.PartialChain))
            {
                return $"the ingest at {url} presented a certificate not issued by the CA given in --ingest-ca-pem {who}: unknown CA, refusing to send the capture";
            }

            if (statuses.Contains(X509ChainStatusFlags.NotTimeValid))
            {
                return $"the ingest at {url} presented a certificate outside its validity period ({certificate.NotBefore.ToUniversalTime():u} to {certificate.NotAfter.ToUniversalTime():u}) {who}: refusing to send the capture";
            }

            return $"the ingest at {url} presented a certificate that does not verify against the CA given in --ingest-ca-pem " +
                $"({string.Join(", ", chain.ChainStatus.Select(s => s.StatusInformation.Trim()))}) {who}: refusing to send the capture";
        }

        if (errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return $"the ingest's certificate is not for {url.Host} (it is for {Names(certificate)}) {who}: name mismatch, refusing to send the capture";
        }

        return null;
    }

    private static string Names(X509Certificate2 certificate)
    {
        var names = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>()
            .SelectMany(san => san.EnumerateDnsNames().Concat(san.EnumerateIPAddresses().Select(ip => ip.ToString()))).ToList();
        return names.Count > 0 ? string.Join(", ", names) : "no subjectAltName";
    }

    private static string Decode(string base64)
    {
        try
        {
            return Encoding.ASCII.GetString(Convert.FromBase64String(base64.Trim()));
        }
        catch (FormatException)
        {
            throw new UsageException("invalid --ingest-ca-pem: neither PEM (-----BEGIN CERTIFICATE-----) nor PEM in base64");
        }
    }
}
