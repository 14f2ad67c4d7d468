using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Alerts;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Metrics;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Subresources;
using KubeCapture.Operator.Tracing;

namespace KubeCapture.Operator;

public static class Program
{
    /// <summary>
    /// Exit codes: 0 stopped; 2 a setting it cannot run with (one sentence on stderr, no stack trace,
    /// as kubecapture-agent does with bad input); 1 it could not start for another reason (a port in
    /// use, ...), also in one sentence.
    /// </summary>
    public static int Main(string[] args)
    {
        WebApplication app;
        try
        {
            app = Build(args);
            app.Start();
        }
        catch (Exception e) when (ConfigurationError(e) is { } sentence)
        {
            Console.Error.WriteLine($"kubecapture-operator: {sentence}");
            return 2;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"kubecapture-operator: could not start: {e.GetType().Name}: {e.Message}");
            return 1;
        }

        app.WaitForShutdown();
        return 0;
    }

    /// <summary>The message of a configuration error at start (several joined), or null when <paramref name="e"/> is none.</summary>
    public static string? ConfigurationError(Exception e) => e switch
    {
        OperatorConfigurationException c => c.Message,
        Microsoft.Extensions.Options.OptionsValidationException o => string.Join("; ", o.Failures),
        AggregateException a when a.InnerExceptions.Select(ConfigurationError).ToList() is var messages && messages.All(m => m is not null) => string.Join("; ", messages),
        _ => null,
    };

    /// <summary>The operator's host, configured from appsettings.json, environment variables and <paramref name="args"/>.</summary>
    public static WebApplication Build(string[] args)
    {
        // appsettings.json is found beside the executable, whatever the working directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Services.AddHealthChecks();
        builder.Services.AddOperatorMetrics();
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

        var alerts = builder.Configuration.GetValue($"{AlertReceiverOptions.Section}:Enabled", defaultValue: false);
        if (alerts)
        {
            builder.AddAlertReceiver();
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
        CheckConfiguration(app.Services);
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

        if (alerts)
        {
            app.MapAlertReceiver();
        }

        if (admission)
        {
            app.MapAdmission();
        }

        return app;
    }

    /// <summary>
    /// Settings the host would otherwise find wrong only while it starts (and log with a stack trace
    /// before Main could say it in one sentence): options validation, the policy, the Lease timings.
    /// </summary>
    private static void CheckConfiguration(IServiceProvider services)
    {
        _ = services.GetService<Microsoft.Extensions.Options.IOptions<Storage.StorageOptions>>()?.Value;
        _ = services.GetService<Microsoft.Extensions.Options.IOptions<ServingCertificateOptions>>()?.Value;
        services.GetRequiredService<Microsoft.Extensions.Options.IOptions<CapturePolicy>>().Value.Validate();
        LeaderElection.LeaderGate.Validate(services.GetRequiredService<Microsoft.Extensions.Options.IOptions<LeaderElection.LeaderElectionOptions>>().Value);
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
