using System.Net;
using System.Text;
using k8s;
using k8s.Models;
using KubeCapture.Operator.Certificates;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.Certificates;

/// <summary>The CA and serving certificate kept in a Secret of the real kube-apiserver.</summary>
public sealed class ServingCertificateSecretTests
{
    private static readonly ServingRequirements Wanted = new(
        "test-ca", ["kc.kubecapture-system.svc"], [IPAddress.Parse("198.18.0.2")],
        Validity: TimeSpan.FromDays(90), AuthorityValidity: TimeSpan.FromDays(3650), RenewBefore: TimeSpan.FromDays(30));

    [SkippableFact]
    public async Task A_missing_Secret_is_created_as_a_tls_Secret_and_read_back_unchanged_on_the_next_start()
    {
        var (admin, ns, secret) = await NewNamespaceAsync();
        using var client = admin;
        var now = DateTimeOffset.UtcNow;

        var created = await secret.EnsureAsync(Wanted, now, CancellationToken.None);
        var stored = await admin.CoreV1.ReadNamespacedSecretAsync("serving", ns);
        var again = await secret.EnsureAsync(Wanted, now.AddDays(1), CancellationToken.None);

        Assert.Equal("kubernetes.io/tls", stored.Type);
        Assert.Equal(created.Serving.CertificatePem, Encoding.ASCII.GetString(stored.Data["tls.crt"]));
        Assert.Equal(created.Authority.CertificatePem, Encoding.ASCII.GetString(stored.Data["ca.crt"]));
        Assert.Equal(created, again);
        Assert.Equal(stored.Metadata.ResourceVersion, (await admin.CoreV1.ReadNamespacedSecretAsync("serving", ns)).Metadata.ResourceVersion);
    }

    [SkippableFact]
    public async Task A_certificate_due_for_renewal_is_replaced_in_the_Secret_with_the_same_CA()
    {
        var (admin, ns, secret) = await NewNamespaceAsync();
        using var client = admin;
        var now = DateTimeOffset.UtcNow;
        var created = await secret.EnsureAsync(Wanted, now, CancellationToken.None);

        var renewed = await secret.EnsureAsync(Wanted, now.AddDays(61), CancellationToken.None);

        var stored = ServingMaterial.FromSecretData((await admin.CoreV1.ReadNamespacedSecretAsync("serving", ns)).Data, out _);
        Assert.Equal(renewed, stored);
        Assert.Equal(created.Authority, renewed.Authority);
        Assert.NotEqual(created.Serving, renewed.Serving);
    }

    [SkippableFact]
    public async Task An_unusable_Secret_is_replaced_with_a_new_CA_and_certificate()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-cert");
        using var admin = server.AdminClient();
        await admin.CoreV1.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = "serving" },
            Type = "kubernetes.io/tls",
            Data = new Dictionary<string, byte[]> { ["tls.crt"] = "garbage"u8.ToArray(), ["tls.key"] = "garbage"u8.ToArray() },
        }, ns);
        var secret = new ServingCertificateSecret(admin, ns, "serving", NullLogger.Instance);

        var material = await secret.EnsureAsync(Wanted, DateTimeOffset.UtcNow, CancellationToken.None);

        var stored = ServingMaterial.FromSecretData((await admin.CoreV1.ReadNamespacedSecretAsync("serving", ns)).Data, out var why);
        Assert.True(stored is not null, why);
        Assert.Equal(material, stored);
    }

    [SkippableFact]
    public async Task Two_replicas_starting_together_end_up_serving_the_same_certificate()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-cert");
        using var first = server.AdminClient();
        using var second = server.AdminClient();
        var now = DateTimeOffset.UtcNow;

        var both = await Task.WhenAll(
            new ServingCertificateSecret(first, ns, "serving", NullLogger.Instance).EnsureAsync(Wanted, now, CancellationToken.None),
            new ServingCertificateSecret(second, ns, "serving", NullLogger.Instance).EnsureAsync(Wanted, now, CancellationToken.None));

        var stored = ServingMaterial.FromSecretData((await first.CoreV1.ReadNamespacedSecretAsync("serving", ns)).Data, out _);
        Assert.Equal(stored, both[0]);
        Assert.Equal(stored, both[1]);
    }

    private static async Task<(IKubernetes Admin, string Namespace, ServingCertificateSecret Secret)> NewNamespaceAsync()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-cert");
        var admin = server.AdminClient();
        return (admin, ns, new ServingCertificateSecret(admin, ns, "serving", NullLogger.Instance));
    }
}
