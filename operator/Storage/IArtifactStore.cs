using System.Text.Json;
using System.Text.Json.Serialization;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Capture;
using KubeCapture.Contracts.Custody;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;

namespace KubeCapture.Operator.Storage;

/// <summary>
/// Object storage for captures, as the ingest uses it: a pcap arrives as numbered parts, a checkpoint
/// records what is durably stored (so another operator process can continue), and only a completed,
/// verified upload becomes visible at <c>&lt;prefix&gt;/&lt;namespace&gt;/&lt;capture&gt;/&lt;pod&gt;.pcap</c>, together with
/// its <c>.manifest.json</c>. An aborted upload leaves nothing behind at those names.
/// </summary>
public interface IArtifactStore
{
    /// <summary>Where the pcap of <paramref name="target"/> is (or will be): s3://bucket/key or file:///path.</summary>
    string UriOf(CaptureIdentity target);

    Task<UploadCheckpoint?> LoadCheckpointAsync(CaptureIdentity target, CancellationToken cancellationToken);

    Task SaveCheckpointAsync(UploadCheckpoint checkpoint, CancellationToken cancellationToken);

    /// <summary>Starts a multipart upload of the pcap; returns its upload ID.</summary>
    Task<string> BeginUploadAsync(CaptureIdentity target, DateTimeOffset? expiresAt, CancellationToken cancellationToken);

    /// <summary>Stores one part durably; returns its ETag. Parts are numbered from 1.</summary>
    Task<string> UploadPartAsync(CaptureIdentity target, string uploadId, int partNumber, ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>
    /// Publishes the pcap from the checkpoint's parts, writes its manifest (the bytes
    /// <paramref name="seal"/> makes of it once the store has added what only it knows, such as the
    /// object's version ID), and returns the manifest as stored. Safe to repeat after a crash
    /// part-way. The checkpoint stays (<see cref="RemoveCheckpointAsync"/>): a failure to delete it
    /// must not make a published upload look failed, nor a retry complete it a second time.
    /// </summary>
    Task<StoredCaptureManifest> CompleteUploadAsync(UploadCheckpoint checkpoint, StoredCaptureManifest manifest, ManifestSeal seal, CancellationToken cancellationToken);

    /// <summary>
    /// Writes the manifest of a published pcap again (<paramref name="manifest"/>, sealed by
    /// <paramref name="seal"/>), locked as the first one: the pcap was found contested after it was
    /// stored. On a versioned bucket the earlier manifest stays as an older version.
    /// </summary>
    Task AmendManifestAsync(StoredCaptureManifest manifest, ManifestSeal seal, CancellationToken cancellationToken);

    /// <summary>Deletes the checkpoint of a published upload (one left behind, the retention sweeper removes).</summary>
    Task RemoveCheckpointAsync(CaptureIdentity target, CancellationToken cancellationToken);

    /// <summary>Drops the parts and the checkpoint; nothing becomes visible.</summary>
    Task AbortUploadAsync(UploadCheckpoint checkpoint, CancellationToken cancellationToken);

    /// <summary>The manifest of a completed capture target, or null.</summary>
    Task<StoredCaptureManifest?> FindStoredAsync(CaptureIdentity target, CancellationToken cancellationToken);

    /// <summary>The manifest of a completed capture target byte for byte as stored (the signed envelope that verify checks), or null.</summary>
    Task<byte[]?> ReadStoredManifestAsync(CaptureIdentity target, CancellationToken cancellationToken);

    /// <summary>
    /// The stored pcap as a stream read from storage as it is consumed (constant memory), or null when
    /// it is gone (deleted by retention). Dispose it.
    /// </summary>
    Task<Stream?> OpenStoredAsync(StoredCaptureManifest stored, CancellationToken cancellationToken);

    IAsyncEnumerable<StoredCaptureManifest> ListStoredAsync(CancellationToken cancellationToken);

    IAsyncEnumerable<UploadCheckpoint> ListCheckpointsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Deletes a stored pcap and its manifest (every version of them on a versioned bucket). A lock
    /// or legal hold the storage enforces makes it fail (<see cref="S3ErrorException"/> AccessDenied).
    /// </summary>
    Task DeleteStoredAsync(StoredCaptureManifest stored, CancellationToken cancellationToken);

    /// <summary>Null when the store can lock objects (S3 Object Lock enabled on the bucket); otherwise why not.</summary>
    Task<string?> CheckObjectLockAsync(CancellationToken cancellationToken);

    /// <summary>Null when the store can take captures; otherwise what is wrong (readiness).</summary>
    Task<string?> CheckAsync(CancellationToken cancellationToken);
}

/// <summary>
/// What is durably stored of an upload in progress, persisted after every part so that an operator
/// restart, or another replica becoming leader, continues exactly there.
/// </summary>
public sealed record UploadCheckpoint
{
    public required CaptureIdentity Target { get; init; }

    /// <summary>The agent session whose bytes these are: only it may continue this upload.</summary>
    public AgentSessionRecord? Session { get; init; }

    /// <summary>
    /// Written by earlier operators: the agent's Open.session_id itself. Read (as the hash of it)
    /// when <see cref="Session"/> is absent, so an upgrade resumes the uploads in flight.
    /// </summary>
    public string? SessionId { get; init; }

    /// <summary>The agent session that holds this upload: <see cref="Session"/>, or the one an older operator recorded.</summary>
    [JsonIgnore]
    public AgentSessionRecord? Holder => Session ?? (SessionId is { Length: > 0 } id ? new AgentSessionRecord(AgentSessionRecord.HashOf(id), null, StartedAt) : null);

    /// <summary>The most bytes the capture allows (spec.maxBytes as the reconciler resolved it); null: not enforced.</summary>
    public long? MaxBytes { get; init; }

    /// <summary>Who asked, why, the spec, the pod, the lock: what the manifest records, kept here so that a stream outliving its PacketCapture is stored with them.</summary>
    public TargetCustody? Custody { get; init; }

    public required string UploadId { get; init; }

    /// <summary>Bytes stored in <see cref="Parts"/>: the agent resumes here.</summary>
    public required long Offset { get; init; }

    public required IReadOnlyList<UploadedPart> Parts { get; init; }

    /// <summary>The SHA-256 state after the first <see cref="Offset"/> bytes (<see cref="ResumableSha256.ExportState"/>).</summary>
    public required string Sha256State { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    public required DateTimeOffset UpdatedAt { get; init; }
}

public sealed record UploadedPart(int Number, long Size, string ETag);

/// <summary>The bytes stored as a capture target's manifest: signed by the operator (Custody/ManifestSigner), or plain.</summary>
public delegate byte[] ManifestSeal(StoredCaptureManifest manifest);

/// <summary>
/// The <c>.manifest.json</c> beside a stored pcap. It exists only for a complete, verified pcap: a
/// reader that finds it may trust the pcap's size and SHA-256.
/// </summary>
public sealed record StoredCaptureManifest
{
    public required string CaptureUid { get; init; }

    public required string Namespace { get; init; }

    public required string CaptureName { get; init; }

    public required string Pod { get; init; }

    public required string Uri { get; init; }

    public required long Size { get; init; }

    public required string Sha256 { get; init; }

    /// <summary>Always true: an incomplete upload is aborted, never published.</summary>
    public bool Complete { get; init; } = true;

    public required DateTimeOffset StoredAt { get; init; }

    /// <summary>When the retention sweeper deletes the pcap and this manifest; null keeps them.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>The agent's own manifest: capture window, stop reason, counters and drops, limits, summary.</summary>
    public CaptureManifest? Agent { get; init; }

    /// <summary>Set for snapshot N of a flight recording: N (the target's own pcap has none).</summary>
    public int? SnapshotIndex { get; init; }

    /// <summary>A snapshot's manifest from its agent: why it was kept (the trigger, its requester), its window, its packets and findings.</summary>
    public KubeCapture.Contracts.Recorder.SnapshotManifest? Snapshot { get; init; }

    /// <summary>The SHA-256 the agent computed (<see cref="Sha256"/> is the ingest's own, over the bytes it received; they are equal or nothing is stored).</summary>
    public string? AgentSha256 { get; init; }

    /// <summary>The pcap object's version ID on a versioned bucket.</summary>
    public string? VersionId { get; init; }

    /// <summary>Who asked for the capture, as kube-apiserver authenticated them (the admission stamp).</summary>
    public CaptureRequester? Requester { get; init; }

    /// <summary>spec.reason of the PacketCapture.</summary>
    public string? Reason { get; init; }

    /// <summary>The PacketCapture's spec as it was when the capture ran.</summary>
    public JsonElement? Spec { get; init; }

    /// <summary>The pod captured: name, UID, node, IPs.</summary>
    public TargetPodRecord? TargetPod { get; init; }

    /// <summary>The image of the capture container that took the pcap.</summary>
    public string? AgentImage { get; init; }

    /// <summary>Retention and Object Lock as applied to the stored pcap.</summary>
    public RetentionRecord? Retention { get; init; }

    /// <summary>The agent session that uploaded the pcap (the hash of its secret, its address, when it opened).</summary>
    public AgentSessionRecord? AgentSession { get; init; }

    /// <summary>
    /// Set when the pcap did not come from the target's capture agent (another session uploaded it
    /// first, and the agent was refused or never confirmed it): never clean evidence.
    /// </summary>
    public ContestRecord? Contested { get; init; }

    public CaptureIdentity Target => new(CaptureUid, Namespace, CaptureName, Pod, SnapshotIndex ?? 0);

    public StoredArtifact ToArtifact() => new(Uri, Size, Sha256, ExpiresAt, Retention);
}

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UploadCheckpoint))]
[JsonSerializable(typeof(StoredCaptureManifest))]
public sealed partial class StorageJsonContext : JsonSerializerContext
{
    public static byte[] Serialize(UploadCheckpoint value) => JsonSerializer.SerializeToUtf8Bytes(value, Default.UploadCheckpoint);

    public static byte[] Serialize(StoredCaptureManifest value) => JsonSerializer.SerializeToUtf8Bytes(value, Default.StoredCaptureManifest);

    /// <summary>The manifest stored unsigned (tools and benchmarks; the ingest signs).</summary>
    public static readonly ManifestSeal Unsigned = Serialize;

    public static UploadCheckpoint ReadCheckpoint(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, Default.UploadCheckpoint) ?? throw new JsonException("empty checkpoint");

    /// <summary>A stored manifest, signed (the payload of its envelope; the signature is checked by <c>kubecapture-agent verify</c>) or plain.</summary>
    public static StoredCaptureManifest ReadManifest(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(SignedManifest.IsEnvelope(json) ? Convert.FromBase64String(SignedManifest.FromJson(json).Payload) : json, Default.StoredCaptureManifest)
        ?? throw new JsonException("empty manifest");
}

/// <summary>Where each object of a capture target lives, under the configured prefix.</summary>
public sealed class ArtifactLayout(string prefix)
{
    public const string CheckpointFolder = ".ingest";

    private readonly string _prefix = prefix.Trim('/');

    public string Prefix => _prefix;

    public string PcapKey(CaptureIdentity t) => Join($"{t.Namespace}/{t.CaptureName}/{NameOf(t)}.pcap");

    public string ManifestKey(CaptureIdentity t) => Join($"{t.Namespace}/{t.CaptureName}/{NameOf(t)}.manifest.json");

    public string CheckpointKey(CaptureIdentity t) => Join($"{CheckpointFolder}/{t.Namespace}/{t.CaptureName}/{NameOf(t)}.json");

    /// <summary>The pod's name; snapshot N of its recording is POD_snapshot-N (a pod name has no '_', so it never collides with one).</summary>
    public static string NameOf(CaptureIdentity t) => t.Snapshot == 0 ? t.Pod : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{t.Pod}_snapshot-{t.Snapshot}");

    public string CheckpointPrefix => Join(CheckpointFolder + "/");

    public string Join(string relative) => _prefix.Length == 0 ? relative : $"{_prefix}/{relative}";
}
