using k8s;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Admission;

/// <summary>
/// The webhook bypassed: a kube-apiserver of its own with the chart installed but without its two
/// webhook configurations (as if never installed, or deleted by an admin), so a capture arrives
/// unstamped; the operator (as in the chart: the stamp required) refuses to start it.
/// </summary>
public sealed class UnstampedCaptureTests : IAsyncLifetime
{
    private KubeApiServer? server;
    private OperatorHost? operatorProcess;
    private string? storage;

    public async Task InitializeAsync()
    {
        if (KubeApiServer.Missing is not null)
        {
            return; // the test skips with the reason
        }

        server = await KubeApiServer.StartAsync();
        var install = await KubeCaptureInstall.InstallWithoutWebhooksAsync(server);
        storage = Directory.CreateTempSubdirectory("kcU-").FullName;
        operatorProcess = await OperatorHost.StartProcessAsync(new Dictionary<string, string>
        {
            ["Reconciler:Enabled"] = "true",
            ["Reconciler:IngestUrl"] = "http://198.51.100.1:8081",
            ["Ingest:Tls"] = "false", // no capture starts here: no agent ever reaches the ingest
            ["Reconciler:ResyncPeriod"] = "1s",
            ["Storage:LocalPath"] = storage,
            ["LeaderElection:Namespace"] = KubeCaptureInstall.Namespace,
            ["LeaderElection:LeaseDuration"] = "6s",
            ["LeaderElection:RenewDeadline"] = "4s",
            ["LeaderElection:RetryPeriod"] = "1s",
        }, new Dictionary<string, string> { ["KUBECONFIG"] = install.OperatorKubeconfig });
    }

    public async Task DisposeAsync()
    {
        if (operatorProcess is not null)
        {
            await operatorProcess.DisposeAsync();
        }

        if (server is not null)
        {
            await server.DisposeAsync();
        }

        if (storage is not null)
        {
            Directory.Delete(storage, recursive: true);
        }
    }

    [SkippableFact]
    public async Task A_capture_that_no_webhook_stamped_fails_NotStamped_and_no_capture_container_is_added_to_its_pod()
    {
        KubeApiServer.Require();
        var ns = await server!.CreateNamespaceAsync("kc-unstamped");
        using var admin = server.AdminClient();
        using var pods = new ApiServerPods(server.AdminClient());
        await pods.StartPodAsync(ns, "api", "198.51.100.7");

        var created = await admin.CreatePacketCaptureAsync(ns, "unstamped", new PacketCaptureSpec { Reason = "no webhook", Target = new CaptureTarget { PodName = "api" }, Duration = "10s" });
        var failed = await admin.WaitForPhaseAsync(ns, "unstamped", CapturePhase.Failed, TimeSpan.FromSeconds(60));

        Assert.Null(created.Metadata.Annotations);
        var verified = CaptureConditions.Find(failed.Status, CaptureConditions.RequesterVerified);
        Assert.Equal("False", verified?.Status);
        Assert.Equal("NotStamped", verified?.Reason);
        Assert.Contains("the KubeCapture admission webhook is not installed or was bypassed; nothing was captured", verified?.Message, StringComparison.Ordinal);
        Assert.Equal("NotStamped", CaptureConditions.Find(failed.Status, CaptureConditions.Complete)?.Reason);
        Assert.Null(CaptureConditions.Find(failed.Status, CaptureConditions.Injected));
        Assert.Empty(failed.Status!.Targets);
        Assert.Null((await admin.CoreV1.ReadNamespacedPodAsync("api", ns)).Spec.EphemeralContainers);
        // The audit line follows the status write that the watch has shown: it may still be on its way.
        string AuditLines() => string.Join('\n', operatorProcess!.Output.Split('\n').Where(l => l.Contains(created.Metadata.Uid, StringComparison.Ordinal)));
        for (var deadline = DateTime.UtcNow.AddSeconds(15); !AuditLines().Contains("\"event\":\"refused\"", StringComparison.Ordinal) && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(100);
        }

        Assert.Contains("\"event\":\"refused\"", AuditLines(), StringComparison.Ordinal);
    }
}
