using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// Per-target tokens: HMAC-SHA256 under the operator's secret of the capture UID, namespace, capture
/// name and pod. A token opens exactly one target's upload; checking it compares in constant time.
/// </summary>
public sealed class CaptureTokenIssuer : ICaptureTokenIssuer
{
    private readonly byte[] _secret;

    public CaptureTokenIssuer(IOptions<IngestOptions> options, ILogger<CaptureTokenIssuer> logger)
    {
        var secret = options.Value.TokenSecret;
        if (string.IsNullOrEmpty(secret))
        {
            logger.LogWarning("Ingest:TokenSecret is not set: using a random secret, so agents started by another operator process cannot upload");
            _secret = RandomNumberGenerator.GetBytes(32);
        }
        else
        {
            _secret = Encoding.UTF8.GetBytes(secret);
        }
    }

    public CaptureTokenIssuer(string secret) => _secret = Encoding.UTF8.GetBytes(secret);

    public string Issue(CaptureIdentity target) => Convert.ToBase64String(Compute(target)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>True when <paramref name="token"/> is the one issued for <paramref name="target"/>.</summary>
    public bool Verify(CaptureIdentity target, string token) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(Issue(target)), Encoding.UTF8.GetBytes(token ?? ""));

    private byte[] Compute(CaptureIdentity target) =>
        HMACSHA256.HashData(_secret, Encoding.UTF8.GetBytes($"kubecapture/v1\n{target.CaptureUid}\n{target.Namespace}\n{target.CaptureName}\n{target.Pod}"));
}
