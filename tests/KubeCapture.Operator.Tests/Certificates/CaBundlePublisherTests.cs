using System.Text;
using k8s;
using k8s.Models;
using KubeCapture.Operator.Certificates;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.Certificates;

/// <summary>The caBundle of APIServices and webhook configurations on the real kube-apiserver.</summary>
public sealed class CaBundlePublisherTests
{
    private static int counter;

    [SkippableFact]
    public async Task The_bundle_is_written_to_the_APIService_and_every_webhook_and_not_written_again_when_current()
    {
        var server = await KubeApiServer.SharedAsync();
        using var admin = server.AdminClient();
        var id = $"p{Environment.ProcessId % 10000}x{Interlocked.Increment(ref counter)}";
        var group = $"{id}.publish.kubecapture.test";
        var apiService = await CreateApiServiceAsync(admin, group);
        var webhook = (string name) => new V1ValidatingWebhook
        {
            Name = name + "." + group,
            ClientConfig = new Admissionregistrationv1WebhookClientConfig { Url = "https://127.0.0.1:1/validate" },
            Rules = [new V1RuleWithOperations { ApiGroups = [group], ApiVersions = ["v1"], Resources = ["widgets"], Operations = ["CREATE"] }],
            FailurePolicy = "Ignore",
            SideEffects = "None",
            AdmissionReviewVersions = ["v1"],
        };
        await admin.AdmissionregistrationV1.CreateValidatingWebhookConfigurationAsync(new V1ValidatingWebhookConfiguration
        {
            Metadata = new V1ObjectMeta { Name = id + "-validating" },
            Webhooks = [webhook("a"), webhook("b")],
        });
        await admin.AdmissionregistrationV1.CreateMutatingWebhookConfigurationAsync(new V1MutatingWebhookConfiguration
        {
            Metadata = new V1ObjectMeta { Name = id + "-mutating" },
            Webhooks = [new V1MutatingWebhook { Name = "m." + group, ClientConfig = webhook("m").ClientConfig, Rules = webhook("m").Rules, FailurePolicy = "Ignore", SideEffects = "None", AdmissionReviewVersions = ["v1"] }],
        });
        var options = new ServingCertificateOptions
        {
            ApiServices = [apiService.Metadata.Name],
            ValidatingWebhookConfigurations = [id + "-validating"],
            MutatingWebhookConfigurations = [id + "-mutating"],
        };
        var publisher = new CaBundlePublisher(admin, options, NullLogger<CaBundlePublisher>.Instance);
        var bundle = CertificateIssuer.IssueAuthority("bundle-test", TimeSpan.FromDays(1), DateTimeOffset.UtcNow).CertificatePem;

        await publisher.PublishAsync(bundle, CancellationToken.None);
        var published = await admin.ApiregistrationV1.ReadAPIServiceAsync(apiService.Metadata.Name);
        var validating = await admin.AdmissionregistrationV1.ReadValidatingWebhookConfigurationAsync(id + "-validating");
        var mutating = await admin.AdmissionregistrationV1.ReadMutatingWebhookConfigurationAsync(id + "-mutating");
        await publisher.PublishAsync(bundle, CancellationToken.None);

        Assert.Equal(bundle, Encoding.ASCII.GetString(published.Spec.CaBundle));
        Assert.All(validating.Webhooks, w => Assert.Equal(bundle, Encoding.ASCII.GetString(w.ClientConfig.CaBundle)));
        Assert.Equal(2, validating.Webhooks.Count);
        Assert.Equal(bundle, Encoding.ASCII.GetString(mutating.Webhooks.Single().ClientConfig.CaBundle));
        Assert.Equal(published.Metadata.ResourceVersion, (await admin.ApiregistrationV1.ReadAPIServiceAsync(apiService.Metadata.Name)).Metadata.ResourceVersion);
        Assert.Equal(validating.Metadata.ResourceVersion, (await admin.AdmissionregistrationV1.ReadValidatingWebhookConfigurationAsync(id + "-validating")).Metadata.ResourceVersion);
    }

    [SkippableFact]
    public async Task A_missing_target_is_named_in_the_error_and_the_others_are_still_written()
    {
        var server = await KubeApiServer.SharedAsync();
        using var admin = server.AdminClient();
        var id = $"q{Environment.ProcessId % 10000}x{Interlocked.Increment(ref counter)}";
        var group = $"{id}.publish.kubecapture.test";
        await CreateApiServiceAsync(admin, group);
        var publisher = new CaBundlePublisher(admin, new ServingCertificateOptions { ApiServices = ["v1.absent.kubecapture.test", "v1." + group] }, NullLogger<CaBundlePublisher>.Instance);
        var bundle = CertificateIssuer.IssueAuthority("bundle-test", TimeSpan.FromDays(1), DateTimeOffset.UtcNow).CertificatePem;

        var e = await Assert.ThrowsAsync<AggregateException>(() => publisher.PublishAsync(bundle, CancellationToken.None));

        Assert.Contains("APIService v1.absent.kubecapture.test", e.Message, StringComparison.Ordinal);
        Assert.Equal(bundle, Encoding.ASCII.GetString((await admin.ApiregistrationV1.ReadAPIServiceAsync("v1." + group)).Spec.CaBundle));
    }

    /// <summary>An APIService v1.GROUP for a Service that does not exist (never Available; only its caBundle matters).</summary>
    internal static Task<V1APIService> CreateApiServiceAsync(IKubernetes admin, string group) =>
        admin.ApiregistrationV1.CreateAPIServiceAsync(new V1APIService
        {
            Metadata = new V1ObjectMeta { Name = "v1." + group },
            Spec = new V1APIServiceSpec { Group = group, Version = "v1", GroupPriorityMinimum = 100, VersionPriority = 10, Service = new Apiregistrationv1ServiceReference { Name = "nowhere", NamespaceProperty = "default", Port = 443 } },
        });
}
