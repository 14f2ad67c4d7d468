using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Audit;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.LeaderElection;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Storage;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Tests.Reconciliation;

/// <summary>services.AddPacketCaptureReconciler(configuration), as Program.cs calls it: configuration keys bind, the host reconciles under a Lease.</summary>
public sealed class ReconcilerRegistrationTests
{
    [Fact]
    public async Task The_registered_host_binds_the_documented_keys_takes_the_Lease_and_reconciles()
    {
        await using var emulator = await KubernetesApiEmulator.StartAsync();
        emulator.AddNamespace("ops");
        emulator.AddNamespace("shop");
        emulator.AddPod("shop", "api-1");
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Ingest:AdvertisedUrl"] = "http://kubecapture-ingest.ops.svc:8081",
            ["Reconciler:AgentImage"] = "registry.example/agent:9",
            ["Reconciler:Grace"] = "90s",
            ["Ingest:TokenDelivery"] = "secret", // the emulator serves no /version for Auto
            ["Policy:MaxDuration"] = "10m",
            ["Policy:RequireFilter"] = "true",
            ["Policy:AllowedNamespaces:0"] = "shop",
            ["LeaderElection:Namespace"] = "ops",
            ["LeaderElection:Identity"] = "replica-1",
        }).Build();
        var ingest = new InMemoryIngestStatus();
        var services = new ServiceCollection();
        services.AddLogging(b => b.ClearProviders());
        services.AddSingleton<IConfiguration>(configuration);
        services.AddSingleton<IKubernetes>(_ => emulator.CreateClient());
        services.AddSingleton<IIngestStatus>(ingest);
        services.AddSingleton<ICaptureTokenIssuer>(ingest);
        services.AddSingleton<IAgentAddresses>(ingest);
        // What AddCustody, AddAuditTrail and AddIngestAndStorage register in Program.cs, without their storage and signing key.
        services.AddSingleton<ICustodyWitness, CustodyLedger>();
        services.AddSingleton<ICaptureAuditLog, NoAuditLog>();
        services.AddSingleton<IEvidenceRetention, NoEvidenceStore>();
        services.AddPacketCaptureReconciler(configuration);
        await using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptions<ReconcilerOptions>>().Value;
        var policy = provider.GetRequiredService<IOptions<CapturePolicy>>().Value;
        Assert.Equal(("registry.example/agent:9", "http://kubecapture-ingest.ops.svc:8081", "90s"), (options.AgentImage, options.IngestUrl, options.Grace));
        Assert.True(options.RequireRequesterStamp); // on unless configured off
        Assert.Equal(TokenDelivery.Secret, options.TokenDelivery);
        Assert.Equal(("10m", true), (policy.MaxDuration, policy.RequireFilter));
        Assert.Equal(["shop"], policy.AllowedNamespaces);

        var host = Assert.Single(provider.GetServices<IHostedService>().OfType<ReconcilerHost>());
        await host.StartAsync(CancellationToken.None);
        try
        {
            using var client = emulator.CreateClient();
            await client.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(new PacketCapture
            {
                // Stamped as the admission webhook would (none runs before the emulator; the stamp is required by default).
                Metadata = new k8s.Models.V1ObjectMeta { Name = "unfiltered", Annotations = new Dictionary<string, string>(RequesterStamp.Annotations(new CaptureRequester { Username = "alice" })) },
                Spec = new PacketCaptureSpec { Reason = "t", Duration = "30s", Target = new CaptureTarget { PodName = "api-1" } },
            }, PacketCapture.Group, PacketCapture.Version, "shop", PacketCapture.Plural);

            var deadline = DateTime.UtcNow.AddSeconds(30);
            PacketCapture capture;
            do
            {
                await Task.Delay(100);
                capture = await client.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version, "shop", PacketCapture.Plural, "unfiltered");
            }
            while (capture.Status?.Phase != CapturePhase.Failed && DateTime.UtcNow < deadline);

            Assert.Equal("FilterRequired", CaptureConditions.Find(capture.Status, CaptureConditions.Accepted)?.Reason);
            var lease = await client.CoordinationV1.ReadNamespacedLeaseAsync(new LeaderElectionOptions().LeaseName, "ops");
            Assert.Equal("replica-1", lease.Spec.HolderIdentity);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }
}
