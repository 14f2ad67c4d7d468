using k8s;
using KubeCapture.Operator.Events;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace KubeCapture.Operator.Health;

/// <summary>
/// services.AddKubernetesClient(): one IKubernetes for the process (in the cluster: the service
/// account; out of it: KUBECONFIG or ~/.kube/config), every request going through
/// KubernetesApiHealth so that readiness knows when the API stops answering; and one Event recorder
/// on it (<see cref="CaptureEvents"/>: the controller, the downloads and the audit log share its
/// backlog and the server's Retry-After). Idempotent.
/// </summary>
public static class KubernetesClientRegistration
{
    public static IServiceCollection AddKubernetesClient(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new CaptureEvents(sp.GetRequiredService<IKubernetes>(), sp.GetRequiredService<ILogger<CaptureEvents>>(), sp.GetRequiredService<TimeProvider>()));
        if (services.Any(d => d.ServiceType == typeof(KubernetesApiHealth)))
        {
            return services;
        }

        services.AddSingleton<KubernetesApiHealth>();
        services.AddHealthChecks().AddCheck<KubernetesApiHealth>("kubernetes-api");
        services.TryAddSingleton<IKubernetes>(sp => new k8s.Kubernetes(KubernetesClientConfiguration.IsInCluster()
            ? KubernetesClientConfiguration.InClusterConfig()
            : KubernetesClientConfiguration.BuildConfigFromConfigFile(Environment.GetEnvironmentVariable("KUBECONFIG")), sp.GetRequiredService<KubernetesApiHealth>()));
        return services;
    }
}
