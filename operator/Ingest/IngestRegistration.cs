using KubeCapture.Operator.Storage;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Ingest;

/// <summary>Wires the ingest, the storage and the retention sweeper into the operator's host.</summary>
public static class IngestRegistration
{
    public static IServiceCollection AddIngestAndStorage(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddGrpc(options => options.MaxReceiveMessageSize = 4 << 20);
        services.AddHealthChecks().AddCheck<StorageHealthCheck>("storage", tags: [StorageHealthCheck.ReadyTag]);
        services.AddOptions<IngestOptions>().Bind(configuration.GetSection(IngestOptions.Section));
        services.AddOptions<StorageOptions>().Bind(configuration.GetSection(StorageOptions.Section))
            .Validate(o => o.PartSize >= 64 << 10, "Storage:PartSize must be at least 65536 bytes (5 MiB or more for S3)")
            .Validate(o => o.RetryBudget > TimeSpan.Zero, "Storage:RetryBudget must be positive")
            .Validate(o => o.PartsInFlight is >= 1 and <= 16, "Storage:PartsInFlight must be 1 to 16")
            .ValidateOnStart();
        services.AddSingleton<IArtifactStore>(sp => ArtifactStores.Create(sp.GetRequiredService<IOptions<StorageOptions>>().Value, sp.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton<CaptureTokenIssuer>();
        services.AddSingleton<ICaptureTokenIssuer>(sp => sp.GetRequiredService<CaptureTokenIssuer>());
        services.AddSingleton<AgentAddressBook>();
        services.AddSingleton<IAgentAddresses>(sp => sp.GetRequiredService<AgentAddressBook>());
        services.AddSingleton<UploadRegistry>();
        services.AddSingleton<LiveRecordFeed>();
        services.AddSingleton<IIngestStatus>(sp => sp.GetRequiredService<UploadRegistry>());
        services.AddSingleton(sp => new EvidenceRetention(sp.GetRequiredService<IArtifactStore>(), sp.GetService<TimeProvider>() ?? TimeProvider.System));
        services.AddSingleton<RetentionSweeper>();
        services.AddHostedService(sp => sp.GetRequiredService<RetentionSweeper>());
        return services;
    }

    public static WebApplication MapIngest(this WebApplication app)
    {
        app.MapGrpcService<IngestService>();
        return app;
    }
}
