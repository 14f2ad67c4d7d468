using KubeCapture.Operator.Reconciliation;

namespace KubeCapture.Operator;

public static class Program
{
    public static void Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddHealthChecks();
        builder.Services.AddPacketCaptureReconciler(builder.Configuration);
        var app = builder.Build();
        app.MapHealthChecks("/healthz");
        app.MapHealthChecks("/readyz");
        app.Run();
    }
}
