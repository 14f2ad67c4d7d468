using KubeCapture.Operator.Metrics;

namespace KubeCapture.Operator.Storage;

/// <summary>
/// Times (and, with tracing on, traces) every request to the object store, whichever client sends
/// it: the signed multipart steps and the Minio client's puts, stats, tags, listings and deletes
/// alike. Outcome ok (2xx), refused (4xx), or error (5xx, timeouts, unreachable).
/// </summary>
public sealed class StorageRequestTiming : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var timing = OperatorMetrics.TimeStorage(S3ArtifactStore.Operation(request));
        var response = await base.SendAsync(request, cancellationToken);
        timing.Outcome = response.IsSuccessStatusCode ? "ok" : (int)response.StatusCode is >= 400 and < 500 ? "refused" : "error";
        return response;
    }
}
