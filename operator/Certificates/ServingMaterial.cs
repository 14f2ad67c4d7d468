using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace KubeCapture.Operator.Certificates;

/// <summary>
/// What the operator serves with and publishes: its CA (certificate and key), the CA it replaced
/// while certificates it signed may still be in use, and the serving certificate.
/// </summary>
public sealed record ServingMaterial(PemCertificate Authority, string? PreviousAuthorityPem, PemCertificate Serving)
{
    public const string CertificateKey = "tls.crt";
    public const string PrivateKeyKey = "tls.key";
    public const string AuthorityKey = "ca.crt";
    public const string AuthorityPrivateKeyKey = "ca.key";
    public const string PreviousAuthorityKey = "ca-previous.crt";

    /// <summary>The caBundle to publish: the current CA, and the previous one while it is still valid.</summary>
    public string CaBundlePem => Authority.CertificatePem.TrimEnd() + "\n" + (PreviousAuthorityPem is { Length: > 0 } previous ? previous.TrimEnd() + "\n" : "");

    /// <summary>When the serving certificate or the CA must be renewed.</summary>
    public DateTimeOffset RenewAt(TimeSpan renewBefore)
    {
        using var serving = Serving.PublicCertificate();
        using var authority = Authority.PublicCertificate();
        var first = serving.NotAfter < authority.NotAfter ? serving.NotAfter : authority.NotAfter;
        return new DateTimeOffset(first.ToUniversalTime()) - renewBefore;
    }

    public Dictionary<string, byte[]> ToSecretData()
    {
        var data = new Dictionary<string, byte[]>
        {
            [CertificateKey] = Encoding.ASCII.GetBytes(Serving.CertificatePem),
            [PrivateKeyKey] = Encoding.ASCII.GetBytes(Serving.KeyPem),
            [AuthorityKey] = Encoding.ASCII.GetBytes(Authority.CertificatePem),
            [AuthorityPrivateKeyKey] = Encoding.ASCII.GetBytes(Authority.KeyPem),
        };
        if (PreviousAuthorityPem is { Length: > 0 } previous)
        {
            data[PreviousAuthorityKey] = Encoding.ASCII.GetBytes(previous);
        }

        return data;
    }

    /// <summary>The material in a Secret's data; null when a key is missing or does not parse (with why).</summary>
    public static ServingMaterial? FromSecretData(IDictionary<string, byte[]>? data, out string why)
    {
        string? Text(string key) => data is not null && data.TryGetValue(key, out var bytes) ? Encoding.ASCII.GetString(bytes) : null;
        var missing = new[] { CertificateKey, PrivateKeyKey, AuthorityKey, AuthorityPrivateKeyKey }.Where(k => Text(k) is null).ToList();
        if (missing.Count > 0)
        {
            why = $"the Secret has no {string.Join(", ", missing)}";
            return null;
        }

        var material = new ServingMaterial(new PemCertificate(Text(AuthorityKey)!, Text(AuthorityPrivateKeyKey)!), Text(PreviousAuthorityKey), new PemCertificate(Text(CertificateKey)!, Text(PrivateKeyKey)!));
        try
        {
            material.Authority.ToX509().Dispose();
            material.Serving.ToX509().Dispose();
        }
        catch (CryptographicException e)
        {
            why = "the Secret's certificate or key does not parse: " + e.Message;
            return null;
        }

        why = "";
        return material;
    }
}

/// <summary>What the serving certificate must be: its names, lifetimes and how early to renew.</summary>
public sealed record ServingRequirements(
    string AuthorityName,
    IReadOnlyList<string> DnsNames,
    IReadOnlyList<IPAddress> IpAddresses,
    TimeSpan Validity,
    TimeSpan AuthorityValidity,
    TimeSpan RenewBefore);

/// <summary>Decides, from what is stored and the time, what to serve with: keep, renew the serving certificate, or renew the CA too.</summary>
public static class ServingRenewal
{
    /// <summary>The material to use from now on, and why it changed (null when <paramref name="current"/> is kept as it is).</summary>
    public static (ServingMaterial Material, string? Change) Renew(ServingMaterial? current, ServingRequirements wanted, DateTimeOffset now)
    {
        if (current is null)
        {
            var authority = CertificateIssuer.IssueAuthority(wanted.AuthorityName, wanted.AuthorityValidity, now);
            return (new ServingMaterial(authority, null, Issue(authority, wanted, now)), "issued a new CA and serving certificate");
        }

        using var currentAuthority = current.Authority.PublicCertificate();
        using var serving = current.Serving.PublicCertificate();
        var previous = current.PreviousAuthorityPem is { Length: > 0 } p && StillValid(p, now) ? p : null;
        var previousDropped = previous is null && current.PreviousAuthorityPem is { Length: > 0 };

        if (Expires(currentAuthority, now) <= now + wanted.RenewBefore)
        {
            var authority = CertificateIssuer.IssueAuthority(wanted.AuthorityName, wanted.AuthorityValidity, now);
            var keepOld = Expires(currentAuthority, now) > now ? current.Authority.CertificatePem : null;
            return (new ServingMaterial(authority, keepOld, Issue(authority, wanted, now)), $"renewed the CA (it expires {Expires(currentAuthority, now):O}) and the serving certificate");
        }

        var why = Expires(serving, now) <= now + wanted.RenewBefore ? $"it expires {Expires(serving, now):O}"
            : !SignedBy(serving, currentAuthority) ? "it is not signed by the current CA"
            : !NamesMatch(serving, wanted) ? "its names differ from " + string.Join(", ", wanted.DnsNames.Concat(wanted.IpAddresses.Select(i => i.ToString())))
            : null;
        if (why is not null)
        {
            return (new ServingMaterial(current.Authority, previous, Issue(current.Authority, wanted, now)), "renewed the serving certificate: " + why);
        }

        return previousDropped ? (current with { PreviousAuthorityPem = null }, "dropped the expired previous CA from the bundle") : (current, null);
    }

    private static PemCertificate Issue(PemCertificate authority, ServingRequirements wanted, DateTimeOffset now) =>
        CertificateIssuer.IssueServing(authority, wanted.DnsNames, wanted.IpAddresses, wanted.Validity, now);

    private static DateTimeOffset Expires(X509Certificate2 certificate, DateTimeOffset now) => new(certificate.NotAfter.ToUniversalTime());

    private static bool StillValid(string pem, DateTimeOffset now)
    {
        try
        {
            using var certificate = X509Certificate2.CreateFromPem(pem);
            return Expires(certificate, now) > now;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private static bool SignedBy(X509Certificate2 certificate, X509Certificate2 authority)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid;
        return chain.Build(certificate);
    }

    private static bool NamesMatch(X509Certificate2 certificate, ServingRequirements wanted)
    {
        var (dns, ips) = CertificateIssuer.SubjectAlternativeNames(certificate);
        return dns.SetEquals(wanted.DnsNames) && ips.SetEquals(wanted.IpAddresses);
    }
}
