using k8s;
using k8s.Models;
using KubeCapture.Operator.Rbac;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Rbac;

/// <summary>
/// The operator's permissions: declared once in code (OperatorPermissions), granted by the chart, and
/// — asked of the real kube-apiserver as the operator's ServiceAccount — nothing broader.
/// </summary>
public sealed class OperatorPermissionsTests
{
    [SkippableFact]
    public async Task The_charts_ClusterRole_and_leader_Role_grant_exactly_the_declared_permissions()
    {
        var install = await KubeCaptureInstall.SharedAsync();
        var objects = KubernetesYaml.LoadAllFromString(install.RenderedYaml);
        var clusterRole = objects.OfType<V1ClusterRole>().Single(r => r.Metadata.Name == $"{KubeCaptureInstall.Release}-kubecapture-operator");
        var ownRole = objects.OfType<V1Role>().Single(r => r.Metadata.Name == $"{KubeCaptureInstall.Release}-kubecapture-operator");

        Assert.Equal(Grants(OperatorPermissions.ClusterWide), Grants(clusterRole.Rules));
        Assert.Equal(Grants(OperatorPermissions.OwnNamespace), Grants(ownRole.Rules));
        Assert.Equal(KubeCaptureInstall.Namespace, ownRole.Metadata.NamespaceProperty);
        var kubeSystemRole = objects.OfType<V1Role>().Single(r => r.Metadata.Name == $"{KubeCaptureInstall.Release}-kubecapture-authentication-reader");
        Assert.Equal(Grants(OperatorPermissions.KubeSystem), Grants(kubeSystemRole.Rules));
        Assert.Equal("kube-system", kubeSystemRole.Metadata.NamespaceProperty);
    }

    [SkippableFact]
    public async Task The_operators_ServiceAccount_may_do_in_a_user_namespace_exactly_what_is_declared_and_nothing_broader()
    {
        var install = await KubeCaptureInstall.SharedAsync();
        var ns = await install.Server.CreateNamespaceAsync("kc-rbac");

        // kubectl auth can-i --list, as the operator's ServiceAccount (its own TokenRequest token).
        var listed = (await install.Server.KubectlAsync(install.OperatorToken, ["auth", "can-i", "--list", "-n", ns])).EnsureSuccess().StdoutLines;
        var granted = ParseCanIList(listed);

        // What every authenticated user may do (system:basic-user and friends) is not the chart's doing.
        var expected = Grants(OperatorPermissions.ClusterWide);
        expected.UnionWith(["authorization.k8s.io/selfsubjectaccessreviews:create", "authorization.k8s.io/selfsubjectrulesreviews:create", "authentication.k8s.io/selfsubjectreviews:create"]);
        Assert.Equal(expected, granted);
        Assert.DoesNotContain(granted, g => g.Contains('*', StringComparison.Ordinal));
    }

    [SkippableTheory]
    [InlineData("get", "secrets", "--all-namespaces")]
    [InlineData("list", "secrets", "--all-namespaces")]
    [InlineData("watch", "secrets", "--all-namespaces")]
    [InlineData("update", "secrets", "-n=default")]
    [InlineData("patch", "secrets", "-n=default")]
    [InlineData("delete", "secrets", "-n=default")]
    [InlineData("create", "pods/exec", "-n=default")]
    [InlineData("create", "pods/attach", "-n=default")]
    [InlineData("create", "pods", "-n=default")]
    [InlineData("delete", "pods", "-n=default")]
    [InlineData("update", "pods", "-n=default")]
    [InlineData("update", "pods/ephemeralcontainers", "-n=default")]
    [InlineData("create", "leases.coordination.k8s.io", "-n=default")]
    [InlineData("create", "rolebindings.rbac.authorization.k8s.io", "-n=default")]
    [InlineData("create", "serviceaccounts/token", "-n=default")]
    public async Task The_operators_ServiceAccount_may_not(string verb, string resource, string scope)
    {
        var install = await KubeCaptureInstall.SharedAsync();

        var answer = await install.Server.KubectlAsync(install.OperatorToken, ["auth", "can-i", verb, resource, scope]);

        Assert.Equal("no", answer.Stdout.Trim());
    }

    [SkippableTheory]
    [InlineData("get", "secrets/kc-kubecapture-serving-certificate", "yes")]
    [InlineData("update", "secrets/kc-kubecapture-serving-certificate", "yes")]
    [InlineData("get", "secrets/some-other-secret", "no")]
    [InlineData("update", "secrets/some-other-secret", "no")]
    [InlineData("list", "secrets", "no")]
    [InlineData("watch", "secrets", "no")]
    [InlineData("delete", "secrets/kc-kubecapture-serving-certificate", "no")]
    public async Task The_operators_ServiceAccount_may_read_and_renew_only_its_own_serving_certificate_Secret(string verb, string resource, string expected)
    {
        var install = await KubeCaptureInstall.SharedAsync();

        var answer = await install.Server.KubectlAsync(install.OperatorToken, ["auth", "can-i", verb, resource, "-n", KubeCaptureInstall.Namespace]);

        Assert.Equal(expected, answer.Stdout.Trim());
    }

    [SkippableTheory]
    [InlineData("patch", "apiservices.apiregistration.k8s.io/v1alpha1.subresources.kubecapture.io", "yes")]
    [InlineData("patch", "apiservices.apiregistration.k8s.io/v1beta1.metrics.k8s.io", "no")]
    [InlineData("create", "apiservices.apiregistration.k8s.io", "no")]
    [InlineData("delete", "apiservices.apiregistration.k8s.io/v1alpha1.subresources.kubecapture.io", "no")]
    public async Task The_operators_ServiceAccount_may_patch_only_its_own_APIService(string verb, string resource, string expected)
    {
        var install = await KubeCaptureInstall.SharedAsync();

        var answer = await install.Server.KubectlAsync(install.OperatorToken, ["auth", "can-i", verb, resource]);

        Assert.Equal(expected, answer.Stdout.Trim());
    }

    [SkippableTheory]
    [InlineData("get", "configmaps/extension-apiserver-authentication", "yes")]
    [InlineData("get", "configmaps/kube-proxy", "no")]
    [InlineData("list", "configmaps", "no")]
    [InlineData("get", "secrets", "no")]
    public async Task The_operators_ServiceAccount_may_read_only_the_front_proxy_settings_in_kube_system(string verb, string resource, string expected)
    {
        var install = await KubeCaptureInstall.SharedAsync();

        var answer = await install.Server.KubectlAsync(install.OperatorToken, ["auth", "can-i", verb, resource, "-n", "kube-system"]);

        Assert.Equal(expected, answer.Stdout.Trim());
    }

    [SkippableFact]
    public async Task The_operators_ServiceAccount_may_hold_its_Lease_in_its_own_namespace()
    {
        var install = await KubeCaptureInstall.SharedAsync();

        var answer = await install.Server.KubectlAsync(install.OperatorToken, ["auth", "can-i", "update", "leases.coordination.k8s.io", "-n", KubeCaptureInstall.Namespace]);

        Assert.Equal("yes", answer.Stdout.Trim());
    }

    private const string Fullname = $"{KubeCaptureInstall.Release}-kubecapture";

    private static SortedSet<string> Grants(IEnumerable<Permission> permissions) =>
        new(permissions.SelectMany(p => p.Verbs.SelectMany(v => Names(p.ResourceNamesFor(Fullname)).Select(n => Grant(p.ApiGroup, p.Resource, v, n)))), StringComparer.Ordinal);

    private static SortedSet<string> Grants(IEnumerable<V1PolicyRule> rules) =>
        new(rules.SelectMany(r => r.ApiGroups.SelectMany(g => r.Resources.SelectMany(res => r.Verbs.SelectMany(v => Names(r.ResourceNames).Select(n => Grant(g, res, v, n)))))), StringComparer.Ordinal);

    private static IEnumerable<string> Names(IEnumerable<string>? names) => names?.Any() == true ? names : [""];

    /// <summary>"group/resource:verb", and "@name" when the rule names the objects it applies to.</summary>
    private static string Grant(string group, string resource, string verb, string name = "") =>
        $"{(group.Length == 0 ? "" : group + "/")}{resource}:{verb}{(name.Length == 0 ? "" : "@" + name)}";

    /// <summary>
    /// kubectl's table: "Resources  Non-Resource URLs  Resource Names  Verbs", resources as
    /// "resource.group/subresource" (core: no group), verbs as "[get list]". Non-resource URLs are left out.
    /// </summary>
    private static SortedSet<string> ParseCanIList(IEnumerable<string> lines)
    {
        var grants = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var line in lines.Skip(1))
        {
            var verbsStart = line.LastIndexOf('[');
            var columns = line[..verbsStart].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (columns.Length == 0 || columns[0].StartsWith('['))
            {
                continue; // a non-resource URL ([/healthz], [/api/*], ...): no resource column
            }

            // "pods", "pods/ephemeralcontainers", "packetcaptures.kubecapture.io/finalizers"
            var slash = columns[0].IndexOf('/', StringComparison.Ordinal);
            var (resourceAndGroup, subresource) = slash < 0 ? (columns[0], "") : (columns[0][..slash], columns[0][slash..]);
            var dot = resourceAndGroup.IndexOf('.', StringComparison.Ordinal);
            var (resource, group) = dot < 0 ? (resourceAndGroup + subresource, "") : (resourceAndGroup[..dot] + subresource, resourceAndGroup[(dot + 1)..]);
            // The columns between: "[]" (non-resource URLs), then the resource names "[a b]" (or "[]").
            var names = line[..verbsStart].TrimEnd();
            var namesStart = names.LastIndexOf('[');
            var resourceNames = names[(namesStart + 1)..^1].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            foreach (var verb in line[(verbsStart + 1)..line.LastIndexOf(']')].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                foreach (var name in Names(resourceNames))
                {
                    grants.Add(Grant(group, resource, verb, name));
                }
            }
        }

        return grants;
    }
}
