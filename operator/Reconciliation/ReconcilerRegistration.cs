using k8s;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Health;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.LeaderElection;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Watcher;
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
        services.AddSingleton(sp => PolicyWithin(sp.GetRequiredService<IOptions<CapturePolicy>>().Value, sp.GetService<IOptions<StorageOptions>>()?.Value));
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<ReconcilerOptions>>().Value);
        // What the rest of the operator registers (AddAuditTrail, AddIngestAndStorage, AddServingCertificate), as the controller meets it.
        services.TryAddSingleton<ICaptureAuditLog>(sp => sp.GetRequiredService<AuditTrail>());
        services.TryAddSingleton<IEvidenceRetention>(sp => sp.GetRequiredService<EvidenceRetention>());
        services.TryAddSingleton<IIngestAuthority>(sp => (IIngestAuthority?)sp.GetService<ServingCertificateSource>() ?? new NoServingCertificate());
        services.AddCaptureController();
        services.AddSingleton(sp => new LeaderGate(
            sp.GetRequiredService<IKubernetes>(),
            sp.GetRequiredService<IOptions<LeaderElectionOptions>>().Value,
            sp.GetRequiredService<ILogger<LeaderGate>>(),
            sp.GetRequiredService<TimeProvider>()));
        services.AddHostedService(sp => new ReconcilerHost(sp.GetRequiredService<LeaderGate>(), sp.GetRequiredService<CaptureOperator>(), sp.GetService<IngestTokenKeys>()));
        return services;
    }

    /// <summary>
    /// The controller and its steps, each a singleton built from the services it names: the caller
    /// registers IKubernetes, IIngestStatus, ICaptureTokenIssuer, IAgentAddresses, ICustodyWitness,
    /// ICaptureAuditLog, IEvidenceRetention, IIngestAuthority, CaptureEvents, CapturePolicy,
    /// ReconcilerOptions, TimeProvider and logging.
    /// </summary>
    public static IServiceCollection AddCaptureController(this IServiceCollection services)
    {
        services.AddSingleton(sp => new ClusterCache(sp.GetRequiredService<IKubernetes>(), sp.GetRequiredService<ILogger<CaptureOperator>>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new CaptureCache(sp.GetRequiredService<IKubernetes>(), sp.GetRequiredService<ILogger<CaptureOperator>>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<TargetResolver>();
        services.AddSingleton<PodSecurityPreflight>();
        services.AddSingleton<ConcurrencySlots>();
        services.AddSingleton<CaptureContainerCap>();
        services.AddSingleton<CaptureStatusWriter>();
        services.AddSingleton<CaptureDeletion>();
        services.AddSingleton<CaptureCompletion>();
        services.AddSingleton<TargetSelection>();
        services.AddSingleton<ContainerInjection>();
        services.AddSingleton<CaptureStart>();
        services.AddSingleton<TargetObservation>();
        services.AddSingleton<UploadRefusalsInStatus>();
        services.AddSingleton<RecordingRollUp>();
        services.AddSingleton<BothEndsComparison>();
        services.AddSingleton<PacketCaptureController>();
        services.AddSingleton<CaptureOperator>();
        return services;
    }

    /// <summary>The policy, once the storage's default retention is found within its longest retention.</summary>
    private static CapturePolicy PolicyWithin(CapturePolicy policy, StorageOptions? storage)
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
