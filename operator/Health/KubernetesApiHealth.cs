using System.Net;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace KubeCapture.Operator.Health;

/// <summary>
/// Whether the Kubernetes API answers, learned from the operator's own requests (it sits in the
/// client's HTTP pipeline) rather than from probes of its own: the Lease renewals and watches
/// already ask often enough, and a quiet neighbour of the control plane adds no periodic reads.
/// A request that gets no answer (connection refused, timeout) or a 5xx marks the API unreachable
/// until the next request that gets an answer. Readiness (/readyz) reports it; liveness does not.
/// </summary>
public sealed class KubernetesApiHealth : DelegatingHandler, IHealthCheck
{
    private readonly Lock gate = new();
    private string? problem;
    private DateTimeOffset since;

    public bool Reachable
    {
        get
        {
            lock (gate)
            {
                return problem is null;
            }
        }
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        lock (gate)
        {
            return Task.FromResult(problem is null
                ? HealthCheckResult.Healthy("the Kubernetes API answers")
                : HealthCheckResult.Unhealthy($"the Kubernetes API has not answered since {since:O}: {problem}"));
        }
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        try
        {
            var response = await base.SendAsync(request, cancellationToken);
            if ((int)response.StatusCode >= 500 && response.StatusCode != HttpStatusCode.NotImplemented)
            {
                Record($"{request.Method} {request.RequestUri?.AbsolutePath}: {(int)response.StatusCode} {response.ReasonPhrase}");
            }
            else
            {
                Record(null);
            }

            return response;
        }
        catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            Record($"{request.Method} {request.RequestUri?.AbsolutePath}: {e.Message}");
            throw;
        }
    }

    private void Record(string? failure)
    {
        lock (gate)
        {
            if (failure is not null && problem is null)
            {
                since = DateTimeOffset.UtcNow;
            }

            problem = failure;
        }
    }
}
