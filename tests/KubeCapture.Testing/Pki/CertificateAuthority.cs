using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace KubeCapture.Testing.Pki;

/// <summary>
/// A throwaway certificate authority (RSA 2048, SHA-256) for the real servers tests run: the
/// kube-apiserver's serving and front-proxy certificates, client certificates of x509 users
/// (CN = user, O = group), webhook and extension API serving certificates.
/// </summary>
public sealed class CertificateAuthority : IDisposable
{
    private readonly X509Certificate2 certificate;

    private CertificateAuthority(X509Certificate2 certificate) => this.certificate = certificate;

    public string CertificatePem => certificate.ExportCertificatePem();

    public static CertificateAuthority Create(string commonName)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign | X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        return new CertificateAuthority(request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(2)));
    }

    /// <summary>A certificate signed by this CA for a server (SANs) and/or a client (CN, O).</summary>
    public IssuedCertificate Issue(
        string commonName,
        bool serverAuth = false,
        bool clientAuth = false,
        IReadOnlyList<IPAddress>? ipAddresses = null,
        IReadOnlyList<string>? dnsNames = null,
        IReadOnlyList<string>? organizations = null,
        TimeSpan? lifetime = null)
    {
        var key = RSA.Create(2048);
        var subject = "CN=" + commonName + string.Concat((organizations ?? []).Select(o => ", O=" + o));
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, true));
        var usages = new OidCollection();
        if (serverAuth)
        {
            usages.Add(new Oid("1.3.6.1.5.5.7.3.1"));
        }

        if (clientAuth)
        {
            usages.Add(new Oid("1.3.6.1.5.5.7.3.2"));
        }

        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(usages, false));
        if (ipAddresses is { Count: > 0 } || dnsNames is { Count: > 0 })
        {
            var san = new SubjectAlternativeNameBuilder();
            foreach (var ip in ipAddresses ?? [])
            {
                san.AddIpAddress(ip);
            }

            foreach (var dns in dnsNames ?? [])
            {
                san.AddDnsName(dns);
            }

            request.CertificateExtensions.Add(san.Build());
        }

        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(certificate, true, false));
        var now = DateTimeOffset.UtcNow;
        var notAfter = now + (lifetime ?? TimeSpan.FromDays(1));
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var signed = request.Create(certificate, now.AddMinutes(-5), notAfter < certificate.NotAfter ? notAfter : certificate.NotAfter.AddMinutes(-1), serial);
        return new IssuedCertificate(signed.CopyWithPrivateKey(key), key);
    }

    public void Dispose() => certificate.Dispose();
}

/// <summary>A certificate with its private key, writable as PEM files.</summary>
public sealed class IssuedCertificate(X509Certificate2 certificate, RSA key) : IDisposable
{
    public X509Certificate2 Certificate { get; } = certificate;

    public string CertificatePem => Certificate.ExportCertificatePem();

    public string PrivateKeyPem => key.ExportRSAPrivateKeyPem();

    public void Write(string certificatePath, string keyPath)
    {
        File.WriteAllText(certificatePath, CertificatePem);
        File.WriteAllText(keyPath, PrivateKeyPem);
    }

    public void Dispose()
    {
        Certificate.Dispose();
        key.Dispose();
    }
}
