using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using KubeCapture.Operator.Ingest;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// TEST DOUBLE of the ingest's status seam, for reconciler tests before (or without) the real gRPC
/// ingest: the test kubelet reports what the agent did (connected, finished with its manifest and
/// pcap file, failed); the reconciler reads it through <see cref="IIngestStatus"/> exactly as it
/// reads the real ingest. Tokens are an HMAC of the identity, as the real issuer's. It records the
/// pod addresses the reconciler tells (<see cref="IAgentAddresses"/>) and lets a test play a refused
/// upload (<see cref="RefuseUpload"/>).
/// </summary>
public sealed class InMemoryIngestStatus : IIngestStatus, ICaptureTokenIssuer, IAgentAddresses
{
    private readonly ConcurrentDictionary<CaptureIdentity, IReadOnlyList<string>> expected = new();
    private readonly ConcurrentDictionary<CaptureIdentity, UploadRefusals> refused = new();

    private readonly ConcurrentDictionary<CaptureIdentity, TargetUpload> uploads = new();
    private readonly ConcurrentDictionary<string, int> stopRequests = new(StringComparer.Ordinal);
    private readonly byte[] secret = RandomNumberGenerator.GetBytes(32);

    public event Action<TargetUpload>? Changed;

    public event Action<CaptureIdentity>? Refused;

    /// <summary>The pod addresses the reconciler told for each target.</summary>
    public IReadOnlyDictionary<CaptureIdentity, IReadOnlyList<string>> ExpectedAddresses => expected;

    /// <summary>Raised when the reconciler asks a capture's agents to stop (the kubelet forwards it).</summary>
    public event Action<string>? StopRequested;

    public IReadOnlyDictionary<string, int> StopRequests => stopRequests;

    public Task<TargetUpload?> GetAsync(CaptureIdentity target, CancellationToken cancellationToken) =>
        Task.FromResult(uploads.TryGetValue(target, out var upload) ? upload : null);

    public void RequestStop(string captureUid)
    {
        stopRequests.AddOrUpdate(captureUid, 1, (_, n) => n + 1);
        StopRequested?.Invoke(captureUid);
    }

    public string Issue(CaptureIdentity target) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes($"{target.CaptureUid}/{target.Namespace}/{target.CaptureName}/{target.Pod}")));

    public bool Verify(CaptureIdentity target, string token) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(Issue(target)), Encoding.UTF8.GetBytes(token));

    public void Expect(CaptureIdentity target, IReadOnlyList<string> podIps)
    {
        if (podIps.Count > 0)
        {
            expected[target] = [.. podIps];
        }
    }

    public void Unbind(CaptureIdentity target) => expected[target] = [];

    public void Forget(string captureUid)
    {
        foreach (var target in expected.Keys.Where(t => t.CaptureUid == captureUid))
        {
            expected.TryRemove(target, out _);
        }
    }

    public UploadRefusals Refusals(CaptureIdentity target) => refused.GetValueOrDefault(target, UploadRefusals.None);

    public void Surfaced(CaptureIdentity target, long count) =>
        refused.AddOrUpdate(target, UploadRefusals.None, (_, pending) => pending with { Count = Math.Max(0, pending.Count - count) });

    /// <summary>Plays the ingest refusing an upload for the target (as a forged stream from another address would be).</summary>
    public void RefuseUpload(CaptureIdentity target, string message)
    {
        refused.AddOrUpdate(target, new UploadRefusals(1, message), (_, pending) => new UploadRefusals(pending.Count + 1, message));
        Refused?.Invoke(target);
    }

    public void Report(TargetUpload upload)
    {
        uploads[upload.Target] = upload;
        Changed?.Invoke(upload);
    }
}
