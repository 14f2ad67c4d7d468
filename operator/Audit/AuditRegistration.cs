using k8s;
using KubeCapture.Operator.Events;

namespace KubeCapture.Operator.Audit;

/// <summary>The audit log on stdout; Events through the process's recorder when there is a Kubernetes client.</summary>
public static class AuditRegistration
{
    public static IServiceCollection AddAuditTrail(this IServiceCollection services) =>
        services.AddSingleton(sp => new AuditTrail(Console.Out, sp.GetService<IKubernetes>(), sp.GetService<CaptureEvents>(),
            sp.GetService<TimeProvider>() ?? TimeProvider.System, sp.GetRequiredService<ILoggerFactory>()));
}
