using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// Readiness: the upload token key is read (from Ingest:TokenKeySecret). Until then the ingest can
/// check no agent's token and answers every upload "unavailable, retry": a replica that cannot ingest
/// is not put behind the ingest Service (a rollout waits for it before taking the next old one).
/// </summary>
public sealed class TokenKeyHealthCheck(IngestTokenKeys keys) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(keys.IsLoaded ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("the upload token key (Ingest:TokenKeySecret) is not read yet"));
}
