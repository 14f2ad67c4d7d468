using k8s;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace KubeCapture.Operator.Health;

/// <summary>
/// services.AddKubernetesClient(): one IKubernetes for the process (in the cluster: the service
/// account; out of it: KUBECONFIG or ~/.kube/config), every request going through
/// KubernetesApiHealth so that readiness knows when the API stops answering. Idempotent.
/// </summary>
public static class KubernetesClientRegistration
{
    public static IServiceCollection AddKubernetesClient(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
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
