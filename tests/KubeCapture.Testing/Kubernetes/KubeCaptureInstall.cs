using k8s;
using k8s.Models;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// KubeCapture installed into the shared real kube-apiserver as the chart installs it: everything
/// <c>helm template --include-crds</c> renders (CRD, ServiceAccount, ClusterRoles and bindings, the
/// leader-election Role, Deployment, Service) applied with kubectl, so the server has accepted every
/// rendered object. The operator then talks to the API with its ServiceAccount's token from the
/// TokenRequest API (as <c>kubectl create token</c>), never as cluster admin.
/// </summary>
public sealed class KubeCaptureInstall
{
    public const string Release = "kc";
    public const string Namespace = "kubecapture-system";
    public const string ServiceAccount = "kc-kubecapture";
    private static readonly SemaphoreSlim Lock = new(1, 1);
    private static KubeCaptureInstall? shared;

    private readonly string[] helmSet;
    private readonly bool withoutWebhooks;

    private KubeCaptureInstall(KubeApiServer server, string renderedYaml, string operatorToken, string[] helmSet, bool withoutWebhooks)
    {
        this.helmSet = helmSet;
        this.withoutWebhooks = withoutWebhooks;
        Server = server;
        RenderedYaml = renderedYaml;
        OperatorToken = operatorToken;
        OperatorKubeconfig = server.WriteKubeconfig(operatorToken, "operator");
    }

    public KubeApiServer Server { get; }

    /// <summary>What helm rendered and the server accepted (the latest, after <see cref="UpgradeAsync"/>).</summary>
    public string RenderedYaml { get; private set; }

    /// <summary>The operator ServiceAccount's token (TokenRequest API).</summary>
    public string OperatorToken { get; }

    /// <summary>A kubeconfig with <see cref="OperatorToken"/>: KUBECONFIG for an operator process.</summary>
    public string OperatorKubeconfig { get; }

    public static string OperatorUser => $"system:serviceaccount:{Namespace}:{ServiceAccount}";

    /// <summary>
    /// The operator's settings exactly as the chart renders them: the literal env values of the
    /// Deployment's operator container, as configuration keys (<c>Ingest__TokenKeySecret</c> is
    /// <c>Ingest:TokenKeySecret</c>). An operator process of a test takes what it claims to test from here.
    /// </summary>
    public IReadOnlyDictionary<string, string> OperatorSettings => ChartSettings(RenderedYaml);

    public static Dictionary<string, string> ChartSettings(string renderedYaml)
    {
        var deployment = KubernetesYaml.LoadAllFromString(renderedYaml).OfType<V1Deployment>().Single();
        return deployment.Spec.Template.Spec.Containers.Single(c => c.Name == "operator").Env
            .Where(e => e.Value is not null)
            .ToDictionary(e => e.Name.Replace("__", ":", StringComparison.Ordinal), e => e.Value);
    }

    /// <summary>The chart installed once into <see cref="KubeApiServer.SharedAsync"/>.</summary>
    public static async Task<KubeCaptureInstall> SharedAsync()
    {
        var server = await KubeApiServer.SharedAsync();
        await Lock.WaitAsync();
        try
        {
            return shared ??= await InstallAsync(server);
        }
        finally
        {
            Lock.Release();
        }
    }

    /// <summary>Renders the chart with helm and applies it to <paramref name="server"/>.</summary>
    public static Task<KubeCaptureInstall> InstallAsync(KubeApiServer server, params string[] helmSet) => InstallAsync(server, withoutWebhooks: false, helmSet);

    /// <summary>
    /// The chart without its two webhook configurations (test-only: a cluster where the requester
    /// stamp's webhooks are not installed, or were deleted, so captures arrive unstamped).
    /// </summary>
    public static Task<KubeCaptureInstall> InstallWithoutWebhooksAsync(KubeApiServer server) => InstallAsync(server, withoutWebhooks: true, []);

    /// <summary>
    /// An upgrade as <c>helm upgrade --reuse-values --set ...</c> makes it: the chart rendered again with
    /// the values installed plus <paramref name="set"/>, and applied over what is installed. (The
    /// install was applied as rendered, not by helm, so helm holds no release to upgrade.)
    /// </summary>
    public async Task UpgradeAsync(params string[] set)
    {
        string[] values = [.. helmSet, .. set];
        RenderedYaml = await RenderAsync(values, withoutWebhooks);
        await Server.ApplyAsync(RenderedYaml);
    }

    private static async Task<KubeCaptureInstall> InstallAsync(KubeApiServer server, bool withoutWebhooks, string[] helmSet)
    {
        var rendered = await RenderAsync(helmSet, withoutWebhooks);
        using var admin = server.AdminClient();
        try
        {
            await admin.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = Namespace } });
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Conflict)
        {
        }

        await server.ApplyAsync(rendered);
        await WaitEstablishedAsync(admin, "packetcaptures.kubecapture.io");
        var token = await server.CreateServiceAccountTokenAsync(Namespace, ServiceAccount);
        return new KubeCaptureInstall(server, rendered, token, helmSet, withoutWebhooks);
    }

    /// <summary>The chart as <c>helm template</c> renders it with the installs' storage and <paramref name="helmSet"/> (nothing applied).</summary>
    public static Task<string> RenderChartAsync(params string[] helmSet) => RenderAsync(helmSet, withoutWebhooks: false);

    private static async Task<string> RenderAsync(string[] helmSet, bool withoutWebhooks)
    {
        // Storage as a production install sets it (the operator of these tests runs as a process with its own settings).
        var arguments = new List<string> { "template", Release, Tools.Chart, "--namespace", Namespace, "--include-crds", "--set", "storage.endpoint=rgw.storage.svc:7480", "--set", "storage.credentialsSecret=kubecapture-s3" };
        foreach (var set in helmSet)
        {
            arguments.AddRange(["--set", set]);
        }

        var rendered = (await HostCommand.RunAsync(Tools.Helm, arguments, TimeSpan.FromSeconds(60))).EnsureSuccess().Stdout;
        if (withoutWebhooks)
        {
            rendered = string.Join("\n---\n", rendered.Split("\n---\n").Where(d => !d.Contains("\nkind: MutatingWebhookConfiguration\n", StringComparison.Ordinal) && !d.Contains("\nkind: ValidatingWebhookConfiguration\n", StringComparison.Ordinal)));
        }

        return rendered;
    }

    private static async Task WaitEstablishedAsync(IKubernetes admin, string crd)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var current = await admin.ApiextensionsV1.ReadCustomResourceDefinitionAsync(crd);
            if (current.Status?.Conditions?.Any(c => c.Type == "Established" && c.Status == "True") == true)
            {
                // Discovery can lag the condition by a moment.
                await Task.Delay(500);
                return;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the CRD {crd} was not Established within 30 s");
            }

            await Task.Delay(100);
        }
    }
}
