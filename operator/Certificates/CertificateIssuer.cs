using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace KubeCapture.Operator.Certificates;

/// <summary>A certificate and its private key as PEM.</summary>
public sealed record PemCertificate(string CertificatePem, string KeyPem)
{
    /// <summary>The certificate with its private key, usable by Kestrel (throws CryptographicException on a bad PEM).</summary>
    public X509Certificate2 ToX509() => X509Certificate2.CreateFromPem(CertificatePem, KeyPem);

    /// <summary>The certificate alone (public part).</summary>
    public X509Certificate2 PublicCertificate() => X509Certificate2.CreateFromPem(CertificatePem);
}

/// <summary>Issues the operator's own CA and the serving certificates it signs (ECDSA P-256, SHA-256).</summary>
public static class CertificateIssuer
{
    private static readonly TimeSpan Backdate = TimeSpan.FromMinutes(5);

    public static PemCertificate IssueAuthority(string commonName, TimeSpan validity, DateTimeOffset now)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName("CN=" + commonName), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var certificate = request.CreateSelfSigned(now - Backdate, now + validity);
        return new PemCertificate(certificate.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>A server certificate for <paramref name="dnsNames"/> and <paramref name="ipAddresses"/>, signed by <paramref name="authority"/>, never outliving it.</summary>
    public static PemCertificate IssueServing(PemCertificate authority, IReadOnlyList<string> dnsNames, IReadOnlyList<IPAddress> ipAddresses, TimeSpan validity, DateTimeOffset now)
    {
        if (dnsNames.Count == 0 && ipAddresses.Count == 0)
        {
            throw new ArgumentException("a serving certificate needs at least one DNS name or IP address (ServingCertificate:DnsNames, ServingCertificate:IpAddresses)");
        }

        using var issuer = authority.ToX509();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName("CN=" + (dnsNames.Count > 0 ? dnsNames[0] : ipAddresses[0].ToString())), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var san = new SubjectAlternativeNameBuilder();
        foreach (var dns in dnsNames)
        {
            san.AddDnsName(dns);
        }

        foreach (var ip in ipAddresses)
        {
            san.AddIpAddress(ip);
        }

        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        var notAfter = now + validity < issuer.NotAfter ? now + validity : new DateTimeOffset(issuer.NotAfter.ToUniversalTime());
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var signed = request.Create(issuer, now - Backdate, notAfter, serial);
        return new PemCertificate(signed.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>The DNS names and IP addresses in a certificate's subjectAltName.</summary>
    public static (IReadOnlySet<string> DnsNames, IReadOnlySet<IPAddress> IpAddresses) SubjectAlternativeNames(X509Certificate2 certificate)
    {
        var dns = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var ips = new HashSet<IPAddress>();
        foreach (var extension in certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>())
        {
            dns.UnionWith(extension.EnumerateDnsNames());
            ips.UnionWith(extension.EnumerateIPAddresses());
        }

        return (dns, ips);
    }
}
