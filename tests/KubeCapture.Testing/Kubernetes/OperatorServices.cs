using k8s;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Events;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// The controller built by DI as the operator builds it (<see cref="ReconcilerRegistration.AddCaptureController"/>),
/// from the test's Kubernetes client, ingest, policy and options; no audit log and no object storage
/// (<see cref="NoAuditLog"/>, <see cref="NoEvidenceStore"/>), a plain h2c ingest.
/// </summary>
public static class OperatorServices
{
    public static ServiceProvider Build(IKubernetes client, IIngestStatus ingest, ICaptureTokenIssuer tokens, IAgentAddresses addresses, CapturePolicy policy,
        ReconcilerOptions options, ILoggerFactory loggers)
    {
        var services = new ServiceCollection();
        services.AddSingleton(loggers);
        services.AddSingleton(typeof(ILogger<>), typeof(Logger<>));
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(client);
        services.AddSingleton(ingest);
        services.AddSingleton(tokens);
        services.AddSingleton(addresses);
        services.AddSingleton(policy);
        services.AddSingleton(options);
        services.AddSingleton<ICustodyWitness, CustodyLedger>();
        services.AddSingleton<ICaptureAuditLog, NoAuditLog>();
        services.AddSingleton<IEvidenceRetention, NoEvidenceStore>();
        services.AddSingleton<IIngestAuthority, NoServingCertificate>();
        services.AddSingleton(sp => new CaptureEvents(client, loggers.CreateLogger<CaptureEvents>(), TimeProvider.System));
        services.AddCaptureController();
        return services.BuildServiceProvider();
    }
}

/// <summary>An operator without an audit log: it records nothing, so the controller announces every end itself.</summary>
public sealed class NoAuditLog : ICaptureAuditLog
{
    public bool AnnouncesContestedEnds => false;

    public Task RecordAsync(PacketCapture capture, Transition transition, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task RecordTransitionsAsync(PacketCapture before, PacketCaptureStatus written, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>No object storage behind the controller: nothing to lock, nothing stored to delete with a capture.</summary>
public sealed class NoEvidenceStore : IEvidenceRetention
{
    public Task<string?> CheckObjectLockAsync(CancellationToken cancellationToken) =>
        Task.FromResult<string?>("this operator has no object storage to lock");

    public Task<IReadOnlyList<TargetDisposal>> DisposeAsync(IEnumerable<CaptureIdentity> targets, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<TargetDisposal>>([]);
}
