using System.Security.Cryptography;
using System.Text;
using KubeCapture.Contracts;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// Per-target tokens: HMAC-SHA256 under the operator's token key of the capture UID, namespace,
/// capture name and pod. A token opens exactly one target's upload; checking it compares in constant
/// time, against the current key and the previous one (<see cref="IngestTokenKeys"/>: a rotation
/// never turns away an agent started before it).
/// </summary>
public sealed class CaptureTokenIssuer(IngestTokenKeys keys) : ICaptureTokenIssuer
{
    /// <summary>Tokens under a fixed secret (Ingest:TokenSecret; tests and a standalone ingest).</summary>
    public CaptureTokenIssuer(string secret)
        : this(IngestTokenKeys.Of(Encoding.UTF8.GetBytes(secret), "Ingest:TokenSecret"))
    {
    }

    /// <summary>False until the key is read (then an upload is told to retry, never that its token is wrong).</summary>
    public bool HasKey => keys.IsLoaded;

    public string Issue(CaptureIdentity target) => Token(keys.Current, target);

    /// <summary>True when <paramref name="token"/> is the one issued for <paramref name="target"/> under the current or the previous key.</summary>
    public bool Verify(CaptureIdentity target, string token) =>
        keys.Accepted.Any(key => CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(Token(key, target)), Encoding.UTF8.GetBytes(token ?? "")));

    private static string Token(byte[] key, CaptureIdentity target) =>
        Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"kubecapture/v1\n{target.CaptureUid}\n{target.Namespace}\n{target.CaptureName}\n{target.Pod}")))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
