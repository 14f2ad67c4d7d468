using k8s;
using KubeCapture.Operator.Health;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.LeaderElection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Reconciliation;

/// <summary>
/// services.AddPacketCaptureReconciler(configuration): the Kubernetes client (in the cluster: the
/// service account; out of it: KUBECONFIG or ~/.kube/config), the policy, leader election and the
/// controller as a hosted service. IIngestStatus, ICaptureTokenIssuer and IAgentAddresses come from the ingest's
/// registration.
/// </summary>
public static class ReconcilerRegistration
{
    public static IServiceCollection AddPacketCaptureReconciler(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ReconcilerOptions>().Bind(configuration.GetSection(ReconcilerOptions.Section)).PostConfigure(o =>
        {
            if (o.IngestUrl.Length == 0)
            {
                o.IngestUrl = configuration["Ingest:AdvertisedUrl"] ?? "";
            }

            if (configuration["Ingest:TokenDelivery"] is { } delivery)
            {
                o.TokenDelivery = TokenDeliveryChoice.Read(delivery);
            }
        });
        services.AddOptions<CapturePolicy>().Bind(configuration.GetSection(CapturePolicy.Section));
        services.AddOptions<LeaderElectionOptions>().Bind(configuration.GetSection(LeaderElectionOptions.Section));
        services.AddKubernetesClient();
        services.AddSingleton(sp => new CaptureOperator(
            sp.GetRequiredService<IKubernetes>(),
            sp.GetRequiredService<IIngestStatus>(),
            sp.GetRequiredService<ICaptureTokenIssuer>(),
            sp.GetRequiredService<IAgentAddresses>(),
            PolicyWithin(sp.GetRequiredService<IOptions<CapturePolicy>>().Value, sp.GetService<IOptions<KubeCapture.Operator.Storage.StorageOptions>>()?.Value),
            sp.GetRequiredService<IOptions<ReconcilerOptions>>().Value,
            sp.GetRequiredService<ILoggerFactory>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<KubeCapture.Operator.Custody.ICustodyWitness>(),
            sp.GetService<KubeCapture.Operator.Audit.AuditTrail>(),
            sp.GetService<KubeCapture.Operator.Storage.EvidenceRetention>(),
            sp.GetService<KubeCapture.Operator.Certificates.ServingCertificateSource>() is { } certificate ? () => certificate.AuthorityPem : null,
            sp.GetRequiredService<KubeCapture.Operator.Events.CaptureEvents>()));
        services.AddSingleton(sp => new LeaderGate(
            sp.GetRequiredService<IKubernetes>(),
            sp.GetRequiredService<IOptions<LeaderElectionOptions>>().Value,
            sp.GetRequiredService<ILogger<LeaderGate>>(),
            sp.GetRequiredService<TimeProvider>()));
        services.AddHostedService(sp => new ReconcilerHost(sp.GetRequiredService<LeaderGate>(), sp.GetRequiredService<CaptureOperator>(), sp.GetService<IngestTokenKeys>()));
        return services;
    }

    /// <summary>The policy, once the storage's default retention is found within its longest retention.</summary>
    private static CapturePolicy PolicyWithin(CapturePolicy policy, KubeCapture.Operator.Storage.StorageOptions? storage)
    {
        if (storage is not null)
        {
            policy.CheckDefaultRetention(storage.DefaultRetention);
        }

        return policy;
    }
}

/// <summary>
/// Runs the controller while this replica leads; stops it cleanly on shutdown. It joins the election
/// only once the upload token key is read: a leader must be able to hand agents their tokens.
/// </summary>
public sealed class ReconcilerHost(LeaderGate leader, CaptureOperator captureOperator, IngestTokenKeys? keys) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (keys is not null)
        {
            await keys.WhenLoadedAsync(stoppingToken);
        }

        // Once at start, leader or not: the log says how agents get their token, and why.
        await captureOperator.ResolveTokenDeliveryAsync(stoppingToken);
        await leader.RunAsync(captureOperator.RunAsync, stoppingToken);
    }
}
