using System.Net;
using System.Security.Cryptography.X509Certificates;
using KubeCapture.Operator.Certificates;

namespace KubeCapture.Operator.Tests.Certificates;

public sealed class ServingRenewalTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 12, 0, 0, TimeSpan.Zero);

    private static readonly ServingRequirements Wanted = new(
        "test-ca", ["kc.kubecapture-system.svc", "kc.kubecapture-system.svc.cluster.local"], [IPAddress.Parse("198.18.0.2")],
        Validity: TimeSpan.FromDays(90), AuthorityValidity: TimeSpan.FromDays(3650), RenewBefore: TimeSpan.FromDays(30));

    [Fact]
    public void Without_a_stored_certificate_a_new_CA_and_a_serving_certificate_for_exactly_the_wanted_names_are_issued()
    {
        var (material, change) = ServingRenewal.Renew(null, Wanted, Now);

        Assert.NotNull(change);
        using var serving = material.Serving.ToX509();
        Assert.True(serving.HasPrivateKey);
        var (dns, ips) = CertificateIssuer.SubjectAlternativeNames(serving);
        Assert.Equal(Wanted.DnsNames.Order(), dns.Order());
        Assert.Equal([IPAddress.Parse("198.18.0.2")], ips);
        Assert.Equal(Now.AddDays(90).UtcDateTime, serving.NotAfter.ToUniversalTime());
        Assert.Contains(serving.Extensions.OfType<X509EnhancedKeyUsageExtension>().Single().EnhancedKeyUsages.Cast<System.Security.Cryptography.Oid>(), o => o.Value == "1.3.6.1.5.5.7.3.1");
        Assert.True(ChainsTo(serving, material.CaBundlePem, Now));
        Assert.Null(material.PreviousAuthorityPem);
    }

    [Fact]
    public void A_certificate_not_yet_due_is_kept_as_it_is()
    {
        var (first, _) = ServingRenewal.Renew(null, Wanted, Now);

        var (again, change) = ServingRenewal.Renew(first, Wanted, Now.AddDays(59));

        Assert.Null(change);
        Assert.Same(first, again);
    }

    [Fact]
    public void A_serving_certificate_within_RenewBefore_of_expiry_is_renewed_by_the_same_CA()
    {
        var (first, _) = ServingRenewal.Renew(null, Wanted, Now);

        var (renewed, change) = ServingRenewal.Renew(first, Wanted, Now.AddDays(61));

        Assert.Contains("renewed the serving certificate: it expires", change);
        Assert.Equal(first.Authority, renewed.Authority);
        Assert.NotEqual(first.Serving.CertificatePem, renewed.Serving.CertificatePem);
        using var serving = renewed.Serving.PublicCertificate();
        Assert.Equal(Now.AddDays(61 + 90).UtcDateTime, serving.NotAfter.ToUniversalTime());
        Assert.True(ChainsTo(serving, first.CaBundlePem, Now.AddDays(61)));
    }

    [Fact]
    public void Changed_names_reissue_the_serving_certificate_for_the_new_names()
    {
        var (first, _) = ServingRenewal.Renew(null, Wanted, Now);

        var (renewed, change) = ServingRenewal.Renew(first, Wanted with { DnsNames = ["other.ns.svc"], IpAddresses = [] }, Now);

        Assert.Contains("its names differ", change);
        using var serving = renewed.Serving.PublicCertificate();
        Assert.Equal(["other.ns.svc"], CertificateIssuer.SubjectAlternativeNames(serving).DnsNames);
    }

    [Fact]
    public void A_CA_near_expiry_is_replaced_and_the_old_one_stays_in_the_bundle_until_it_expires()
    {
        var shortCa = Wanted with { AuthorityValidity = TimeSpan.FromDays(100), Validity = TimeSpan.FromDays(40), RenewBefore = TimeSpan.FromDays(10) };
        var (first, _) = ServingRenewal.Renew(null, shortCa, Now);

        var (renewed, change) = ServingRenewal.Renew(first, shortCa, Now.AddDays(95));

        Assert.Contains("renewed the CA", change);
        Assert.NotEqual(first.Authority, renewed.Authority);
        Assert.Equal(first.Authority.CertificatePem, renewed.PreviousAuthorityPem);
        Assert.Contains(first.Authority.CertificatePem.Trim(), renewed.CaBundlePem, StringComparison.Ordinal);
        Assert.Contains(renewed.Authority.CertificatePem.Trim(), renewed.CaBundlePem, StringComparison.Ordinal);
        using var serving = renewed.Serving.PublicCertificate();
        Assert.True(ChainsTo(serving, renewed.Authority.CertificatePem, Now.AddDays(95)));

        var (later, dropped) = ServingRenewal.Renew(renewed, shortCa, Now.AddDays(101));
        Assert.Equal("dropped the expired previous CA from the bundle", dropped);
        Assert.Null(later.PreviousAuthorityPem);
    }

    [Fact]
    public void A_serving_certificate_never_outlives_its_CA()
    {
        var (material, _) = ServingRenewal.Renew(null, Wanted with { AuthorityValidity = TimeSpan.FromDays(60), RenewBefore = TimeSpan.FromDays(1) }, Now);

        using var serving = material.Serving.PublicCertificate();
        using var authority = material.Authority.PublicCertificate();
        Assert.True(serving.NotAfter <= authority.NotAfter);
    }

    [Fact]
    public void The_renewal_time_is_RenewBefore_ahead_of_the_first_expiry()
    {
        var (material, _) = ServingRenewal.Renew(null, Wanted, Now);

        Assert.Equal(Now.AddDays(60), material.RenewAt(Wanted.RenewBefore));
    }

    [Fact]
    public void Secret_data_round_trips_and_a_Secret_missing_keys_is_reported_by_key()
    {
        var (material, _) = ServingRenewal.Renew(null, Wanted, Now);

        var read = ServingMaterial.FromSecretData(material.ToSecretData(), out _);
        Assert.Equal(material, read);

        var partial = material.ToSecretData();
        partial.Remove(ServingMaterial.AuthorityPrivateKeyKey);
        Assert.Null(ServingMaterial.FromSecretData(partial, out var why));
        Assert.Equal("the Secret has no ca.key", why);

        partial = material.ToSecretData();
        partial[ServingMaterial.CertificateKey] = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"u8.ToArray();
        Assert.Null(ServingMaterial.FromSecretData(partial, out why));
        Assert.StartsWith("the Secret's certificate or key does not parse", why, StringComparison.Ordinal);
    }

    [Fact]
    public void A_serving_certificate_needs_a_name()
    {
        var authority = CertificateIssuer.IssueAuthority("ca", TimeSpan.FromDays(1), Now);

        var e = Assert.Throws<ArgumentException>(() => CertificateIssuer.IssueServing(authority, [], [], TimeSpan.FromDays(1), Now));
        Assert.Contains("at least one DNS name or IP address", e.Message, StringComparison.Ordinal);
    }

    private static bool ChainsTo(X509Certificate2 certificate, string bundlePem, DateTimeOffset at)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        var roots = new X509Certificate2Collection();
        roots.ImportFromPem(bundlePem);
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationTime = at.UtcDateTime;
        return chain.Build(certificate);
    }
}
