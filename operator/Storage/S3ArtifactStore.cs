using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using System.Xml.Linq;
using KubeCapture.Contracts;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;
using Minio;
using Minio.DataModel.Args;
using Minio.DataModel.Encryption;
using Minio.DataModel.Tags;

namespace KubeCapture.Operator.Storage;

/// <summary>
/// Captures in an S3-compatible bucket. The pcap is a multipart upload (parts signed and sent as
/// they arrive, the upload ID and part ETags in a checkpoint object under
/// <c>&lt;prefix&gt;/.ingest/</c>); completing it is what makes <c>pod.pcap</c> exist, so an aborted or
/// unfinished upload is never visible. The pcap carries metadata (capture UID, namespace, name,
/// pod, expiry) and, once verified, tags with its SHA-256; <c>pod.manifest.json</c> is written last.
/// Everything but the multipart steps goes through the Minio client.
/// </summary>
public sealed class S3ArtifactStore : IArtifactStore, IDisposable
{
    private const string PcapContentType = "application/vnd.tcpdump.pcap";
    private readonly S3Options _options;
    private readonly ArtifactLayout _layout;
    private readonly HttpClient _http;
    private readonly IMinioClient _minio;
    private readonly S3Signer _signer;
    private readonly Uri _endpoint;

    public S3ArtifactStore(S3Options options, string prefix)
    {
        _options = options;
        _layout = new ArtifactLayout(prefix);
        _endpoint = ParseEndpoint(options);
        if (string.IsNullOrEmpty(options.AccessKey) || string.IsNullOrEmpty(options.SecretKey))
        {
            throw new InvalidOperationException("Storage:S3:AccessKey and Storage:S3:SecretKey must be set (environment Storage__S3__AccessKey / Storage__S3__SecretKey, from a Secret)");
        }

        if (options.ServerSideEncryption is not ("" or "AES256" or "aws:kms"))
        {
            throw new InvalidOperationException($"Storage:S3:ServerSideEncryption '{options.ServerSideEncryption}' is not supported: use AES256, aws:kms, or leave it empty");
        }

        _http = new HttpClient(new StorageRequestTiming { InnerHandler = new ListObjectsNamespaceFix { InnerHandler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(5) } } })
        {
            Timeout = TimeSpan.FromMinutes(2),
        };
        _minio = new MinioClient()
            .WithEndpoint(_endpoint.Host, _endpoint.Port)
            .WithCredentials(options.AccessKey, options.SecretKey)
            .WithRegion(options.Region)
            .WithSSL(_endpoint.Scheme == Uri.UriSchemeHttps)
            .WithHttpClient(_http)
            .Build();
        _signer = new S3Signer(options.Region, options.AccessKey, options.SecretKey);
    }

    public string Bucket => _options.Bucket;

    public IMinioClient Minio => _minio;

    public string UriOf(CaptureIdentity target) => $"s3://{_options.Bucket}/{_layout.PcapKey(target)}";

    /// <summary>Creates the bucket when it is missing (Storage:S3:CreateBucket).</summary>
    public async Task EnsureBucketAsync(CancellationToken cancellationToken)
    {
        if (!await _minio.BucketExistsAsync(new BucketExistsArgs().WithBucket(_options.Bucket), cancellationToken))
        {
            await _minio.MakeBucketAsync(new MakeBucketArgs().WithBucket(_options.Bucket).WithLocation(_options.Region), cancellationToken);
        }
    }

    public async Task<UploadCheckpoint?> LoadCheckpointAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        var bytes = await GetSmallObjectAsync(_layout.CheckpointKey(target), cancellationToken);
        return bytes is null ? null : StorageJsonContext.ReadCheckpoint(bytes);
    }

    public Task SaveCheckpointAsync(UploadCheckpoint checkpoint, CancellationToken cancellationToken) =>
        PutSmallObjectAsync(_layout.CheckpointKey(checkpoint.Target), StorageJsonContext.Serialize(checkpoint), new Dictionary<string, string>
        {
            ["x-amz-meta-capture-uid"] = checkpoint.Target.CaptureUid,
        }, cancellationToken);

    public async Task<string> BeginUploadAsync(CaptureIdentity target, DateTimeOffset? expiresAt, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, ObjectUri(_layout.PcapKey(target), "uploads="));
        request.Headers.TryAddWithoutValidation("x-amz-meta-capture-uid", target.CaptureUid);
        request.Headers.TryAddWithoutValidation("x-amz-meta-capture-namespace", target.Namespace);
        request.Headers.TryAddWithoutValidation("x-amz-meta-capture-name", target.CaptureName);
        request.Headers.TryAddWithoutValidation("x-amz-meta-pod", target.Pod);
        if (expiresAt is { } expiry)
        {
            request.Headers.TryAddWithoutValidation("x-amz-meta-expires-at", FormatTime(expiry));
        }

        AddEncryptionHeaders(request);
        request.Content = new ByteArrayContent([]);
        request.Content.Headers.TryAddWithoutValidation("Content-Type", PcapContentType);
        using var response = await SendSignedAsync(request, ReadOnlyMemory<byte>.Empty, cancellationToken);
        var xml = XDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        return xml.Descendants().FirstOrDefault(e => e.Name.LocalName == "UploadId")?.Value
            ?? throw new IOException($"S3 did not return an UploadId for {UriOf(target)}");
    }

    public async Task<string> UploadPartAsync(CaptureIdentity target, string uploadId, int partNumber, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, ObjectUri(_layout.PcapKey(target), $"partNumber={partNumber}&uploadId={SigV4(uploadId)}"))
        {
            Content = new ReadOnlyMemoryContent(data),
        };
        using var response = await SendSignedAsync(request, data, cancellationToken);
        return response.Headers.ETag?.Tag ?? (response.Headers.TryGetValues("ETag", out var values) ? values.First() : throw new IOException($"S3 returned no ETag for part {partNumber} of {UriOf(target)}"));
    }

    public async Task<StoredCaptureManifest> CompleteUploadAsync(UploadCheckpoint checkpoint, StoredCaptureManifest manifest, ManifestSeal seal, CancellationToken cancellationToken)
    {
        var target = checkpoint.Target;
        var key = _layout.PcapKey(target);
        string? versionId = null;
        try
        {
            // S3 (AWS, RGW, s3rver) refuses to complete an upload of no part (MalformedXML): an empty
            // pcap is completed from one empty part.
            var parts = checkpoint.Parts.Count > 0
                ? checkpoint.Parts
                : [new UploadedPart(1, 0, await UploadPartAsync(target, checkpoint.UploadId, 1, ReadOnlyMemory<byte>.Empty, cancellationToken))];
            var body = new StringBuilder("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
            foreach (var part in parts.OrderBy(p => p.Number))
            {
                body.Append(CultureInfo.InvariantCulture, $"<Part><PartNumber>{part.Number}</PartNumber><ETag>{System.Security.SecurityElement.Escape(part.ETag)}</ETag></Part>");
            }

            body.Append("</CompleteMultipartUpload>");
            var payload = Encoding.UTF8.GetBytes(body.ToString());
            using var request = new HttpRequestMessage(HttpMethod.Post, ObjectUri(key, $"uploadId={SigV4(checkpoint.UploadId)}")) { Content = new ByteArrayContent(payload) };
            request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/xml");

            // The answer's ETag is not used: RGW sends an empty one (HEAD and listings have it right).
            using var response = await SendSignedAsync(request, payload, cancellationToken);
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (text.Contains("<Error>", StringComparison.Ordinal))
            {
                throw new IOException($"completing {UriOf(target)} failed: {text}");
            }

            versionId = response.Headers.TryGetValues("x-amz-version-id", out var versions) ? versions.FirstOrDefault() : null;
        }
        catch (S3ErrorException e) when (e.Code == "NoSuchUpload")
        {
            // Completed by an earlier attempt that crashed before writing the manifest?
            var stat = await _minio.StatObjectAsync(new StatObjectArgs().WithBucket(_options.Bucket).WithObject(key), cancellationToken);
            var uid = stat.MetaData.FirstOrDefault(m => m.Key.Equals("capture-uid", StringComparison.OrdinalIgnoreCase) || m.Key.Equals("x-amz-meta-capture-uid", StringComparison.OrdinalIgnoreCase)).Value;
            if (stat.Size != checkpoint.Offset || uid != target.CaptureUid)
            {
                throw new IOException($"the multipart upload of {UriOf(target)} is gone and the object there is not this capture's ({stat.Size} bytes, uid {uid})", e);
            }

            versionId = stat.VersionId;
        }

        manifest = manifest with { VersionId = string.IsNullOrEmpty(versionId) || versionId == "null" ? null : versionId };

        var tags = new Dictionary<string, string> { ["sha256"] = manifest.Sha256, ["capture-uid"] = target.CaptureUid };
        if (manifest.ExpiresAt is { } expiresAt)
        {
            tags["expires-at"] = FormatTime(expiresAt);
        }

        await _minio.SetObjectTagsAsync(new SetObjectTagsArgs().WithBucket(_options.Bucket).WithObject(key).WithTagging(new Tagging(tags, false)), cancellationToken);

        // After completion: RGW ignores lock headers on CreateMultipartUpload, a retention set on the
        // completed object is enforced.
        await LockAsync(key, manifest.VersionId, manifest.Retention, cancellationToken);
        var metadata = new Dictionary<string, string>
        {
            ["x-amz-meta-capture-uid"] = target.CaptureUid,
            ["x-amz-meta-sha256"] = manifest.Sha256,
        };
        if (manifest.ExpiresAt is { } expiry)
        {
            metadata["x-amz-meta-expires-at"] = FormatTime(expiry);
        }

        await PutSmallObjectAsync(_layout.ManifestKey(target), seal(manifest), metadata, cancellationToken);
        await LockAsync(_layout.ManifestKey(target), null, manifest.Retention, cancellationToken);
        return manifest;
    }

    public async Task AmendManifestAsync(StoredCaptureManifest manifest, ManifestSeal seal, CancellationToken cancellationToken)
    {
        var metadata = new Dictionary<string, string>
        {
            ["x-amz-meta-capture-uid"] = manifest.CaptureUid,
            ["x-amz-meta-sha256"] = manifest.Sha256,
        };
        if (manifest.ExpiresAt is { } expiry)
        {
            metadata["x-amz-meta-expires-at"] = FormatTime(expiry);
        }

        if (manifest.Contested is not null)
        {
            metadata["x-amz-meta-contested"] = "true";
        }

        var key = _layout.ManifestKey(manifest.Target);
        await PutSmallObjectAsync(key, seal(manifest), metadata, cancellationToken);
        await LockAsync(key, null, manifest.Retention, cancellationToken);
    }

    public Task RemoveCheckpointAsync(CaptureIdentity target, CancellationToken cancellationToken) =>
        RemoveAsync(_layout.CheckpointKey(target), cancellationToken);

    public async Task AbortUploadAsync(UploadCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, ObjectUri(_layout.PcapKey(checkpoint.Target), $"uploadId={SigV4(checkpoint.UploadId)}"));
        try
        {
            using var response = await SendSignedAsync(request, ReadOnlyMemory<byte>.Empty, cancellationToken);
        }
        catch (S3ErrorException e) when (e.Code == "NoSuchUpload" || e.Status == HttpStatusCode.NotFound)
        {
            // already gone
        }
        catch (S3ErrorException e) when (e.Status is HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotImplemented)
        {
            // The server cannot abort multipart uploads (s3rver): the parts stay, invisible, until
            // the server drops them (on S3/MinIO: the bucket's AbortIncompleteMultipartUpload rule).
            // Nothing is published either way.
        }

        await RemoveAsync(_layout.CheckpointKey(checkpoint.Target), cancellationToken);
    }

    public async Task<StoredCaptureManifest?> FindStoredAsync(CaptureIdentity target, CancellationToken cancellationToken)
    {
        var bytes = await ReadStoredManifestAsync(target, cancellationToken);
        return bytes is null ? null : StorageJsonContext.ReadManifest(bytes);
    }

    public Task<byte[]?> ReadStoredManifestAsync(CaptureIdentity target, CancellationToken cancellationToken) =>
        GetSmallObjectAsync(_layout.ManifestKey(target), cancellationToken);

    public async Task<Stream?> OpenStoredAsync(StoredCaptureManifest stored, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, ObjectUri(_layout.PcapKey(stored.Target), ""));
        HttpResponseMessage response;
        try
        {
            response = await SendSignedAsync(request, ReadOnlyMemory<byte>.Empty, cancellationToken, HttpCompletionOption.ResponseHeadersRead);
        }
        catch (S3ErrorException e) when (e.Status == HttpStatusCode.NotFound)
        {
            return null;
        }

        return new ResponseStream(response, await response.Content.ReadAsStreamAsync(cancellationToken));
    }

    public async IAsyncEnumerable<StoredCaptureManifest> ListStoredAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var checkpoints = _layout.CheckpointPrefix;
        await foreach (var item in _minio.ListObjectsEnumAsync(new ListObjectsArgs().WithBucket(_options.Bucket).WithPrefix(_layout.Join("")).WithRecursive(true), cancellationToken))
        {
            if (item.IsDir || !item.Key.EndsWith(".manifest.json", StringComparison.Ordinal) || item.Key.StartsWith(checkpoints, StringComparison.Ordinal))
            {
                continue;
            }

            if (await GetSmallObjectAsync(item.Key, cancellationToken) is { } bytes)
            {
                yield return StorageJsonContext.ReadManifest(bytes);
            }
        }
    }

    public async IAsyncEnumerable<UploadCheckpoint> ListCheckpointsAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var item in _minio.ListObjectsEnumAsync(new ListObjectsArgs().WithBucket(_options.Bucket).WithPrefix(_layout.CheckpointPrefix).WithRecursive(true), cancellationToken))
        {
            if (!item.IsDir && item.Key.EndsWith(".json", StringComparison.Ordinal) && await GetSmallObjectAsync(item.Key, cancellationToken) is { } bytes)
            {
                yield return StorageJsonContext.ReadCheckpoint(bytes);
            }
        }
    }

    public async Task DeleteStoredAsync(StoredCaptureManifest stored, CancellationToken cancellationToken)
    {
        if (stored.VersionId is null)
        {
            await RemoveAsync(_layout.PcapKey(stored.Target), cancellationToken);
            await RemoveAsync(_layout.ManifestKey(stored.Target), cancellationToken);
            return;
        }

        // A versioned bucket (Object Lock turns versioning on): a DELETE without a version only adds a
        // delete marker and keeps the bytes; delete every version, so a lock really decides.
        await RemoveAllVersionsAsync(_layout.PcapKey(stored.Target), cancellationToken);
        await RemoveAllVersionsAsync(_layout.ManifestKey(stored.Target), cancellationToken);
    }

    public async Task<string?> CheckObjectLockAsync(CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, BucketUri("object-lock="));
        try
        {
            using var response = await SendSignedAsync(request, ReadOnlyMemory<byte>.Empty, cancellationToken);
            var xml = XDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
            return xml.Descendants().FirstOrDefault(e => e.Name.LocalName == "ObjectLockEnabled")?.Value == "Enabled"
                ? null
                : $"bucket {_options.Bucket} has no Object Lock enabled";
        }
        catch (S3ErrorException e) when (e.IsPermanent || e.Status is HttpStatusCode.NotImplemented)
        {
            return $"bucket {_options.Bucket} has no Object Lock ({e.Code ?? e.Status.ToString()}): create the bucket with Object Lock enabled to keep locked or held captures";
        }
    }

    /// <summary>The ID of the lifecycle rule the operator keeps for its prefix.</summary>
    public string LifecycleRuleId => $"kubecapture-expiry-{(_layout.Prefix.Length == 0 ? "all" : _layout.Prefix.Replace('/', '-'))}";

    /// <summary>
    /// Installs the lifecycle rule expiring everything under the prefix after <paramref name="days"/>
    /// days, keeping the bucket's other rules; returns what it found and did (for the log). A store
    /// without lifecycle support (s3rver) is told apart: the sweeper remains the only expiry there.
    /// </summary>
    public async Task<string> EnsureLifecycleAsync(int days, CancellationToken cancellationToken)
    {
        XNamespace s3 = "http://s3.amazonaws.com/doc/2006-03-01/";
        var rules = new List<XElement>();
        using (var get = new HttpRequestMessage(HttpMethod.Get, BucketUri("lifecycle=")))
        {
            try
            {
                using var response = await SendSignedAsync(get, ReadOnlyMemory<byte>.Empty, cancellationToken);
                var existing = XDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
                rules.AddRange(existing.Root?.Elements().Where(e => e.Name.LocalName == "Rule") ?? []);
            }
            catch (S3ErrorException e) when (e.Code == "NoSuchLifecycleConfiguration")
            {
            }
        }

        var ours = rules.FirstOrDefault(r => r.Elements().Any(e => e.Name.LocalName == "ID" && e.Value == LifecycleRuleId));
        var wanted = new XElement(s3 + "Rule",
            new XElement(s3 + "ID", LifecycleRuleId),
            new XElement(s3 + "Filter", new XElement(s3 + "Prefix", _layout.Join(""))),
            new XElement(s3 + "Status", "Enabled"),
            new XElement(s3 + "Expiration", new XElement(s3 + "Days", days)));
        if (ours is not null && ours.Descendants().FirstOrDefault(e => e.Name.LocalName == "Days")?.Value == days.ToString(CultureInfo.InvariantCulture)
            && ours.Descendants().FirstOrDefault(e => e.Name.LocalName == "Status")?.Value == "Enabled")
        {
            return $"lifecycle rule {LifecycleRuleId} (expire {_layout.Join("")} after {days} days) is in place";
        }

        rules.Remove(ours!);
        var configuration = new XElement(s3 + "LifecycleConfiguration", rules.Select(r => new XElement(r)).Append(wanted));
        await PutXmlAsync(BucketUri("lifecycle="), configuration.ToString(SaveOptions.DisableFormatting), cancellationToken);
        return $"installed lifecycle rule {LifecycleRuleId}: expire {_layout.Join("")} after {days} days";
    }

    /// <summary>Sets the Object Lock retention and legal hold of one object version (none: nothing to do).</summary>
    private async Task LockAsync(string key, string? versionId, RetentionRecord? retention, CancellationToken cancellationToken)
    {
        if (retention is null)
        {
            return;
        }

        var version = versionId is null ? "" : $"&versionId={SigV4(versionId)}";
        if (retention.Lock is "governance" or "compliance")
        {
            var until = retention.RetainUntil ?? throw new InvalidOperationException($"a {retention.Lock} lock needs a retention end");
            await PutXmlAsync(key, "retention=" + version,
                $"<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{retention.Lock.ToUpperInvariant()}</Mode><RetainUntilDate>{until.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture)}</RetainUntilDate></Retention>",
                cancellationToken);
        }

        if (retention.LegalHold)
        {
            await PutXmlAsync(key, "legal-hold=" + version, "<LegalHold xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>ON</Status></LegalHold>", cancellationToken);
        }
    }

    private Task PutXmlAsync(string key, string query, string xml, CancellationToken cancellationToken) => PutXmlAsync(ObjectUri(key, query), xml, cancellationToken);

    private async Task PutXmlAsync(Uri uri, string xml, CancellationToken cancellationToken)
    {
        var payload = Encoding.UTF8.GetBytes(xml);
        using var request = new HttpRequestMessage(HttpMethod.Put, uri) { Content = new ByteArrayContent(payload) };
        request.Content.Headers.TryAddWithoutValidation("Content-Type", "application/xml");
        request.Content.Headers.TryAddWithoutValidation("Content-MD5", Convert.ToBase64String(System.Security.Cryptography.MD5.HashData(payload)));
        using var response = await SendSignedAsync(request, payload, cancellationToken);
    }

    private async Task RemoveAllVersionsAsync(string key, CancellationToken cancellationToken)
    {
        using var list = new HttpRequestMessage(HttpMethod.Get, BucketUri($"prefix={SigV4(key)}&versions="));
        XDocument xml;
        using (var response = await SendSignedAsync(list, ReadOnlyMemory<byte>.Empty, cancellationToken))
        {
            xml = XDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        }

        foreach (var entry in xml.Descendants().Where(e => e.Name.LocalName is "Version" or "DeleteMarker"))
        {
            if (entry.Elements().FirstOrDefault(e => e.Name.LocalName == "Key")?.Value != key)
            {
                continue;
            }

            var versionId = entry.Elements().FirstOrDefault(e => e.Name.LocalName == "VersionId")?.Value ?? "null";
            using var delete = new HttpRequestMessage(HttpMethod.Delete, ObjectUri(key, $"versionId={SigV4(versionId)}"));
            using var deleted = await SendSignedAsync(delete, ReadOnlyMemory<byte>.Empty, cancellationToken);
        }
    }

    private Uri BucketUri(string query) =>
        new($"{_endpoint.GetLeftPart(UriPartial.Authority)}/{S3Signer.Encode(_options.Bucket, false)}?{query}");

    public async Task<string?> CheckAsync(CancellationToken cancellationToken) =>
        await _minio.BucketExistsAsync(new BucketExistsArgs().WithBucket(_options.Bucket), cancellationToken)
            ? null
            : $"bucket {_options.Bucket} does not exist at {_endpoint}";

    public void Dispose()
    {
        _minio.Dispose();
        _http.Dispose();
    }

    private async Task<byte[]?> GetSmallObjectAsync(string key, CancellationToken cancellationToken)
    {
        // The JSON objects written here are never empty. An empty answer is a store that writes an
        // object in place (s3rver) read while it is being replaced: read again, then say so.
        for (var attempt = 1; ; attempt++)
        {
            // A signed GET of our own: Minio 7.0.0 throws a NullReferenceException instead of
            // ObjectNotFoundException for some 404s, and "not there" is an ordinary answer here.
            using var request = new HttpRequestMessage(HttpMethod.Get, ObjectUri(key, ""));
            byte[] bytes;
            try
            {
                using var response = await SendSignedAsync(request, ReadOnlyMemory<byte>.Empty, cancellationToken);
                bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            }
            catch (S3ErrorException e) when (e.Status == HttpStatusCode.NotFound)
            {
                return null;
            }

            if (bytes.Length > 0)
            {
                return bytes;
            }

            if (attempt == 3)
            {
                throw new IOException($"{_options.Bucket}/{key} is empty three times in a row: the store answers with an object that is being written, or someone emptied it");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50 * attempt), cancellationToken);
        }
    }

    private async Task PutSmallObjectAsync(string key, byte[] data, Dictionary<string, string> metadata, CancellationToken cancellationToken)
    {
        using var stream = new MemoryStream(data);
        var args = new PutObjectArgs().WithBucket(_options.Bucket).WithObject(key).WithStreamData(stream).WithObjectSize(data.Length)
            .WithContentType("application/json").WithHeaders(metadata);
        if (Encryption() is { } sse)
        {
            args = args.WithServerSideEncryption(sse);
        }

        await _minio.PutObjectAsync(args, cancellationToken);
    }

    private Task RemoveAsync(string key, CancellationToken cancellationToken) =>
        _minio.RemoveObjectAsync(new RemoveObjectArgs().WithBucket(_options.Bucket).WithObject(key), cancellationToken);

    private IServerSideEncryption? Encryption() => _options.ServerSideEncryption switch
    {
        "AES256" => new SSES3(),
        "aws:kms" => new SSEKMS(_options.KmsKeyId, new Dictionary<string, string>()),
        _ => null,
    };

    private void AddEncryptionHeaders(HttpRequestMessage request)
    {
        if (_options.ServerSideEncryption.Length == 0)
        {
            return;
        }

        request.Headers.TryAddWithoutValidation("x-amz-server-side-encryption", _options.ServerSideEncryption);
        if (_options.ServerSideEncryption == "aws:kms" && _options.KmsKeyId.Length > 0)
        {
            request.Headers.TryAddWithoutValidation("x-amz-server-side-encryption-aws-kms-key-id", _options.KmsKeyId);
        }
    }

    private Uri ObjectUri(string key, string query) =>
        new($"{_endpoint.GetLeftPart(UriPartial.Authority)}/{S3Signer.Encode(_options.Bucket, false)}/{S3Signer.Encode(key, true)}{(query.Length > 0 ? "?" + query : "")}");

    private static string SigV4(string value) => S3Signer.Encode(value, false);

    private async Task<HttpResponseMessage> SendSignedAsync(HttpRequestMessage request, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        _signer.Sign(request, payload.Span, DateTime.UtcNow);
        var response = await _http.SendAsync(request, completion, cancellationToken);
        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        response.Dispose();
        string? code = null;
        try
        {
            code = XDocument.Parse(text).Descendants().FirstOrDefault(e => e.Name.LocalName == "Code")?.Value;
        }
        catch (System.Xml.XmlException)
        {
        }

        throw new S3ErrorException(response.StatusCode, code, $"{request.Method} {request.RequestUri?.AbsolutePath}: {(int)response.StatusCode} {code ?? text}");
    }

    /// <summary>The S3 API operation of a request (a bounded metric label).</summary>
    internal static string Operation(HttpRequestMessage request)
    {
        var query = request.RequestUri?.Query ?? "";
        bool Has(string name) => query.Contains($"?{name}", StringComparison.Ordinal) || query.Contains($"&{name}", StringComparison.Ordinal);
        return request.Method.Method switch
        {
            "PUT" when Has("partNumber=") => "UploadPart",
            "PUT" when Has("retention") => "PutObjectRetention",
            "PUT" when Has("legal-hold") => "PutObjectLegalHold",
            "PUT" when Has("lifecycle") => "PutBucketLifecycle",
            "PUT" when Has("tagging") => "PutObjectTagging",
            "PUT" => "PutObject",
            "POST" when Has("uploads") => "CreateMultipartUpload",
            "POST" when Has("uploadId=") => "CompleteMultipartUpload",
            "POST" when Has("delete") => "DeleteObjects",
            "DELETE" when Has("uploadId=") => "AbortMultipartUpload",
            "DELETE" => "DeleteObject",
            "GET" when Has("list-type=") || Has("prefix=") => "ListObjects",
            "GET" when Has("uploads") => "ListMultipartUploads",
            "GET" when Has("object-lock") || Has("lifecycle") || Has("versioning") => "GetBucketConfiguration",
            "GET" => "GetObject",
            "HEAD" => request.RequestUri?.AbsolutePath.Trim('/').Contains('/', StringComparison.Ordinal) == true ? "HeadObject" : "HeadBucket",
            _ => "Other",
        };
    }

    private static string FormatTime(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static Uri ParseEndpoint(S3Options options)
    {
        var text = options.Endpoint.Trim();
        if (!text.Contains("://", StringComparison.Ordinal))
        {
            text = (options.UseTls ? "https://" : "http://") + text;
        }

        return Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? uri
            : throw new InvalidOperationException($"Storage:S3:Endpoint '{options.Endpoint}' is not host:port or an http(s) URL");
    }
}

/// <summary>An S3 error response, with its code (NoSuchUpload, AccessDenied, ...).</summary>
public sealed class S3ErrorException(HttpStatusCode status, string? code, string message) : IOException(message)
{
    public HttpStatusCode Status { get; } = status;

    public string? Code { get; } = code;

    /// <summary>
    /// The server refused the request itself (a 4xx such as EntityTooSmall, MalformedXML, InvalidPart,
    /// NoSuchUpload, AccessDenied, NoSuchBucket): sending it again cannot succeed, so it is not retried.
    /// Timeouts, throttling and conflicts (408, 409, 429, RequestTimeout, IncompleteBody, SlowDown)
    /// and every 5xx are worth retrying.
    /// </summary>
    public bool IsPermanent =>
        (int)Status is >= 400 and < 500
        && Status is not (HttpStatusCode.RequestTimeout or HttpStatusCode.Conflict or HttpStatusCode.TooManyRequests)
        && Code is not ("RequestTimeout" or "IncompleteBody" or "SlowDown" or "RequestTimeTooSkewed");
}

/// <summary>An object's body read from the open response; disposing it closes the response.</summary>
internal sealed class ResponseStream(HttpResponseMessage response, Stream body) : Stream
{
    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => response.Content.Headers.ContentLength ?? throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => body.Read(buffer, offset, count);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => body.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => body.ReadAsync(buffer, offset, count, cancellationToken);

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            body.Dispose();
            response.Dispose();
        }

        base.Dispose(disposing);
    }
}
