using Grpc.AspNetCore.Server;
using OpenTelemetry.Metrics;

namespace KubeCapture.Operator.Metrics;

/// <summary>services.AddOperatorMetrics(): the meter's Prometheus exporter (/metrics), the ingest's call outcomes, and the alerts' baseline series.</summary>
public static class MetricsRegistration
{
    public static IServiceCollection AddOperatorMetrics(this IServiceCollection services)
    {
        // The exporter's MeterProvider starts with OpenTelemetry's hosted service, registered here before the baseline's:
        // hosted services start in order, and a measurement made before the exporter listens is lost.
        services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter(OperatorMetrics.MeterName).AddPrometheusExporter());
        services.AddHostedService<MetricsBaseline>();
        services.Configure<GrpcServiceOptions>(options => options.Interceptors.Add<IngestStreamOutcomes>());
        return services;
    }

    private sealed class MetricsBaseline : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            OperatorMetrics.RecordBaseline();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
