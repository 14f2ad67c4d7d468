namespace KubeCapture.Operator.Storage;

/// <summary>
/// Where captures are stored (configuration section <c>Storage</c>). With no <c>S3:Endpoint</c>,
/// captures go to the local filesystem under <see cref="LocalPath"/>.
/// </summary>
public sealed class StorageOptions
{
    public const string Section = "Storage";

    /// <summary>Key prefix (S3) or sub-directory (local) above <c>namespace/capture/pod.pcap</c>.</summary>
    public string Prefix { get; set; } = "captures";

    /// <summary>Root directory of the local filesystem store.</summary>
    public string LocalPath { get; set; } = "/var/lib/kubecapture";

    /// <summary>How long a storage call is retried (with backoff) before the upload fails for good.</summary>
    public TimeSpan RetryBudget { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Retention used when the capture does not say (PacketCapture spec.retention.ttl).</summary>
    public TimeSpan DefaultRetention { get; set; } = TimeSpan.FromHours(168);

    /// <summary>How often the retention sweeper looks for expired captures and abandoned uploads.</summary>
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>An upload whose agent has not been heard from for this long is abandoned and aborted.</summary>
    public TimeSpan AbandonAfter { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Bytes per part: the unit of upload and of acknowledgement. S3 wants 5 MiB at least (except the
    /// last part). The ingest holds about two parts in memory per upload.
    /// </summary>
    public int PartSize { get; set; } = 8 << 20;

    /// <summary>Parts of one upload sent to storage at the same time (memory: this many parts plus one). More helps against real S3; against s3rver (one Node.js thread) it does not.</summary>
    public int PartsInFlight { get; set; } = 1;

    public S3Options S3 { get; set; } = new();
}

/// <summary>An S3-compatible object store (MinIO, AWS S3, ...): configuration section <c>Storage:S3</c>.</summary>
public sealed class S3Options
{
    /// <summary>host[:port] or http(s)://host[:port]; empty selects the local filesystem store.</summary>
    public string Endpoint { get; set; } = "";

    public string Region { get; set; } = "us-east-1";

    public string Bucket { get; set; } = "kubecapture";

    /// <summary>HTTPS to the endpoint (ignored when Endpoint names its scheme).</summary>
    public bool UseTls { get; set; } = true;

    public string AccessKey { get; set; } = "";

    public string SecretKey { get; set; } = "";

    /// <summary>Server-side encryption: empty (none), <c>AES256</c> or <c>aws:kms</c>.</summary>
    public string ServerSideEncryption { get; set; } = "";

    /// <summary>The KMS key for <c>aws:kms</c>; empty uses the bucket's default key.</summary>
    public string KmsKeyId { get; set; } = "";

    /// <summary>Creates the bucket at startup when it is missing.</summary>
    public bool CreateBucket { get; set; }

    /// <summary>
    /// When above 0: at startup the operator installs (and checks) a lifecycle rule expiring objects
    /// under its prefix this many days after creation, a backstop that holds while the operator is
    /// down; set it at least as long as the longest spec.retention.ttl. Locked objects are not expired.
    /// </summary>
    public int LifecycleExpirationDays { get; set; }
}
