using k8s;

namespace KubeCapture.Operator.Audit;

/// <summary>The audit log on stdout; Events through the Kubernetes client when the reconciler runs.</summary>
public static class AuditRegistration
{
    public static IServiceCollection AddAuditTrail(this IServiceCollection services) =>
        services.AddSingleton(sp => new AuditTrail(Console.Out, sp.GetService<IKubernetes>(), sp.GetService<TimeProvider>() ?? TimeProvider.System, sp.GetRequiredService<ILoggerFactory>()));
}
