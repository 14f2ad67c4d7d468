using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Finalizer;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Tests.EndToEnd;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Admission;

/// <summary>
/// Who asked, on the real kube-apiserver with the chart's webhook configurations and the operator
/// serving them: a user's capture carries that user, and nobody (the user, the cluster admin, the
/// operator's own ServiceAccount) can set the stamp at create or change it afterwards.
/// </summary>
[Collection(ApiServerClusterCollection.Name)]
public sealed class RequesterStampEndToEndTests(SubresourcesCluster cluster)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);

    [SkippableFact]
    public async Task A_user_who_creates_a_capture_is_stamped_on_it_with_the_name_uid_and_groups_kube_apiserver_authenticated_and_holds_the_finalizer_from_creation()
    {
        var (ns, alice) = await AliceAsync("kc-stamp");

        var created = await alice.CreatePacketCaptureAsync(ns, "by-alice", Spec());

        var annotations = created.Metadata.Annotations;
        Assert.Equal("alice", annotations[RequesterStamp.Username]);
        Assert.Equal("alice-uid", annotations[RequesterStamp.Uid]);
        Assert.Equal("""["kcapi-users","system:authenticated"]""", annotations[RequesterStamp.Groups]);
        Assert.Equal([CaptureFinalizer.Name], created.Metadata.Finalizers); // from admission: held from its first moment
        // The operator verified it (the pod does not exist, so the capture then fails on its target).
        var done = await cluster.Admin.WaitForPhaseAsync(ns, "by-alice", CapturePhase.Failed, Long);
        var verified = CaptureConditions.Find(done.Status, CaptureConditions.RequesterVerified);
        Assert.Equal("True", verified?.Status);
        Assert.Equal("Stamped", verified?.Reason);
        Assert.Equal("requested by alice, as kube-apiserver authenticated them", verified?.Message);
        var lines = await cluster.WaitForAuditAsync(created.Metadata.Uid, "refused");
        Assert.Equal(["requested", "admitted", "refused"], lines.Select(l => l.GetProperty("event").GetString())); // as it happened: the pod is missing after admission
        var requested = lines.First(l => l.GetProperty("event").GetString() == "requested");
        Assert.Equal("alice", requested.GetProperty("requester").GetProperty("username").GetString());
        Assert.Equal(["kcapi-users", "system:authenticated"], requested.GetProperty("requester").GetProperty("groups").EnumerateArray().Select(g => g.GetString()));
    }

    [SkippableFact]
    public async Task What_else_kube_apiserver_authenticated_userInfo_extra_is_stamped_with_the_requester_and_recorded_in_the_audit_log()
    {
        var (ns, _) = await AliceAsync("kc-stamp-extra");
        // The admin acting as alice with extra (impersonation, as an authenticating proxy or a token's
        // credential id would give it): kube-apiserver hands the webhook alice with that extra.
        var headers = new Dictionary<string, IReadOnlyList<string>>
        {
            ["Impersonate-User"] = ["alice"],
            ["Impersonate-Uid"] = ["alice-uid"],
            ["Impersonate-Group"] = ["kcapi-users"],
            ["Impersonate-Extra-Scopes"] = ["view"], // one value: HttpClient folds several into one header, which kube-apiserver reads as one
            ["Impersonate-Extra-Example.com%2freason"] = ["INC-4711"],
        };
        var capture = new PacketCapture { Metadata = new V1ObjectMeta { Name = "with-extra", NamespaceProperty = ns }, Spec = Spec() };

        using var response = await cluster.Admin.CustomObjects.CreateNamespacedCustomObjectWithHttpMessagesAsync<PacketCapture>(
            capture, PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, customHeaders: headers);

        var created = response.Body;
        Assert.Equal("""{"example.com/reason":["INC-4711"],"scopes":["view"]}""", created.Metadata.Annotations[RequesterStamp.Extra]);
        var requester = RequesterStamp.Read(created.Metadata);
        Assert.Equal(("alice", "alice-uid"), (requester?.Username, requester?.Uid));
        Assert.Equal(["kcapi-users", "system:authenticated"], requester?.Groups);
        var requested = (await cluster.WaitForAuditAsync(created.Metadata.Uid, "refused")).First(l => l.GetProperty("event").GetString() == "requested");
        var extra = requested.GetProperty("requester").GetProperty("extra");
        Assert.Equal(["view"], extra.GetProperty("scopes").EnumerateArray().Select(v => v.GetString()));
        Assert.Equal(["INC-4711"], extra.GetProperty("example.com/reason").EnumerateArray().Select(v => v.GetString()));
    }

    [SkippableFact]
    public async Task A_user_who_brings_their_own_stamp_at_create_is_refused_by_admission_with_the_annotation_named()
    {
        var (ns, alice) = await AliceAsync("kc-stamp-forged");
        var forged = new PacketCapture
        {
            Metadata = new V1ObjectMeta { Name = "as-bob", NamespaceProperty = ns, Annotations = new Dictionary<string, string> { [RequesterStamp.Username] = "bob" } },
            Spec = Spec(),
        };

        var refused = await Assert.ThrowsAsync<HttpOperationException>(() =>
            alice.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(forged, PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural));

        Assert.Equal(HttpStatusCode.Forbidden, refused.Response.StatusCode);
        Assert.Contains($"admission webhook \"{AdmissionReviews.StampWebhook}\" denied the request: metadata.annotations kubecapture.io/requested-by: the requester is stamped by admission from the user kube-apiserver authenticated; a new PacketCapture may not bring its own (remove them)",
            Status(refused), StringComparison.Ordinal);
        Assert.Null(await cluster.Admin.GetPacketCaptureAsync(ns, "as-bob"));
    }

    [SkippableFact]
    public async Task Changing_or_removing_the_stamp_on_update_is_refused_for_the_user_the_admin_and_the_operators_ServiceAccount()
    {
        var (ns, alice) = await AliceAsync("kc-stamp-update");
        await alice.CreatePacketCaptureAsync(ns, "kept", Spec());
        using var operatorAccount = cluster.Install.Server.Client(cluster.Install.OperatorToken);
        var asBob = AnnotationPatch(RequesterStamp.Username, "bob");
        var removed = AnnotationPatch(RequesterStamp.Groups, null);

        var byAlice = await RefusedAsync(alice, ns, "kept", asBob);
        var byAdmin = await RefusedAsync(cluster.Admin, ns, "kept", asBob);
        var removedByAdmin = await RefusedAsync(cluster.Admin, ns, "kept", removed);
        var byOperator = await RefusedAsync(operatorAccount, ns, "kept", asBob);
        var otherAnnotation = await MergePatchAsync(alice, ns, "kept", """{"metadata":{"annotations":{"team":"payments"}}}""");

        Assert.Contains($"admission webhook \"{AdmissionReviews.GuardWebhook}\" denied the request: metadata.annotations kubecapture.io/requested-by: the requester is stamped by admission when a PacketCapture is created and cannot be set, changed or removed afterwards (by anyone)", byAlice, StringComparison.Ordinal);
        Assert.Contains("metadata.annotations kubecapture.io/requested-by: ", byAdmin, StringComparison.Ordinal);
        Assert.Contains("metadata.annotations kubecapture.io/requested-by-groups: ", removedByAdmin, StringComparison.Ordinal);
        Assert.Contains("metadata.annotations kubecapture.io/requested-by: ", byOperator, StringComparison.Ordinal);
        Assert.Equal("payments", otherAnnotation.Metadata.Annotations["team"]);
        Assert.Equal("alice", RequesterStamp.Read(otherAnnotation.Metadata)?.Username);
        Assert.Equal(["kcapi-users", "system:authenticated"], RequesterStamp.Read(otherAnnotation.Metadata)?.Groups);
    }

    [SkippableTheory]
    [InlineData("--server-side")]
    [InlineData("--server-side=false")]
    public async Task Applying_the_same_manifest_again_with_kubectl_keeps_the_stamp_and_the_finalizer(string mode)
    {
        var (ns, _) = await AliceAsync("kc-stamp-apply");
        var manifest = $"""
            apiVersion: kubecapture.io/v1alpha1
            kind: PacketCapture
            metadata:
              name: applied
              namespace: {ns}
            spec:
              reason: applied twice
              target:
                podName: absent
              duration: 10s
            """;

        var first = await cluster.Install.Server.KubectlAsync(KubeApiServer.UserToken("alice"), ["apply", mode, "-f", "-"], manifest);
        var again = await cluster.Install.Server.KubectlAsync(KubeApiServer.UserToken("alice"), ["apply", mode, "-f", "-", "-o", "json"], manifest);

        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Equal("alice", RequesterStamp.Read((await cluster.Admin.GetPacketCaptureAsync(ns, "applied"))!.Metadata)?.Username);
        // The object as the second apply left it (before the operator could add anything back): the finalizer admission added stays.
        var applied = k8s.KubernetesJson.Deserialize<PacketCapture>(again.Stdout);
        Assert.Contains(CaptureFinalizer.Name, applied.Metadata.Finalizers ?? []);
    }

    /// <summary>A merge patch that sets one annotation (null: removes it).</summary>
    private static string AnnotationPatch(string key, string? value) =>
        new System.Text.Json.Nodes.JsonObject { ["metadata"] = new System.Text.Json.Nodes.JsonObject { ["annotations"] = new System.Text.Json.Nodes.JsonObject { [key] = value } } }.ToJsonString();

    private static PacketCaptureSpec Spec() => new() { Reason = "who asked", Target = new CaptureTarget { PodName = "absent" }, Duration = "10s" };

    /// <summary>A namespace of the test's own where alice holds the chart's edit role, and alice's client.</summary>
    private async Task<(string Namespace, IKubernetes Alice)> AliceAsync(string prefix)
    {
        var ns = await cluster.CreateNamespaceAsync(prefix);
        await cluster.BindAsync(ns, "alice", $"{KubeCaptureInstall.Release}-kubecapture-edit");
        return (ns, cluster.Install.Server.Client(KubeApiServer.UserToken("alice")));
    }

    private static Task<PacketCapture> MergePatchAsync(IKubernetes client, string ns, string name, string patch) =>
        client.CustomObjects.PatchNamespacedCustomObjectAsync<PacketCapture>(new V1Patch(patch, V1Patch.PatchType.MergePatch), PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, name);

    /// <summary>The refusal (403 from the guard webhook), as kubectl would print its message.</summary>
    private static async Task<string> RefusedAsync(IKubernetes client, string ns, string name, string patch)
    {
        var e = await Assert.ThrowsAsync<HttpOperationException>(() => MergePatchAsync(client, ns, name, patch));
        Assert.Equal(HttpStatusCode.Forbidden, e.Response.StatusCode);
        return Status(e);
    }

    private static string Status(HttpOperationException e) => KubernetesJson.Deserialize<V1Status>(e.Response.Content).Message ?? e.Response.Content;
}
