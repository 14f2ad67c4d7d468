using System.Security.Cryptography;
using System.Text;
using k8s;
using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Health;
using KubeCapture.Operator.Storage;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Ingest;

/// <summary>Wires the ingest, the storage and the retention sweeper into the operator's host.</summary>
public static class IngestRegistration
{
    public static IServiceCollection AddIngestAndStorage(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddGrpc(options =>
        {
            // What the agent really sends (a 60 KiB chunk, a summary or manifest of a few hundred KiB at most), and what it is sent (small).
            options.MaxReceiveMessageSize = KubeCapture.Proto.V1.IngestMessageLimits.AgentMessage;
            options.MaxSendMessageSize = KubeCapture.Proto.V1.IngestMessageLimits.IngestMessage;
        });
        services.AddIngestKeepAlive(configuration);
        services.AddHealthChecks().AddCheck<StorageHealthCheck>("storage", tags: [StorageHealthCheck.ReadyTag])
            .AddCheck<TokenKeyHealthCheck>("upload-token-key", tags: [StorageHealthCheck.ReadyTag]);
        services.AddOptions<IngestOptions>().Bind(configuration.GetSection(IngestOptions.Section));
        services.AddOptions<StorageOptions>().Bind(configuration.GetSection(StorageOptions.Section))
            .Validate(o => o.PartSize >= 64 << 10, "Storage:PartSize must be at least 65536 bytes (5 MiB or more for S3)")
            .Validate(o => o.RetryBudget > TimeSpan.Zero, "Storage:RetryBudget must be positive")
            .Validate(o => o.PartsInFlight is >= 1 and <= 16, "Storage:PartsInFlight must be 1 to 16")
            .ValidateOnStart();
        services.AddSingleton<IArtifactStore>(sp => ArtifactStores.Create(sp.GetRequiredService<IOptions<StorageOptions>>().Value, sp.GetRequiredService<ILoggerFactory>()));
        services.AddIngestTokenKey(configuration);
        services.AddSingleton<CaptureTokenIssuer>();
        services.AddSingleton<ICaptureTokenIssuer>(sp => sp.GetRequiredService<CaptureTokenIssuer>());
        services.AddSingleton<AgentAddressBook>();
        services.AddSingleton<IAgentAddresses>(sp => sp.GetRequiredService<AgentAddressBook>());
        services.AddUploadOwnership(configuration);
        services.AddSingleton(sp => new UploadRegistry(sp.GetRequiredService<IArtifactStore>(), sp.GetRequiredService<IOptions<IngestOptions>>(), sp.GetRequiredService<IOptions<StorageOptions>>(),
            sp.GetRequiredService<ILogger<UploadRegistry>>(), sp.GetService<KubeCapture.Operator.Custody.ManifestSigner>(), sp.GetService<UploadOwnership>()));
        services.AddOptions<FollowLimits>().Bind(configuration.GetSection("Subresources"))
            .Validate(o => o.PerFollower > 0 && o.Total >= o.PerFollower && o.CutGrace > TimeSpan.Zero, "Subresources:FollowBufferTotal must be at least Subresources:FollowBufferPerFollower")
            .ValidateOnStart();
        services.AddSingleton(sp =>
        {
            var feed = new LiveRecordFeed(sp.GetRequiredService<IOptions<FollowLimits>>().Value);
            Metrics.OperatorMetrics.ObserveFollowers(() => feed.HeldBytes);
            return feed;
        });
        services.AddSingleton<IIngestStatus>(sp => sp.GetRequiredService<UploadRegistry>());
        services.AddSingleton(sp => new EvidenceRetention(sp.GetRequiredService<IArtifactStore>(), sp.GetService<TimeProvider>() ?? TimeProvider.System));
        services.AddSingleton<RetentionSweeper>();
        services.AddHostedService(sp => sp.GetRequiredService<RetentionSweeper>());
        return services;
    }

    /// <summary>
    /// HTTP/2 keep-alive on the listeners (Ingest:KeepAlivePingDelay, Ingest:KeepAlivePingTimeout): a
    /// connection that died without a FIN or RST is found dead within their sum, so the stream it
    /// carried ends and its upload Lease is released for the replica the agent resumed on.
    /// </summary>
    private static void AddIngestKeepAlive(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(IngestOptions.Section).Get<IngestOptions>() ?? new IngestOptions();
        var delay = Duration(options.KeepAlivePingDelay, "KeepAlivePingDelay");
        var timeout = Duration(options.KeepAlivePingTimeout, "KeepAlivePingTimeout");
        if (delay <= TimeSpan.Zero || timeout <= TimeSpan.Zero)
        {
            throw new OperatorConfigurationException(
                $"Ingest:KeepAlivePingDelay ({options.KeepAlivePingDelay}) and Ingest:KeepAlivePingTimeout ({options.KeepAlivePingTimeout}) must be positive: without them a stream whose connection died silently holds its upload until TCP gives up");
        }

        services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(kestrel =>
        {
            kestrel.Limits.Http2.KeepAlivePingDelay = delay;
            kestrel.Limits.Http2.KeepAlivePingTimeout = timeout;
        });
    }

    /// <summary>
    /// Every replica ingests where the reconciler runs (a cluster deployment): each target's upload is
    /// owned through a Lease (<see cref="UploadOwnership"/>) and its binding to the pod read from the API
    /// at Open (<see cref="TargetBindingLookup"/>), since only the leader reconciles.
    /// </summary>
    private static void AddUploadOwnership(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(IngestOptions.Section).Get<IngestOptions>() ?? new IngestOptions();
        if (!options.UploadLeases || !configuration.GetValue("Reconciler:Enabled", defaultValue: true))
        {
            return;
        }

        var duration = Duration(options.UploadLeaseDuration, "UploadLeaseDuration");
        var renewDeadline = Duration(options.UploadLeaseRenewDeadline, "UploadLeaseRenewDeadline");
        if (renewDeadline <= TimeSpan.Zero || renewDeadline >= duration)
        {
            throw new OperatorConfigurationException(
                $"Ingest:UploadLeaseRenewDeadline ({options.UploadLeaseRenewDeadline}) must be positive and less than Ingest:UploadLeaseDuration ({options.UploadLeaseDuration}): a replica that cannot renew must stop writing before another may take the target");
        }

        services.AddKubernetesClient();
        var ownership = new UploadOwnershipOptions(
            ReplicaIdentity.Of(configuration["LeaderElection:Identity"]),
            ReplicaIdentity.NamespaceOf(configuration["LeaderElection:Namespace"]),
            Environment.GetEnvironmentVariable("POD_IP"),
            duration,
            renewDeadline);
        services.AddSingleton(sp => new UploadOwnership(sp.GetRequiredService<IKubernetes>(), ownership with { RelayUrl = sp.GetService<StreamRelayAddress>()?.Url },
            sp.GetRequiredService<ILogger<UploadOwnership>>()));
        if (options.BindToPodAddress)
        {
            services.AddSingleton<TargetBindingLookup>();
        }

        services.AddHostedService<FollowerRefusalReport>();
    }

    private static TimeSpan Duration(string text, string key) =>
        KubeCapture.Contracts.Quantities.TryParseDuration(text, out var value, out var error) ? value : throw new OperatorConfigurationException($"Ingest:{key}: {error}");

    /// <summary>
    /// Where the upload tokens' key comes from: Ingest:TokenSecret (a fixed string), else the Secret
    /// Ingest:TokenKeySecret (read, created when missing, followed), else a random key, which is
    /// refused in a cluster and with the reconciler on (<see cref="TokenKeyProblem"/>).
    /// </summary>
    public static IServiceCollection AddIngestTokenKey(this IServiceCollection services, IConfiguration configuration)
    {
        if (TokenKeyProblem(configuration) is { } problem)
        {
            throw new OperatorConfigurationException(problem);
        }

        var options = configuration.GetSection(IngestOptions.Section).Get<IngestOptions>() ?? new IngestOptions();
        if (options.TokenSecret.Length > 0)
        {
            services.AddSingleton(IngestTokenKeys.Of(Encoding.UTF8.GetBytes(options.TokenSecret), "Ingest:TokenSecret"));
        }
        else if (options.TokenKeySecret.Length > 0)
        {
            var ns = new[] { options.TokenKeyNamespace, configuration["LeaderElection:Namespace"], Environment.GetEnvironmentVariable("POD_NAMESPACE") }
                .FirstOrDefault(n => !string.IsNullOrEmpty(n)) ?? "default";
            services.AddKubernetesClient();
            services.AddSingleton<IngestTokenKeys>();
            services.AddSingleton(sp => new IngestTokenKeySecret(sp.GetRequiredService<IKubernetes>(), ns, options.TokenKeySecret,
                sp.GetRequiredService<IngestTokenKeys>(), sp.GetRequiredService<ILogger<IngestTokenKeySecret>>()));
            services.AddHostedService(sp => sp.GetRequiredService<IngestTokenKeySecret>());
        }
        else
        {
            services.AddSingleton(sp =>
            {
                sp.GetRequiredService<ILogger<CaptureTokenIssuer>>().LogWarning(
                    "neither Ingest:TokenKeySecret nor Ingest:TokenSecret is set: upload tokens use a random key that dies with this process");
                return IngestTokenKeys.Of(RandomNumberGenerator.GetBytes(32), "a random key of this process");
            });
        }

        return services;
    }

    /// <summary>
    /// Why the token key settings cannot run (one sentence), or null: in a cluster, or wherever the
    /// reconciler hands tokens to agents that outlive this process, a random key would turn every
    /// running agent away after a restart, an upgrade or a change of leader.
    /// </summary>
    public static string? TokenKeyProblem(IConfiguration configuration)
    {
        var options = configuration.GetSection(IngestOptions.Section).Get<IngestOptions>() ?? new IngestOptions();
        if (options.TokenSecret.Length > 0 && options.TokenKeySecret.Length > 0)
        {
            return "Ingest:TokenSecret and Ingest:TokenKeySecret are both set: give one (TokenKeySecret, the Secret, in a cluster)";
        }

        if (options.TokenSecret.Length > 0 || options.TokenKeySecret.Length > 0)
        {
            return null;
        }

        var inCluster = KubernetesClientConfiguration.IsInCluster();
        var reconciler = configuration.GetValue("Reconciler:Enabled", defaultValue: true);
        return inCluster || reconciler
            ? $"no upload token key: set Ingest:TokenKeySecret (a Secret the operator creates when missing and every replica shares; the chart sets it), or Ingest:TokenSecret; {(inCluster ? "in a cluster" : "with the reconciler on")} a random key would turn every running agent away after a restart, an upgrade or a change of leader"
            : null;
    }

    public static WebApplication MapIngest(this WebApplication app)
    {
        app.MapGrpcService<IngestService>();
        return app;
    }
}
