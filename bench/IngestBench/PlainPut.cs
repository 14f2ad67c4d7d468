using KubeCapture.Operator.Storage;

namespace KubeCapture.Bench;

/// <summary>
/// One SigV4-signed PUT of a whole object with the operator's own S3 code (<see cref="S3Signer"/>,
/// HttpClient): the payload's SHA-256 is signed, exactly as the ingest signs its parts.
/// </summary>
public sealed class PlainPut(S3Options s3) : IDisposable
{
    private readonly HttpClient _http = new(new SocketsHttpHandler()) { Timeout = TimeSpan.FromMinutes(10) };
    private readonly S3Signer _signer = new(s3.Region, s3.AccessKey, s3.SecretKey);

    public async Task SendAsync(ReadOnlyMemory<byte> body, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, $"{s3.Endpoint.TrimEnd('/')}/{s3.Bucket}/{S3Signer.Encode(key, true)}") { Content = new ReadOnlyMemoryContent(body) };
        _signer.Sign(request, body.Span, DateTime.UtcNow);
        using var response = await _http.SendAsync(request);
        if (!response.IsSuccessStatusCode)
        {
            throw new IOException($"PUT {key} failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    public void Dispose() => _http.Dispose();
}
