using System.Security.Cryptography;
using KubeCapture.Contracts.Custody;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Operator.Custody;

/// <summary>Where the operator's manifest-signing key pair lives (a Secret of its namespace, or a file).</summary>
public interface ISigningKeySource
{
    /// <summary>The private key, PKCS#8 PEM; created and stored when there is none yet.</summary>
    Task<string> LoadOrCreateAsync(Func<string> create, CancellationToken cancellationToken);

    /// <summary>Publishes the public key (PEM) for verifiers.</summary>
    Task PublishAsync(string publicKeyPem, string keyId, CancellationToken cancellationToken);

    /// <summary>Where the key is, for logs.</summary>
    string Describe { get; }
}

/// <summary>
/// Signs every stored manifest with the operator's ECDSA P-256 key (<see cref="SignedManifest"/>,
/// verified by <c>kubecapture-agent verify</c>). The key pair is loaded on first use, created when
/// missing, and its public half published.
/// </summary>
public sealed class ManifestSigner(ISigningKeySource source, ILogger<ManifestSigner> logger) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ECDsa? _key;

    /// <summary>The seal that signs with the key (loaded, or created, first).</summary>
    public async Task<ManifestSeal> SealAsync(CancellationToken cancellationToken)
    {
        var key = await KeyAsync(cancellationToken);
        return manifest => SignedManifest.Sign(StorageJsonContext.Serialize(manifest), key).ToJson();
    }

    public async Task<ECDsa> KeyAsync(CancellationToken cancellationToken)
    {
        if (_key is { } ready)
        {
            return ready;
        }

        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_key is null)
            {
                var pem = await source.LoadOrCreateAsync(() =>
                {
                    using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                    return fresh.ExportPkcs8PrivateKeyPem();
                }, cancellationToken);
                var key = ECDsa.Create();
                key.ImportFromPem(pem);
                if (key.KeySize != 256)
                {
                    key.Dispose();
                    throw new InvalidOperationException($"the manifest-signing key in {source.Describe} is a {key.KeySize}-bit key; it must be ECDSA P-256");
                }

                var keyId = SignedManifest.KeyIdOf(key);
                await source.PublishAsync(key.ExportSubjectPublicKeyInfoPem(), keyId, cancellationToken);
                logger.LogInformation("manifests are signed with ECDSA P-256 key {KeyId} from {Source}", keyId, source.Describe);
                _key = key;
            }

            return _key;
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        _key?.Dispose();
        _gate.Dispose();
    }
}
