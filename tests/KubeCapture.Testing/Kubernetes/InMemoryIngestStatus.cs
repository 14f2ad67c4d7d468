using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using KubeCapture.Contracts;
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
    private readonly ConcurrentDictionary<CaptureIdentity, UploadTerms> terms = new();
    private readonly ConcurrentDictionary<CaptureIdentity, string> closed = new();
    private readonly ConcurrentDictionary<CaptureIdentity, string> contested = new();
    private readonly ConcurrentDictionary<CaptureIdentity, UploadRefusals> refused = new();

    private readonly ConcurrentDictionary<CaptureIdentity, TargetUpload> uploads = new();
    private readonly ConcurrentDictionary<string, int> stopRequests = new(StringComparer.Ordinal);
    private readonly byte[] secret = RandomNumberGenerator.GetBytes(32);

    public event Action<TargetUpload>? Changed;

    public event Action<CaptureIdentity>? Refused;

    /// <summary>The pod addresses the reconciler told for each target.</summary>
    public IReadOnlyDictionary<CaptureIdentity, IReadOnlyList<string>> ExpectedAddresses => expected;

    /// <summary>The capture's terms the reconciler told for each target (maxBytes, retention).</summary>
    public IReadOnlyDictionary<CaptureIdentity, UploadTerms> Terms => terms;

    /// <summary>The targets the reconciler told have ended, and why.</summary>
    public IReadOnlyDictionary<CaptureIdentity, string> Closed => closed;

    /// <summary>The targets the reconciler found contested, with its message.</summary>
    public IReadOnlyDictionary<CaptureIdentity, string> Contested => contested;

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

    public void Expect(CaptureIdentity target, UploadTerms terms)
    {
        this.terms[target] = terms;
        if (terms.PodIps.Count > 0)
        {
            expected[target] = [.. terms.PodIps];
        }
    }

    public void Unbind(CaptureIdentity target) => expected[target] = [];

    public void Close(CaptureIdentity target, string why) => closed[target] = why;

    public void MarkContested(CaptureIdentity target, string message) => contested.TryAdd(target, message);

    public void Forget(string captureUid)
    {
        foreach (var target in expected.Keys.Where(t => t.CaptureUid == captureUid))
        {
            expected.TryRemove(target, out _);
        }
    }

    public UploadRefusals Refusals(CaptureIdentity target) => refused.GetValueOrDefault(target, UploadRefusals.None);

    public void Surfaced(CaptureIdentity target, UploadRefusals surfaced) =>
        refused.AddOrUpdate(target, UploadRefusals.None, (_, pending) => pending with
        {
            Count = Math.Max(0, pending.Count - surfaced.Count),
            Sessions = Math.Max(0, pending.Sessions - surfaced.Sessions),
        });

    /// <summary>
    /// Plays the ingest refusing an upload for the target (as a forged stream from another address
    /// would be; <paramref name="session"/>: a second agent session from the pod itself).
    /// </summary>
    public void RefuseUpload(CaptureIdentity target, string message, bool session = false)
    {
        var sessions = session ? 1 : 0;
        refused.AddOrUpdate(target, new UploadRefusals(1, message, sessions), (_, pending) => new UploadRefusals(pending.Count + 1, message, pending.Sessions + sessions));
        Refused?.Invoke(target);
    }

    public void Report(TargetUpload upload)
    {
        uploads[upload.Target] = upload;
        Changed?.Invoke(upload);
    }
}
