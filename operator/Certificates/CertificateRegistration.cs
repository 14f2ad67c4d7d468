using KubeCapture.Operator.Health;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Certificates;

/// <summary>
/// services.AddServingCertificate(configuration): the serving certificate (Managed or Mounted), its
/// rotation, and the CA bundle publisher. Registers the Kubernetes client in Managed mode and to publish.
/// </summary>
public static class CertificateRegistration
{
    public static IServiceCollection AddServingCertificate(this IServiceCollection services, IConfiguration configuration)
    {
        if (services.Any(d => d.ServiceType == typeof(ServingCertificateSource)))
        {
            return services; // once for every HTTPS endpoint: one certificate, one rotation
        }

        services.AddOptions<ServingCertificateOptions>().Bind(configuration.GetSection(ServingCertificateOptions.Section))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<ServingCertificateOptions>, ServingCertificateValidation>();
        // Mounted files with nothing to publish need no Kubernetes API (a standalone ingest, tests).
        var options = configuration.GetSection(ServingCertificateOptions.Section).Get<ServingCertificateOptions>() ?? new ServingCertificateOptions();
        if (options.Mode != ServingCertificateModes.Mounted || CaBundlePublisher.Publishes(options))
        {
            services.AddKubernetesClient();
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ServingCertificateSource>();
        services.TryAddSingleton(sp => new CaBundlePublisher(sp.GetRequiredService<k8s.IKubernetes>(), sp.GetRequiredService<IOptions<ServingCertificateOptions>>().Value, sp.GetRequiredService<ILogger<CaBundlePublisher>>()));
        services.AddHostedService<ServingCertificateRotation>();
        return services;
    }

    private sealed class ServingCertificateValidation : IValidateOptions<ServingCertificateOptions>
    {
        public ValidateOptionsResult Validate(string? name, ServingCertificateOptions options) =>
            ServingCertificateConfiguration.Problems(options) is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
    }
}
