using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Operator.Tests.Chart;

/// <summary>
/// The chart through the real helm against the real kube-apiserver (a server of its own: cluster-scoped
/// objects of a second release would collide with the shared install): install, upgrade, uninstall,
/// and what uninstall leaves behind.
/// </summary>
public sealed class HelmInstallTests
{
    private const string Release = "kcx";
    private const string Namespace = "kubecapture-helm";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    [SkippableFact]
    public async Task Helm_installs_upgrades_and_uninstalls_refuses_captures_while_no_operator_answers_its_webhooks_and_uninstall_keeps_the_CRD_and_every_PacketCapture()
    {
        KubeApiServer.Require();
        await using var server = await KubeApiServer.StartAsync();
        var kubeconfig = server.WriteKubeconfig(server.AdminToken, "helm");
        using var admin = server.AdminClient();

        var installed = await HelmAsync(kubeconfig, "install", Release, Tools.Chart, "--namespace", Namespace, "--create-namespace",
            "--set", "storage.endpoint=s3.storage.svc:443", "--set", "storage.credentialsSecret=kubecapture-s3");
        Assert.True(installed.ExitCode == 0, installed.Stdout + installed.Stderr);
        // NOTES.txt: the first capture to try, and how to get it back with the user's own rights.
        Assert.Contains("kubectl -n NAMESPACE get pcap first-capture -w", installed.Stdout, StringComparison.Ordinal);
        Assert.Contains("kubectl get --raw /apis/subresources.kubecapture.io/v1alpha1/namespaces/NAMESPACE/packetcaptures/first-capture/pcap > first-capture.pcap", installed.Stdout, StringComparison.Ordinal);
        Assert.Contains($"kubectl -n {Namespace} get configmap kubecapture-manifest-signing", installed.Stdout, StringComparison.Ordinal);
        Assert.Contains("Traces are off: --set tracing.otlpEndpoint=", installed.Stdout, StringComparison.Ordinal);
        // Every object helm rendered is on the server, as the server stored it.
        var manifest = (await HelmAsync(kubeconfig, "get", "manifest", Release, "--namespace", Namespace)).EnsureSuccess().Stdout;
        var objects = KubernetesYaml.LoadAllFromString(manifest).Cast<IKubernetesObject<V1ObjectMeta>>().ToList();
        Assert.NotEmpty(objects);
        var onServer = await server.KubectlAsync(server.AdminToken, ["get", "-f", "-", "-o", "name"], manifest);
        Assert.True(onServer.ExitCode == 0, onServer.Stderr);
        Assert.Equal(objects.Count, onServer.StdoutLines.Count(l => l.Length > 0));

        var upgraded = await HelmAsync(kubeconfig, "upgrade", Release, Tools.Chart, "--namespace", Namespace, "--reuse-values", "--set", "policy.maxDuration=30m", "--set", "tracing.otlpEndpoint=http://otel-collector.observability:4318");
        Assert.True(upgraded.ExitCode == 0, upgraded.Stdout + upgraded.Stderr);
        Assert.Contains("Traces (OTLP, http/protobuf) go to http://otel-collector.observability:4318", upgraded.Stdout, StringComparison.Ordinal);
        var deployment = await admin.AppsV1.ReadNamespacedDeploymentAsync($"{Release}-kubecapture", Namespace);
        var env = deployment.Spec.Template.Spec.Containers[0].Env.ToDictionary(e => e.Name, e => e.Value);
        Assert.Equal("30m", env["Policy__MaxDuration"]);
        Assert.Equal("s3.storage.svc:443", env["Storage__S3__Endpoint"]);
        Assert.Equal("http://otel-collector.observability:4318", env["OTEL_EXPORTER_OTLP_ENDPOINT"]);

        // No operator runs here to answer the admission webhooks: failurePolicy Fail refuses every capture.
        var ns = await server.CreateNamespaceAsync("kc-helm");
        var capture = new PacketCapture
        {
            ApiVersion = $"{PacketCapture.Group}/{PacketCapture.Version}",
            Kind = "PacketCapture",
            Metadata = new V1ObjectMeta { Name = "evidence", NamespaceProperty = ns },
            Spec = new PacketCaptureSpec { Reason = "kept across uninstall", Target = new CaptureTarget { PodName = "api" }, Duration = "30s" },
        };
        var refused = await Assert.ThrowsAsync<HttpOperationException>(() => admin.CustomObjects.CreateNamespacedCustomObjectAsync(capture, PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural));
        Assert.Contains("failed calling webhook \"stamp.packetcaptures.kubecapture.io\"", KubernetesJson.Deserialize<V1Status>(refused.Response.Content).Message, StringComparison.Ordinal);
        // An admin who deletes the webhook configurations lets unstamped captures in (the operator would refuse to start them).
        await admin.AdmissionregistrationV1.DeleteMutatingWebhookConfigurationAsync($"{Release}-kubecapture-requester-stamp");
        await admin.AdmissionregistrationV1.DeleteValidatingWebhookConfigurationAsync($"{Release}-kubecapture-requester-stamp");
        await admin.CustomObjects.CreateNamespacedCustomObjectAsync(capture, PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural);

        var uninstalled = await HelmAsync(kubeconfig, "uninstall", Release, "--namespace", Namespace);
        Assert.True(uninstalled.ExitCode == 0, uninstalled.Stdout + uninstalled.Stderr);
        var gone = await Assert.ThrowsAsync<HttpOperationException>(() => admin.AppsV1.ReadNamespacedDeploymentAsync($"{Release}-kubecapture", Namespace));
        Assert.Equal(System.Net.HttpStatusCode.NotFound, gone.Response.StatusCode);
        Assert.DoesNotContain((await admin.RbacAuthorizationV1.ListClusterRoleAsync()).Items, r => r.Metadata.Name.StartsWith($"{Release}-", StringComparison.Ordinal));
        Assert.NotNull(await admin.ApiextensionsV1.ReadCustomResourceDefinitionAsync("packetcaptures.kubecapture.io"));
        var kept = await admin.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, "evidence");
        Assert.Equal("kept across uninstall", kept.Spec.Reason);
    }

    private static Task<CommandResult> HelmAsync(string kubeconfig, params string[] arguments)
    {
        var start = new System.Diagnostics.ProcessStartInfo(Tools.Helm);
        foreach (var argument in (string[])["--kubeconfig", kubeconfig, .. arguments])
        {
            start.ArgumentList.Add(argument);
        }

        // helm keeps its cache and configuration under HOME; a test's own.
        start.Environment["HOME"] = Path.Combine(Path.GetTempPath(), "kubecapture-helm-home");
        return HostCommand.RunAsync(start, Patience);
    }
}
