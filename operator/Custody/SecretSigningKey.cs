using System.Net;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Operator.Custody;

/// <summary>
/// The signing key pair in the Secret <see cref="Name"/> of the operator's namespace (created when
/// missing; when two replicas race, the first one's key wins), and its public key published in the
/// ConfigMap of the same name (<c>public-key.pem</c>, <c>key-id</c>) for anyone who verifies.
/// </summary>
public sealed class SecretSigningKey(IKubernetes kubernetes, string @namespace) : ISigningKeySource
{
    public const string Name = "kubecapture-manifest-signing";
    public const string PrivateKeyEntry = "private-key.pem";
    public const string PublicKeyEntry = "public-key.pem";
    public const string KeyIdEntry = "key-id";

    public string Describe => $"Secret {@namespace}/{Name}";

    public async Task<string> LoadOrCreateAsync(Func<string> create, CancellationToken cancellationToken)
    {
        try
        {
            return Read(await kubernetes.CoreV1.ReadNamespacedSecretAsync(Name, @namespace, cancellationToken: cancellationToken));
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }

        var secret = new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = Name, NamespaceProperty = @namespace, Labels = new Dictionary<string, string> { ["app.kubernetes.io/name"] = "kubecapture" } },
            Type = "Opaque",
            Data = new Dictionary<string, byte[]> { [PrivateKeyEntry] = Encoding.ASCII.GetBytes(create()) },
        };
        try
        {
            return Read(await kubernetes.CoreV1.CreateNamespacedSecretAsync(secret, @namespace, cancellationToken: cancellationToken));
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
        {
            return Read(await kubernetes.CoreV1.ReadNamespacedSecretAsync(Name, @namespace, cancellationToken: cancellationToken));
        }
    }

    public async Task PublishAsync(string publicKeyPem, string keyId, CancellationToken cancellationToken)
    {
        var data = new Dictionary<string, string> { [PublicKeyEntry] = publicKeyPem, [KeyIdEntry] = keyId };
        var map = new V1ConfigMap
        {
            Metadata = new V1ObjectMeta { Name = Name, NamespaceProperty = @namespace, Labels = new Dictionary<string, string> { ["app.kubernetes.io/name"] = "kubecapture" } },
            Data = data,
        };
        try
        {
            await kubernetes.CoreV1.CreateNamespacedConfigMapAsync(map, @namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
        {
            var existing = await kubernetes.CoreV1.ReadNamespacedConfigMapAsync(Name, @namespace, cancellationToken: cancellationToken);
            if (Entry(existing.Data, KeyIdEntry) != keyId || Entry(existing.Data, PublicKeyEntry) != publicKeyPem)
            {
                existing.Data = data;
                await kubernetes.CoreV1.ReplaceNamespacedConfigMapAsync(existing, Name, @namespace, cancellationToken: cancellationToken);
            }
        }
    }

    private static string? Entry(IDictionary<string, string>? data, string key) => data is not null && data.TryGetValue(key, out var value) ? value : null;

    private string Read(V1Secret secret) =>
        secret.Data is not null && secret.Data.TryGetValue(PrivateKeyEntry, out var pem) && pem.Length > 0
            ? Encoding.ASCII.GetString(pem)
            : throw new InvalidOperationException($"Secret {@namespace}/{Name} has no '{PrivateKeyEntry}': delete it to let the operator create a new key, or put the ECDSA P-256 key (PKCS#8 PEM) there");
}
