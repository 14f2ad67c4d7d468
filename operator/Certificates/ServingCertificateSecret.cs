using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Operator.Certificates;

/// <summary>
/// The operator's CA and serving certificate, kept in a Secret of its own namespace: read it, create
/// it when missing, replace it when due. Replicas racing on it settle by resourceVersion: the
/// loser of a conflict reads and uses what the winner wrote.
/// </summary>
public sealed class ServingCertificateSecret(IKubernetes kubernetes, string ns, string name, ILogger logger)
{
    public async Task<ServingMaterial> EnsureAsync(ServingRequirements wanted, DateTimeOffset now, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var existing = await ReadAsync(cancellationToken);
            ServingMaterial? current = null;
            if (existing is not null)
            {
                current = ServingMaterial.FromSecretData(existing.Data, out var why);
                if (current is null)
                {
                    logger.LogWarning("serving certificate Secret {Namespace}/{Name} is unusable ({Why}): issuing a new CA and certificate", ns, name, why);
                }
            }

            var (material, change) = ServingRenewal.Renew(current, wanted, now);
            if (change is null)
            {
                return material;
            }

            try
            {
                if (existing is null)
                {
                    await kubernetes.CoreV1.CreateNamespacedSecretAsync(new V1Secret
                    {
                        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = new Dictionary<string, string> { ["app.kubernetes.io/managed-by"] = "kubecapture-operator" } },
                        Type = "kubernetes.io/tls",
                        Data = material.ToSecretData(),
                    }, ns, cancellationToken: cancellationToken);
                }
                else
                {
                    existing.Data = material.ToSecretData();
                    existing.Type ??= "kubernetes.io/tls";
                    await kubernetes.CoreV1.ReplaceNamespacedSecretAsync(existing, name, ns, cancellationToken: cancellationToken);
                }

                logger.LogInformation("serving certificate Secret {Namespace}/{Name}: {Change}", ns, name, change);
                return material;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < 3)
            {
                // Another replica wrote it first (create: AlreadyExists; update: stale resourceVersion): use theirs.
                logger.LogInformation("serving certificate Secret {Namespace}/{Name} changed meanwhile; reading it again", ns, name);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.UnprocessableEntity && existing?.Type is { } type && type != "kubernetes.io/tls")
            {
                throw new InvalidOperationException($"the Secret {ns}/{name} exists with type {type}; the operator needs it to be kubernetes.io/tls (delete it and the operator creates it)", e);
            }
        }
    }

    private async Task<V1Secret?> ReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await kubernetes.CoreV1.ReadNamespacedSecretAsync(name, ns, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }
}
