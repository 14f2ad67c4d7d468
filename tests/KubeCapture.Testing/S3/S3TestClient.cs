using System.Net;
using System.Xml.Linq;
using KubeCapture.Operator.Storage;

namespace KubeCapture.Testing.S3;

/// <summary>A multipart upload in progress, as ListMultipartUploads reports it.</summary>
public sealed record MultipartUploadInfo(string Key, string UploadId);

/// <summary>One stored part of an upload in progress, as ListParts reports it.</summary>
public sealed record MultipartPartInfo(int Number, long Size, string ETag);

/// <summary>
/// Plain SigV4-signed S3 calls for tests, independent of the operator's store: create a bucket (with
/// Object Lock if asked), read an object, list multipart uploads and their parts.
/// </summary>
public sealed class S3TestClient(string endpoint, string accessKey, string secretKey, string region = "us-east-1") : IDisposable
{
    private static readonly XNamespace S3 = "http://s3.amazonaws.com/doc/2006-03-01/";
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private readonly S3Signer _signer = new(region, accessKey, secretKey);
    private readonly string _endpoint = endpoint.TrimEnd('/');

    public async Task CreateBucketAsync(string bucket, bool objectLock = false)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, $"{_endpoint}/{bucket}");
        if (objectLock)
        {
            request.Headers.TryAddWithoutValidation("x-amz-bucket-object-lock-enabled", "true");
        }

        using var response = await SendAsync(request);
        await EnsureAsync(response);
    }

    /// <summary>GET of the object; null on 404.</summary>
    public async Task<byte[]?> GetObjectAsync(string bucket, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{_endpoint}/{bucket}/{S3Signer.Encode(key, true)}");
        using var response = await SendAsync(request);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        await EnsureAsync(response);
        return await response.Content.ReadAsByteArrayAsync();
    }

    /// <summary>The ETag HEAD reports for the object (S3: <c>"md5-N"</c> for an object of N parts), or null on 404.</summary>
    public async Task<string?> HeadETagAsync(string bucket, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Head, $"{_endpoint}/{bucket}/{S3Signer.Encode(key, true)}");
        using var response = await SendAsync(request);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        await EnsureAsync(response);
        return response.Headers.ETag?.Tag ?? (response.Headers.TryGetValues("ETag", out var values) ? values.First() : null);
    }

    /// <summary>ListMultipartUploads of the bucket under <paramref name="prefix"/>.</summary>
    public async Task<IReadOnlyList<MultipartUploadInfo>> ListMultipartUploadsAsync(string bucket, string prefix = "")
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{_endpoint}/{bucket}?prefix={S3Signer.Encode(prefix, false)}&uploads=");
        using var response = await SendAsync(request);
        var xml = await ReadXmlAsync(response);
        return [.. xml.Descendants(S3 + "Upload").Select(u => new MultipartUploadInfo(u.Element(S3 + "Key")!.Value, u.Element(S3 + "UploadId")!.Value))];
    }

    /// <summary>ListParts of an upload; null when the server says NoSuchUpload (aborted or completed).</summary>
    public async Task<IReadOnlyList<MultipartPartInfo>?> ListPartsAsync(string bucket, string key, string uploadId)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{_endpoint}/{bucket}/{S3Signer.Encode(key, true)}?uploadId={S3Signer.Encode(uploadId, false)}");
        using var response = await SendAsync(request);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        var xml = await ReadXmlAsync(response);
        return [.. xml.Descendants(S3 + "Part").Select(p => new MultipartPartInfo(
            int.Parse(p.Element(S3 + "PartNumber")!.Value, System.Globalization.CultureInfo.InvariantCulture),
            long.Parse(p.Element(S3 + "Size")!.Value, System.Globalization.CultureInfo.InvariantCulture),
            p.Element(S3 + "ETag")!.Value))];
    }

    public void Dispose() => _http.Dispose();

    private Task<HttpResponseMessage> SendAsync(HttpRequestMessage request)
    {
        _signer.Sign(request, ReadOnlySpan<byte>.Empty, DateTime.UtcNow);
        return _http.SendAsync(request);
    }

    private static async Task<XDocument> ReadXmlAsync(HttpResponseMessage response)
    {
        await EnsureAsync(response);
        return XDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    private static async Task EnsureAsync(HttpResponseMessage response)
    {
        if (!response.IsSuccessStatusCode)
        {
            var body = response.Content is null ? "" : await response.Content.ReadAsStringAsync();
            throw new HttpRequestException($"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: {(int)response.StatusCode} {body}", null, response.StatusCode);
        }
    }
}
