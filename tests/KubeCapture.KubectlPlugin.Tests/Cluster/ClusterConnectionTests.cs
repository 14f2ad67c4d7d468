using KubeCapture.Contracts.Summary;
using KubeCapture.KubectlPlugin.Cli;
using KubeCapture.KubectlPlugin.Cluster;

namespace KubeCapture.KubectlPlugin.Tests.Cluster;

/// <summary>Finding the cluster as kubectl does: --kubeconfig, KUBECONFIG (a list, merged), ~/.kube/config; --context; the namespace.</summary>
public sealed class ClusterConnectionTests : IDisposable
{
    private readonly DirectoryInfo home = Directory.CreateTempSubdirectory("kc-plugin-");

    [Fact]
    public void KUBECONFIG_files_are_merged_and_the_first_current_context_and_its_namespace_are_used()
    {
        var first = Write("first", Kubeconfig("first", "https://10.0.0.1:6443", "payments", currentContext: "first"));
        var second = Write("second", Kubeconfig("second", "https://10.0.0.2:6443", null, currentContext: "second"));

        using var merged = ClusterConnection.Open(new ClusterSelection(null, null, null), Environment(("KUBECONFIG", $"{first}:/nonexistent:{second}")));
        using var other = ClusterConnection.Open(new ClusterSelection(null, "second", null), Environment(("KUBECONFIG", $"{first}:{second}")));
        using var explicitNamespace = ClusterConnection.Open(new ClusterSelection(second, null, "web"), Environment());

        Assert.Equal(("https://10.0.0.1:6443/", "payments"), (merged.Client.BaseUri.ToString(), merged.Namespace));
        Assert.Equal(("https://10.0.0.2:6443/", "default"), (other.Client.BaseUri.ToString(), other.Namespace));
        Assert.Equal("web", explicitNamespace.Namespace);
    }

    [Fact]
    public void Without_KUBECONFIG_the_file_in_home_is_used()
    {
        Directory.CreateDirectory(Path.Combine(home.FullName, ".kube"));
        File.WriteAllText(Path.Combine(home.FullName, ".kube", "config"), Kubeconfig("home", "https://10.0.0.3:6443", "ops", "home"));

        using var connection = ClusterConnection.Open(new ClusterSelection(null, null, null), Environment(("HOME", home.FullName)));

        Assert.Equal(("https://10.0.0.3:6443/", "ops"), (connection.Client.BaseUri.ToString(), connection.Namespace));
    }

    [Fact]
    public void A_missing_kubeconfig_or_an_unknown_context_is_a_clear_error()
    {
        var file = Write("only", Kubeconfig("only", "https://10.0.0.1:6443", null, "only"));

        var none = Assert.Throws<ClusterException>(() => ClusterConnection.Open(new ClusterSelection(null, null, null), Environment(("KUBECONFIG", "/nonexistent/a:/nonexistent/b"))));
        var noHome = Assert.Throws<ClusterException>(() => ClusterConnection.Open(new ClusterSelection(null, null, null), Environment(("HOME", home.FullName))));
        var context = Assert.Throws<ClusterException>(() => ClusterConnection.Open(new ClusterSelection(file, "prod", null), Environment()));

        Assert.Equal("KUBECONFIG='/nonexistent/a:/nonexistent/b': none of these files exists", none.Message);
        Assert.Equal($"no kubeconfig: {home.FullName}/.kube/config does not exist; give --kubeconfig FILE or set KUBECONFIG", noHome.Message);
        Assert.StartsWith("kubeconfig: ", context.Message, StringComparison.Ordinal);
        Assert.Contains("prod", context.Message, StringComparison.Ordinal);
    }

    public void Dispose() => home.Delete(recursive: true);

    private string Write(string name, string content)
    {
        var path = Path.Combine(home.FullName, name);
        File.WriteAllText(path, content);
        return path;
    }

    private static Func<string, string?> Environment(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value;

    private static string Kubeconfig(string name, string server, string? ns, string currentContext) => $"""
        apiVersion: v1
        kind: Config
        clusters:
        - name: {name}
          cluster:
            server: {server}
            insecure-skip-tls-verify: true
        users:
        - name: {name}
          user:
            token: {name}-token
        contexts:
        - name: {name}
          context:
            cluster: {name}
            user: {name}{(ns is null ? "" : $"\n    namespace: {ns}")}
        current-context: {currentContext}
        """;
}
