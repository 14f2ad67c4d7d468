using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Chart;

/// <summary>
/// The CRD's schema, defaults and CEL rules as the real kube-apiserver applies them. In the shared
/// cluster: every PacketCapture passes the chart's admission webhooks (failurePolicy Fail), which its
/// operator serves.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class CrdOnApiServerTests(SubresourcesCluster cluster)
{
    [SkippableFact]
    public async Task The_server_fills_in_the_defaults_of_interface_snaplen_maxBytes_and_retention()
    {
        var (client, ns) = await UserNamespaceAsync();

        var created = await CreateAsync(client, ns, "defaults", new PacketCaptureSpec
        {
            Reason = "defaults",
            Target = new CaptureTarget { PodName = "api" },
            Duration = "30s",
            Retention = new CaptureRetention(),
        });

        Assert.Equal("any", created.Spec.Interface);
        Assert.Equal(128, created.Spec.Snaplen);
        Assert.Equal("64Mi", created.Spec.MaxBytes);
        Assert.Equal("168h", created.Spec.Retention!.Ttl);
        Assert.Equal("none", created.Spec.Retention.Lock);
        Assert.Null(created.Spec.Filter);
    }

    [SkippableFact]
    public async Task The_server_refuses_a_capture_that_names_both_a_pod_and_a_selector()
    {
        var (client, ns) = await UserNamespaceAsync();

        var refused = await RefusedAsync(() => CreateAsync(client, ns, "both", new PacketCaptureSpec
        {
            Reason = "both",
            Target = new CaptureTarget { PodName = "api", PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string> { ["app"] = "api" } } },
            Duration = "30s",
        }));

        Assert.Contains("set exactly one of target.podName and target.podSelector", refused, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task The_server_refuses_an_empty_selector_that_would_match_every_pod()
    {
        var (client, ns) = await UserNamespaceAsync();

        var refused = await RefusedAsync(() => CreateAsync(client, ns, "empty-selector", new PacketCaptureSpec
        {
            Reason = "everything",
            Target = new CaptureTarget { PodSelector = new V1LabelSelector() },
            Duration = "30s",
        }));

        Assert.Contains("target.podSelector must not be empty", refused, StringComparison.Ordinal);
    }

    [SkippableTheory]
    [InlineData("duration", "forever")]
    [InlineData("maxBytes", "lots")]
    [InlineData("snaplen", "-1")]
    [InlineData("reason", "")]
    public async Task The_server_refuses_a_field_outside_its_schema(string field, string value)
    {
        var (client, ns) = await UserNamespaceAsync();
        var spec = new Dictionary<string, object> { ["reason"] = "schema", ["target"] = new Dictionary<string, string> { ["podName"] = "api" }, ["duration"] = "30s" };
        spec[field] = field == "snaplen" ? int.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : value;
        var body = new Dictionary<string, object>
        {
            ["apiVersion"] = "kubecapture.io/v1alpha1",
            ["kind"] = "PacketCapture",
            ["metadata"] = new Dictionary<string, string> { ["name"] = "schema-" + field.ToLowerInvariant() },
            ["spec"] = spec,
        };

        var refused = await RefusedAsync(() => client.CustomObjects.CreateNamespacedCustomObjectAsync(body, PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural));

        Assert.Contains("spec." + field, refused, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task After_creation_only_spec_stop_may_change_and_stop_cannot_be_unset()
    {
        var (client, ns) = await UserNamespaceAsync();
        await CreateAsync(client, ns, "immutable", new PacketCaptureSpec { Reason = "immutable", Target = new CaptureTarget { PodName = "api" }, Duration = "30s", Filter = "tcp" });

        var changedFilter = await RefusedAsync(() => MergePatchAsync(client, ns, "immutable", """{"spec":{"filter":"udp"}}"""));
        var stopped = await MergePatchAsync(client, ns, "immutable", """{"spec":{"stop":true}}""");
        var unstopped = await RefusedAsync(() => MergePatchAsync(client, ns, "immutable", """{"spec":{"stop":false}}"""));

        Assert.Contains("spec is immutable after creation; only spec.stop may be set", changedFilter, StringComparison.Ordinal);
        Assert.True(stopped.Spec.Stop);
        Assert.Contains("spec.stop cannot be unset", unstopped, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task The_server_fills_in_the_recorders_ring_and_keeps_its_triggers()
    {
        var (client, ns) = await UserNamespaceAsync();

        var created = await CreateAsync(client, ns, "recorder", new PacketCaptureSpec
        {
            Reason = "intermittent resets",
            Target = new CaptureTarget { PodName = "api" },
            Duration = "1h",
            Recorder = new RecorderSpec
            {
                Window = "5m",
                Triggers = new RecorderTriggerSpec { Filter = new RecorderFilterTrigger { Expression = "tcp[tcpflags] & tcp-rst != 0", Count = "20/10s" }, Findings = ["ConnectionRefused>5/1m", "DataStalled"] },
            },
        });

        Assert.Equal(("5m", "64Mi"), (created.Spec.Recorder!.Window, created.Spec.Recorder.MaxBytes));
        Assert.Equal(["ConnectionRefused>5/1m", "DataStalled"], created.Spec.Recorder.Triggers!.Findings!);
        Assert.Equal("20/10s", created.Spec.Recorder.Triggers.Filter!.Count);
    }

    [SkippableTheory]
    [InlineData("""{"maxSnapshots":0}""", "spec.recorder.window: Required value")]
    [InlineData("""{"window":"5 minutes"}""", "spec.recorder.window")]
    [InlineData("""{"window":"5m","maxBytes":"lots"}""", "spec.recorder.maxBytes")]
    [InlineData("""{"window":"5m","maxSnapshots":101}""", "spec.recorder.maxSnapshots")]
    [InlineData("""{"window":"5m","triggers":{"filter":{"count":"20/10s"}}}""", "spec.recorder.triggers.filter.expression: Required value")]
    [InlineData("""{"window":"5m","triggers":{"filter":{"expression":"tcp","count":"20 per 10s"}}}""", "spec.recorder.triggers.filter.count")]
    [InlineData("""{"window":"5m","triggers":{"findings":["ConnectionRefused>5"]}}""", "spec.recorder.triggers.findings[0]")]
    [InlineData("""{"window":"5m","triggers":{"findings":[]}}""", "spec.recorder.triggers.findings")]
    public async Task The_server_refuses_a_recorder_outside_its_schema(string recorder, string expected)
    {
        var (client, ns) = await UserNamespaceAsync();
        var body = $$$"""
            {"apiVersion":"kubecapture.io/v1alpha1","kind":"PacketCapture","metadata":{"name":"bad-recorder"},
             "spec":{"reason":"schema","target":{"podName":"api"},"duration":"1h","recorder":{{{recorder}}}}}
            """;

        var refused = await RefusedAsync(() => client.CustomObjects.CreateNamespacedCustomObjectAsync(
            System.Text.Json.JsonDocument.Parse(body).RootElement, PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural));

        Assert.Contains(expected, refused, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_recorder_cannot_be_added_or_changed_after_creation()
    {
        var (client, ns) = await UserNamespaceAsync();
        await CreateAsync(client, ns, "plain", new PacketCaptureSpec { Reason = "plain", Target = new CaptureTarget { PodName = "api" }, Duration = "1h" });
        await CreateAsync(client, ns, "rec", new PacketCaptureSpec { Reason = "rec", Target = new CaptureTarget { PodName = "api" }, Duration = "1h", Recorder = new RecorderSpec { Window = "5m" } });

        var added = await RefusedAsync(() => MergePatchAsync(client, ns, "plain", """{"spec":{"recorder":{"window":"5m"}}}"""));
        var widened = await RefusedAsync(() => MergePatchAsync(client, ns, "rec", """{"spec":{"recorder":{"window":"10m"}}}"""));

        Assert.Contains("spec is immutable after creation; only spec.stop may be set", added, StringComparison.Ordinal);
        Assert.Contains("spec is immutable after creation; only spec.stop may be set", widened, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task A_user_bound_to_the_charts_edit_role_creates_captures_but_a_viewer_cannot()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-crd-rbac");
        var install = cluster.Install;
        using var admin = install.Server.AdminClient();
        // No controller-manager aggregates ClusterRoles here: bind the chart's roles themselves.
        await BindAsync(admin, ns, "alice", $"{KubeCaptureInstall.Release}-kubecapture-edit");
        await BindAsync(admin, ns, "bob", $"{KubeCaptureInstall.Release}-kubecapture-view");
        using var alice = install.Server.Client(KubeApiServer.UserToken("alice"));
        using var bob = install.Server.Client(KubeApiServer.UserToken("bob"));
        var spec = new PacketCaptureSpec { Reason = "rbac", Target = new CaptureTarget { PodName = "api" }, Duration = "30s" };

        await CreateAsync(alice, ns, "by-alice", spec);
        var bobRefused = await Assert.ThrowsAsync<HttpOperationException>(() => CreateAsync(bob, ns, "by-bob", spec));
        var bobReads = await bob.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, "by-alice");

        Assert.Equal(HttpStatusCode.Forbidden, bobRefused.Response.StatusCode);
        Assert.Equal("rbac", bobReads.Spec.Reason);
    }

    internal static async Task BindAsync(IKubernetes admin, string ns, string user, string clusterRole) =>
        await admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { Name = $"{user}-{clusterRole}" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = clusterRole },
            Subjects = [new Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
        }, ns);

    private async Task<(IKubernetes Client, string Namespace)> UserNamespaceAsync()
    {
        var ns = await cluster.CreateNamespaceAsync("kc-crd");
        return (cluster.Install.Server.AdminClient(), ns);
    }

    private static Task<PacketCapture> CreateAsync(IKubernetes client, string ns, string name, PacketCaptureSpec spec) =>
        client.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(
            new PacketCapture { ApiVersion = $"{PacketCapture.Group}/{PacketCapture.Version}", Kind = "PacketCapture", Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns }, Spec = spec },
            PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural);

    private static Task<PacketCapture> MergePatchAsync(IKubernetes client, string ns, string name, string patch) =>
        client.CustomObjects.PatchNamespacedCustomObjectAsync<PacketCapture>(new V1Patch(patch, V1Patch.PatchType.MergePatch),
            PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, name);

    /// <summary>The server's refusal (422 Invalid), as the message kubectl would print.</summary>
    private static async Task<string> RefusedAsync(Func<Task> call)
    {
        var e = await Assert.ThrowsAsync<HttpOperationException>(call);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, e.Response.StatusCode);
        return e.Response.Content;
    }
}
