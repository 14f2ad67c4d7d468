using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KubeCapture.Operator.Storage;

/// <summary>Readiness: the operator can only accept captures when its storage answers (the bucket exists, or the directory is writable).</summary>
public sealed class StorageHealthCheck(IArtifactStore store) : IHealthCheck
{
    public const string ReadyTag = "ready";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            return await store.CheckAsync(cancellationToken) is { } problem
                ? HealthCheckResult.Unhealthy(problem)
                : HealthCheckResult.Healthy();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy($"storage is unreachable: {e.Message}");
        }
    }
}
