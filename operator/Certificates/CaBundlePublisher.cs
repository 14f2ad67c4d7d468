using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;

namespace KubeCapture.Operator.Certificates;

/// <summary>
/// Keeps the <c>caBundle</c> of the named APIServices and webhook configurations equal to the CA the
/// operator serves with. Writes only what differs (a quiet neighbour of the control plane).
/// </summary>
public sealed class CaBundlePublisher(IKubernetes kubernetes, ServingCertificateOptions options, ILogger<CaBundlePublisher> logger)
{
    public bool HasTargets => Publishes(options);

    /// <summary>Whether <paramref name="options"/> name anything to publish the CA bundle to (only then is the Kubernetes API needed for it).</summary>
    public static bool Publishes(ServingCertificateOptions options) =>
        options.ApiServices.Count + options.ValidatingWebhookConfigurations.Count + options.MutatingWebhookConfigurations.Count > 0;

    /// <summary>Publishes <paramref name="caBundlePem"/> everywhere configured; throws the first failure after trying all.</summary>
    public async Task PublishAsync(string caBundlePem, CancellationToken cancellationToken)
    {
        var bundle = Encoding.ASCII.GetBytes(caBundlePem);
        var failures = new List<Exception>();
        foreach (var name in options.ApiServices)
        {
            await Try(failures, $"APIService {name}", async () =>
            {
                var current = await kubernetes.ApiregistrationV1.ReadAPIServiceAsync(name, cancellationToken: cancellationToken);
                if (current.Spec.CaBundle is { } existing && existing.AsSpan().SequenceEqual(bundle))
                {
                    return false;
                }

                var patch = JsonSerializer.Serialize(new { spec = new { caBundle = Convert.ToBase64String(bundle) } });
                await kubernetes.ApiregistrationV1.PatchAPIServiceAsync(new V1Patch(patch, V1Patch.PatchType.MergePatch), name, cancellationToken: cancellationToken);
                return true;
            });
        }

        foreach (var name in options.ValidatingWebhookConfigurations)
        {
            await Try(failures, $"ValidatingWebhookConfiguration {name}", async () =>
            {
                var current = await kubernetes.AdmissionregistrationV1.ReadValidatingWebhookConfigurationAsync(name, cancellationToken: cancellationToken);
                if (Patch(current.Webhooks?.Select(w => w.ClientConfig.CaBundle).ToList() ?? [], bundle) is not { } patch)
                {
                    return false;
                }

                await kubernetes.AdmissionregistrationV1.PatchValidatingWebhookConfigurationAsync(patch, name, cancellationToken: cancellationToken);
                return true;
            });
        }

        foreach (var name in options.MutatingWebhookConfigurations)
        {
            await Try(failures, $"MutatingWebhookConfiguration {name}", async () =>
            {
                var current = await kubernetes.AdmissionregistrationV1.ReadMutatingWebhookConfigurationAsync(name, cancellationToken: cancellationToken);
                if (Patch(current.Webhooks?.Select(w => w.ClientConfig.CaBundle).ToList() ?? [], bundle) is not { } patch)
                {
                    return false;
                }

                await kubernetes.AdmissionregistrationV1.PatchMutatingWebhookConfigurationAsync(patch, name, cancellationToken: cancellationToken);
                return true;
            });
        }

        if (failures.Count > 0)
        {
            throw new AggregateException("could not publish the serving CA bundle: " + string.Join("; ", failures.Select(f => f.Message)), failures);
        }
    }

    /// <summary>A JSON patch setting every webhook's caBundle, or null when all are already current.</summary>
    private static V1Patch? Patch(IReadOnlyList<byte[]?> current, byte[] bundle)
    {
        var operations = current.Select((existing, i) => (existing, i))
            .Where(w => w.existing is null || !w.existing.AsSpan().SequenceEqual(bundle))
            .Select(w => new { op = "add", path = $"/webhooks/{w.i}/clientConfig/caBundle", value = Convert.ToBase64String(bundle) })
            .ToList();
        return operations.Count == 0 ? null : new V1Patch(JsonSerializer.Serialize(operations), V1Patch.PatchType.JsonPatch);
    }

    private async Task Try(List<Exception> failures, string what, Func<Task<bool>> publish)
    {
        try
        {
            if (await publish())
            {
                logger.LogInformation("published the serving CA bundle to {Target}", what);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            failures.Add(new InvalidOperationException($"{what}: {e.Message}", e));
        }
    }
}
