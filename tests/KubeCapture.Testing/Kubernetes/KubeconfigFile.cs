using System.Text;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>A kubeconfig of one user (a bearer token) for one server: for kubectl, helm, the plugin and operator processes.</summary>
public static class KubeconfigFile
{
    /// <summary>Writes it to <paramref name="path"/>; the server is verified against <paramref name="caPem"/>, or not at all when it is null.</summary>
    public static string Write(string path, string server, string name, string token, string? caPem)
    {
        var trust = caPem is null
            ? "insecure-skip-tls-verify: true"
            : "certificate-authority-data: " + Convert.ToBase64String(Encoding.ASCII.GetBytes(caPem));
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: cluster
              cluster:
                server: {server}
                {trust}
            users:
            - name: {name}
              user:
                token: {token}
            contexts:
            - name: {name}
              context:
                cluster: cluster
                user: {name}
            current-context: {name}
            """);
        return path;
    }
}
