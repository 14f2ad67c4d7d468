using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Pki;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// The node's certificates and identities: kube-apiserver's serving certificate (for the node IP,
/// the <c>kubernetes</c> Service's ClusterIP and names, as in-cluster clients reach it), the
/// ServiceAccount signing key, the front proxy (API aggregation), the client CA (x509 users, and the
/// apiserver's client certificate toward the kubelet), and bearer tokens for every component under
/// its bootstrap RBAC user: the kubelet as <c>system:node:NAME</c> (Node authorizer), the scheduler,
/// controller-manager and kube-proxy as their <c>system:</c> users (fact 11).
/// </summary>
public sealed class NodePki
{
    private NodePki(string adminToken, string servingCaPem, IReadOnlyDictionary<string, string> componentTokens)
    {
        AdminToken = adminToken;
        ServingCaPem = servingCaPem;
        ComponentTokens = componentTokens;
    }

    public string AdminToken { get; }

    public string ServingCaPem { get; }

    /// <summary>Token of each component: kubelet, kube-scheduler, kube-controller-manager, kube-proxy.</summary>
    public IReadOnlyDictionary<string, string> ComponentTokens { get; }

    public static string UserToken(string user) => user + "-token";

    public static NodePki Write(NodeLayout layout)
    {
        var pki = Directory.CreateDirectory(layout.Pki).FullName;
        using var serving = CertificateAuthority.Create("kcnode-serving-ca");
        File.WriteAllText(Path.Combine(pki, "serving-ca.crt"), serving.CertificatePem);
        using (var certificate = serving.Issue("kube-apiserver", serverAuth: true,
            ipAddresses: [IPAddress.Parse(NodeLayout.NodeIp), IPAddress.Parse(NodeLayout.KubernetesServiceIp), IPAddress.Loopback],
            dnsNames: ["kubernetes", "kubernetes.default", "kubernetes.default.svc", $"kubernetes.default.svc.{NodeLayout.ClusterDomain}", "localhost"],
            lifetime: TimeSpan.FromDays(2)))
        {
            certificate.Write(Path.Combine(pki, "serving.crt"), Path.Combine(pki, "serving.key"));
        }

        using var client = CertificateAuthority.Create("kcnode-client-ca");
        File.WriteAllText(Path.Combine(pki, "client-ca.crt"), client.CertificatePem);
        // kube-apiserver's identity toward the kubelet (logs, exec, port-forward): a cluster admin.
        using (var certificate = client.Issue("kube-apiserver-kubelet-client", clientAuth: true, organizations: ["system:masters"], lifetime: TimeSpan.FromDays(2)))
        {
            certificate.Write(Path.Combine(pki, "kubelet-client.crt"), Path.Combine(pki, "kubelet-client.key"));
        }

        using var frontProxy = CertificateAuthority.Create("kcnode-front-proxy-ca");
        File.WriteAllText(Path.Combine(pki, "front-proxy-ca.crt"), frontProxy.CertificatePem);
        using (var certificate = frontProxy.Issue("front-proxy-client", clientAuth: true, lifetime: TimeSpan.FromDays(2)))
        {
            certificate.Write(Path.Combine(pki, "front-proxy-client.crt"), Path.Combine(pki, "front-proxy-client.key"));
        }

        using (var sa = RSA.Create(2048))
        {
            File.WriteAllText(Path.Combine(pki, "sa.key"), sa.ExportRSAPrivateKeyPem());
            File.WriteAllText(Path.Combine(pki, "sa.pub"), sa.ExportSubjectPublicKeyInfoPem());
        }

        var admin = "admin-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var components = new Dictionary<string, string>
        {
            ["kubelet"] = Token(),
            ["kube-scheduler"] = Token(),
            ["kube-controller-manager"] = Token(),
            ["kube-proxy"] = Token(),
        };
        var tokens = new StringBuilder();
        tokens.Append(CultureInfo.InvariantCulture, $"{admin},admin,admin-uid,\"system:masters\"\n");
        tokens.Append(CultureInfo.InvariantCulture, $"{components["kubelet"]},system:node:{NodeLayout.NodeName},kubelet-uid,\"system:nodes\"\n");
        tokens.Append(CultureInfo.InvariantCulture, $"{components["kube-scheduler"]},system:kube-scheduler,kube-scheduler-uid\n");
        tokens.Append(CultureInfo.InvariantCulture, $"{components["kube-controller-manager"]},system:kube-controller-manager,kube-controller-manager-uid\n");
        tokens.Append(CultureInfo.InvariantCulture, $"{components["kube-proxy"]},system:kube-proxy,kube-proxy-uid\n");
        foreach (var user in NodeLayout.Users)
        {
            tokens.Append(CultureInfo.InvariantCulture, $"{UserToken(user)},{user},{user}-uid,\"kcnode-users\"\n");
        }

        File.WriteAllText(Path.Combine(pki, "tokens.csv"), tokens.ToString());
        var result = new NodePki(admin, serving.CertificatePem, components);
        result.WriteKubeconfig(layout, "admin", admin);
        foreach (var (component, token) in components)
        {
            result.WriteKubeconfig(layout, component, token);
        }

        return result;
    }

    /// <summary>A kubeconfig for <paramref name="token"/> that verifies the server against the serving CA.</summary>
    public string WriteKubeconfig(NodeLayout layout, string name, string token) =>
        KubeconfigFile.Write(layout.Kubeconfig(name), NodeLayout.ApiServerUrl, name, token, ServingCaPem);

    private static string Token() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
}
