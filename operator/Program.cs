using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Metrics;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Subresources;
using KubeCapture.Operator.Tracing;
using OpenTelemetry.Metrics;

namespace KubeCapture.Operator;

public static class Program
{
    public static void Main(string[] args) => Build(args).Run();

    /// <summary>The operator's host, configured from appsettings.json, environment variables and <paramref name="args"/>.</summary>
    public static WebApplication Build(string[] args)
    {
        // appsettings.json is found beside the executable, whatever the working directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Services.AddHealthChecks();
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter(OperatorMetrics.MeterName).AddPrometheusExporter());
        builder.AddCaptureTracing();
        builder.Services.AddCustody(builder.Configuration);
        builder.Services.AddAuditTrail();
        builder.Services.AddIngestAndStorage(builder.Configuration);
        if (builder.Configuration.GetValue("Reconciler:Enabled", defaultValue: true))
        {
            builder.Services.AddPacketCaptureReconciler(builder.Configuration);
        }
        var subresources = builder.Configuration.GetValue($"{SubresourcesOptions.Section}:Enabled", defaultValue: false);
        if (subresources)
        {
            builder.AddSubresources();
        }

        var admission = builder.Configuration.GetValue($"{AdmissionOptions.Section}:Enabled", defaultValue: false);
        if (admission)
        {
            builder.AddAdmission();
        }

        if (builder.Configuration.GetSection(ServingCertificateOptions.Section).Exists())
        {
            builder.Services.AddServingCertificate(builder.Configuration);
        }

        builder.AddIngestTls();

        var app = builder.Build();
        // Liveness: the process answers. Readiness: every check, storage included.
        app.MapHealthChecks("/healthz", new Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/readyz", new Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions { ResponseWriter = WriteReadiness });
        app.MapIngest();
        // Prometheus scrapes the health port (HTTP/1.1), not the ingest.
        app.MapPrometheusScrapingEndpoint("/metrics");
        if (subresources)
        {
            app.MapSubresources();
        }

        if (admission)
        {
            app.MapAdmission();
        }

        return app;
    }

    /// <summary>/readyz in words: "Healthy", or "Unhealthy" and what is not ready (storage, the Kubernetes API), one per line.</summary>
    private static Task WriteReadiness(HttpContext context, Microsoft.Extensions.Diagnostics.HealthChecks.HealthReport report)
    {
        context.Response.ContentType = "text/plain; charset=utf-8";
        var lines = report.Entries.Where(e => e.Value.Status != Microsoft.Extensions.Diagnostics.HealthChecks.HealthStatus.Healthy)
            .Select(e => $"{e.Key}: {e.Value.Description ?? e.Value.Exception?.Message}");
        return context.Response.WriteAsync(string.Join('\n', lines.Prepend(report.Status.ToString())) + "\n");
    }
}
