using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Operator.Rbac;
using KubeCapture.Operator.Subresources;
using KubeCapture.Operator.Tests.Alerts;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Processes;
using KubeCapture.Testing.S3;

namespace KubeCapture.Operator.Tests.Subresources;

/// <summary>
/// An <see cref="ApiServerCluster"/> whose operator also serves the extension API
/// subresources.kubecapture.io, behind the real kube-apiserver: the chart's APIService and Service,
/// hand-written Endpoints (no Endpoints controller runs) at an address in 198.18.0.0/15 on the node
/// (kube-apiserver refuses loopback and link-local Endpoints), the operator's own CA and serving
/// certificate in its Secret (as its ServiceAccount), and the APIService waited for until Available.
/// </summary>
public sealed class SubresourcesCluster : ApiServerCluster
{
    public string ExtensionAddress => HttpsAddress;

    public int ExtensionPort { get; } = S3rverFixture.FreeTcpPort();

    public string ServiceName => SubresourcesServiceName;

    /// <summary>The path of a capture's subresource through kube-apiserver.</summary>
    public static string PathOf(string ns, string name, string subresource, string? pod = null) =>
        $"/apis/{ExtensionApi.GroupVersion}/namespaces/{ns}/{ExtensionApi.Resource}/{name}/{subresource}{(pod is null ? "" : "?pod=" + pod)}";

    /// <summary>GET through kube-apiserver as <paramref name="token"/>'s user (for the response headers kubectl does not show).</summary>
    public Task<HttpResponseMessage> GetAsync(string token, string path, IReadOnlyDictionary<string, string>? headers = null) =>
        SendAsync(HttpMethod.Get, token, path, headers);

    /// <summary>POST (no body) through kube-apiserver as <paramref name="token"/>'s user, as <c>kubectl capture snapshot</c> does.</summary>
    public Task<HttpResponseMessage> PostAsync(string token, string path) => SendAsync(HttpMethod.Post, token, path, null);

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string token, string path, IReadOnlyDictionary<string, string>? headers)
    {
        var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = HttpClientHandler.DangerousAcceptAnyServerCertificateValidator };
        var http = new HttpClient(handler) { BaseAddress = new Uri(Install.Server.Url), Timeout = TimeSpan.FromSeconds(60) };
        var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.Add(name, value);
        }

        return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    /// <summary>Starts <c>kubectl get --raw PATH | tcpdump -nn -l -r -</c> writing tcpdump's lines to a file as they come.</summary>
    public (Process Process, string Lines) StartFollowIntoTcpdump(string token, string path)
    {
        var lines = Path.Combine(WorkDirectory, Guid.NewGuid().ToString("N") + ".tcpdump");
        var kubeconfig = Install.Server.WriteKubeconfig(token, "follow-" + Guid.NewGuid().ToString("N")[..8]);
        var start = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("set -o pipefail; \"$0\" --kubeconfig \"$1\" get --raw \"$2\" | tcpdump -nn -l -r - > \"$3\"; codes=\"${PIPESTATUS[*]}\"; echo \"kubectl, tcpdump exited: $codes\" >&2; [ \"$codes\" = \"0 0\" ]");
        foreach (var a in new[] { Tools.Kubectl, kubeconfig, path, lines })
        {
            start.ArgumentList.Add(a);
        }

        File.WriteAllText(lines, "");
        return (Process.Start(start)!, lines);
    }

    /// <summary>Lets <paramref name="user"/> use a ClusterRole in <paramref name="ns"/> (a RoleBinding, as an admin grants edit or view).</summary>
    public async Task BindAsync(string ns, string user, string clusterRole)
    {
        await Admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { Name = $"{user}-{clusterRole}" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = clusterRole },
            Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
        }, ns);
    }

    protected override async Task ConfigureAsync(Dictionary<string, string> settings)
    {
        ServeSubresources(settings, ExtensionPort);
        settings["Storage:SweepInterval"] = "00:00:01"; // retention runs while the tests wait for it
        // The Alertmanager receiver as the chart turns it on (alertReceiver.enabled), with a capture rule for page WebResets
        // alerts (AlertReceiverEndToEndTests): its settings as rendered, nothing injected.
        string[] receiver = ["alertReceiver.enabled=true", .. AlertReceiverEndToEndTests.CaptureRule];
        foreach (var (key, value) in KubeCaptureInstall.ChartSettings(await KubeCaptureInstall.RenderChartAsync(receiver)).Where(s => s.Key.StartsWith("AlertReceiver:", StringComparison.Ordinal)))
        {
            settings[key] = value;
        }
    }

    protected override async Task StartedAsync()
    {
        await PointServiceAsync(ServiceName, "https", ExtensionPort);
        await WaitForSubresourcesAsync();
    }
}
