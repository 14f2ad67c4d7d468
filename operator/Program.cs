using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Reconciliation;

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
        builder.Services.AddIngestAndStorage(builder.Configuration);
        if (builder.Configuration.GetValue("Reconciler:Enabled", defaultValue: true))
        {
            builder.Services.AddPacketCaptureReconciler(builder.Configuration);
        }
        var app = builder.Build();
        // Liveness: the process answers. Readiness: every check, storage included.
        app.MapHealthChecks("/healthz", new Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/readyz");
        app.MapIngest();
        return app;
    }
}
