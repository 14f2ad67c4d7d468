using System.Text;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using KubeCapture.Operator.Admission;
using KubeCapture.Operator.Finalizer;
using KubeCapture.Operator.Provenance;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Admission;

/// <summary>The two webhooks as functions of an AdmissionReview v1; the stamp's JSONPatch applied by the real kube-apiserver.</summary>
public sealed class AdmissionReviewsTests
{
    private static readonly JsonObject Alice = new() { ["username"] = "alice", ["uid"] = "alice-uid", ["groups"] = new JsonArray("team-payments", "system:authenticated") };

    [Fact]
    public void A_new_capture_without_annotations_gets_a_JSONPatch_that_adds_the_three_stamp_annotations_and_the_finalizer()
    {
        var answer = AdmissionReviews.Stamp(Review("CREATE", Capture(null)));

        var response = answer["response"]!;
        Assert.Equal("admission.k8s.io/v1", answer["apiVersion"]!.GetValue<string>());
        Assert.Equal("AdmissionReview", answer["kind"]!.GetValue<string>());
        Assert.Equal("request-1", response["uid"]!.GetValue<string>());
        Assert.True(response["allowed"]!.GetValue<bool>());
        Assert.Equal("JSONPatch", response["patchType"]!.GetValue<string>());
        Assert.Equal(2, Patch(answer).Count);
        var finalizer = Patch(answer)[1]!;
        Assert.Equal(("add", "/metadata/finalizers"), (finalizer["op"]!.GetValue<string>(), finalizer["path"]!.GetValue<string>()));
        Assert.Equal([CaptureFinalizer.Name], finalizer["value"]!.AsArray().Select(f => f!.GetValue<string>()));
        var operation = Patch(answer)[0]!;
        Assert.Equal("add", operation["op"]!.GetValue<string>());
        Assert.Equal("/metadata/annotations", operation["path"]!.GetValue<string>());
        Assert.Equal("alice", operation["value"]![RequesterStamp.Username]!.GetValue<string>());
        Assert.Equal("alice-uid", operation["value"]![RequesterStamp.Uid]!.GetValue<string>());
        Assert.Equal("""["team-payments","system:authenticated"]""", operation["value"]![RequesterStamp.Groups]!.GetValue<string>());
    }

    [Fact]
    public void A_new_capture_with_other_annotations_keeps_them_and_gets_one_add_per_stamp_key_with_the_slash_escaped()
    {
        var answer = AdmissionReviews.Stamp(Review("CREATE", Capture(new JsonObject { ["team"] = "payments" })));

        var paths = Patch(answer).Select(o => o!["path"]!.GetValue<string>()).ToList();
        Assert.Equal(["/metadata/annotations/kubecapture.io~1requested-by", "/metadata/annotations/kubecapture.io~1requested-by-uid", "/metadata/annotations/kubecapture.io~1requested-by-groups", "/metadata/finalizers"], paths);
        Assert.All(Patch(answer), o => Assert.Equal("add", o!["op"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData("""["example.com/keep"]""", """["example.com/keep","kubecapture.io/finalizer"]""")]
    [InlineData("""["kubecapture.io/finalizer"]""", """["kubecapture.io/finalizer"]""")]
    public void A_new_capture_with_finalizers_of_its_own_keeps_them_and_gets_the_capture_finalizer_once(string brought, string expected)
    {
        var capture = Capture(null);
        capture["metadata"]!["finalizers"] = JsonNode.Parse(brought);

        var answer = AdmissionReviews.Stamp(Review("CREATE", capture));

        var patched = ApplyFinalizerOperations(JsonNode.Parse(brought)!.AsArray(), Patch(answer));
        Assert.Equal(expected, patched.ToJsonString());
    }

    [Fact]
    public void A_new_capture_that_brings_its_own_stamp_is_refused_with_the_annotation_named()
    {
        var answer = AdmissionReviews.Stamp(Review("CREATE", Capture(new JsonObject { [RequesterStamp.Username] = "bob" })));

        var response = answer["response"]!;
        Assert.False(response["allowed"]!.GetValue<bool>());
        Assert.Null(response["patch"]);
        Assert.Equal(403, response["status"]!["code"]!.GetValue<int>());
        Assert.Contains("metadata.annotations kubecapture.io/requested-by: the requester is stamped by admission", response["status"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_stamp_webhook_lets_an_update_through_untouched()
    {
        var answer = AdmissionReviews.Stamp(Review("UPDATE", Capture(null), Capture(null)));

        Assert.True(answer["response"]!["allowed"]!.GetValue<bool>());
        Assert.Null(answer["response"]!["patch"]);
    }

    [Fact]
    public void The_guard_allows_a_created_capture_stamped_with_its_own_requester_and_refuses_one_stamped_with_another()
    {
        var own = Guard(Review("CREATE", Capture(Stamped("alice", "alice-uid", """["team-payments","system:authenticated"]"""))));
        var other = Guard(Review("CREATE", Capture(Stamped("bob", "bob-uid", """["team-payments","system:authenticated"]"""))));
        var moreGroups = Guard(Review("CREATE", Capture(Stamped("alice", "alice-uid", """["team-payments","system:authenticated","system:masters"]"""))));

        Assert.True(own["response"]!["allowed"]!.GetValue<bool>());
        Assert.False(other["response"]!["allowed"]!.GetValue<bool>());
        Assert.Contains("the stamp says bob (uid bob-uid, groups team-payments,system:authenticated), but kube-apiserver authenticated alice", Message(other), StringComparison.Ordinal);
        Assert.False(moreGroups["response"]!["allowed"]!.GetValue<bool>());
    }

    [Fact]
    public void The_guard_refuses_a_created_capture_without_a_stamp_and_says_the_mutating_webhook_did_not_run()
    {
        var answer = Guard(Review("CREATE", Capture(null)));

        Assert.False(answer["response"]!["allowed"]!.GetValue<bool>());
        Assert.Contains("not stamped with its requester (it has no kubecapture.io/requested-by annotation): the mutating webhook stamp.packetcaptures.kubecapture.io did not run", Message(answer), StringComparison.Ordinal);
    }

    [Fact]
    public void The_guard_refuses_an_update_that_changes_removes_or_adds_any_stamp_annotation_and_allows_one_that_leaves_it()
    {
        var stamp = Stamped("alice", "alice-uid", """["system:authenticated"]""");
        var changed = Stamped("mallory", "alice-uid", """["system:authenticated"]""");
        var removed = new JsonObject { [RequesterStamp.Uid] = "alice-uid", [RequesterStamp.Groups] = """["system:authenticated"]""" };
        var added = Stamped("alice", "alice-uid", """["system:authenticated"]""");
        added["kubecapture.io/requested-by-extra"] = "x";
        var withOther = Stamped("alice", "alice-uid", """["system:authenticated"]""");
        withOther["team"] = "payments";

        Assert.Contains("kubecapture.io/requested-by: the requester is stamped by admission when a PacketCapture is created and cannot be set, changed or removed", Message(Guard(Review("UPDATE", Capture(changed), Capture(stamp)))), StringComparison.Ordinal);
        Assert.False(Guard(Review("UPDATE", Capture(removed), Capture(stamp)))["response"]!["allowed"]!.GetValue<bool>());
        Assert.Contains("kubecapture.io/requested-by-extra", Message(Guard(Review("UPDATE", Capture(added), Capture(stamp)))), StringComparison.Ordinal);
        Assert.False(Guard(Review("UPDATE", Capture(stamp), Capture(null)))["response"]!["allowed"]!.GetValue<bool>());
        Assert.True(Guard(Review("UPDATE", Capture(withOther), Capture(stamp)))["response"]!["allowed"]!.GetValue<bool>());
    }

    [Fact]
    public void A_requester_with_userInfo_extra_gets_it_stamped_keys_in_ordinal_order_and_the_guard_holds_it_to_what_kube_apiserver_said()
    {
        var withExtra = (JsonObject)Alice.DeepClone();
        withExtra["extra"] = new JsonObject
        {
            ["scopes"] = new JsonArray("view", "edit"),
            ["authentication.kubernetes.io/credential-id"] = new JsonArray("JTI=7f3c"),
        };

        var answer = AdmissionReviews.Stamp(Review("CREATE", Capture(new JsonObject { ["team"] = "payments" }), user: withExtra));

        var added = Patch(answer).Single(o => o!["path"]!.GetValue<string>() == "/metadata/annotations/kubecapture.io~1requested-by-extra")!;
        Assert.Equal("""{"authentication.kubernetes.io/credential-id":["JTI=7f3c"],"scopes":["view","edit"]}""", added["value"]!.GetValue<string>());
        var stamp = Stamped("alice", "alice-uid", """["team-payments","system:authenticated"]""");
        stamp[RequesterStamp.Extra] = added["value"]!.GetValue<string>();
        var read = RequesterStamp.Read(stamp.ToDictionary(a => a.Key, a => a.Value!.GetValue<string>()), out var problem);
        Assert.Equal("", problem);
        Assert.Equal(["authentication.kubernetes.io/credential-id", "scopes"], read!.Extra!.Keys);
        Assert.Equal(["view", "edit"], read.Extra["scopes"]);
        Assert.True(Guard(Review("CREATE", Capture(stamp), user: withExtra))["response"]!["allowed"]!.GetValue<bool>());
        // The same stamp from a user kube-apiserver authenticated without that extra, or with other values: refused.
        var withoutExtra = Guard(Review("CREATE", Capture(stamp)));
        Assert.False(withoutExtra["response"]!["allowed"]!.GetValue<bool>());
        Assert.Contains("extra authentication.kubernetes.io/credential-id=JTI=7f3c;scopes=view,edit), but kube-apiserver authenticated alice (uid alice-uid, groups team-payments,system:authenticated)", Message(withoutExtra), StringComparison.Ordinal);
        // Values are compared as values: one value "view,edit" is not the two values view and edit.
        var joined = (JsonObject)stamp.DeepClone();
        joined[RequesterStamp.Extra] = """{"authentication.kubernetes.io/credential-id":["JTI=7f3c"],"scopes":["view,edit"]}""";
        Assert.False(Guard(Review("CREATE", Capture(joined), user: withExtra))["response"]!["allowed"]!.GetValue<bool>());
        withExtra["extra"]!["scopes"] = new JsonArray("view");
        Assert.False(Guard(Review("CREATE", Capture(stamp), user: withExtra))["response"]!["allowed"]!.GetValue<bool>());
        // A requester without extra gets no fourth annotation.
        Assert.DoesNotContain(Patch(AdmissionReviews.Stamp(Review("CREATE", Capture(new JsonObject { ["team"] = "payments" })))), o => o!["path"]!.GetValue<string>().EndsWith("requested-by-extra", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("x")]
    [InlineData("{}")]
    [InlineData("""{"scopes":"view"}""")]
    [InlineData("""{"scopes":[1]}""")]
    public void A_stamp_whose_extra_annotation_is_not_a_JSON_object_of_string_arrays_reads_as_no_stamp_with_the_annotation_named(string extra)
    {
        var stamp = Stamped("alice", "alice-uid", """["system:authenticated"]""").ToDictionary(a => a.Key, a => a.Value!.GetValue<string>());
        stamp[RequesterStamp.Extra] = extra;

        Assert.Null(RequesterStamp.Read(stamp, out var problem));
        Assert.Equal($"its kubecapture.io/requested-by-extra annotation is not a non-empty JSON object of arrays of strings: {extra}", problem);
    }

    [Fact]
    public void A_body_that_is_not_an_AdmissionReview_v1_is_refused_with_what_is_missing()
    {
        var wrongVersion = Assert.Throws<AdmissionReviewException>(() => AdmissionReviews.Stamp(JsonNode.Parse("""{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}""")));
        var noRequest = Assert.Throws<AdmissionReviewException>(() => Guard(JsonNode.Parse("""{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}""")));

        Assert.Equal("not an AdmissionReview of admission.k8s.io/v1", wrongVersion.Message);
        Assert.Equal("the AdmissionReview has no request with a uid", noRequest.Message);
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_real_kube_apiserver_applies_the_stamp_patch_as_a_JSONPatch_and_the_annotations_read_back_as_the_requester_with_the_finalizer(bool withOtherAnnotations)
    {
        KubeApiServer.Require();
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-stamp-patch");
        using var admin = server.AdminClient();
        var others = withOtherAnnotations ? new Dictionary<string, string> { ["team"] = "payments" } : null;
        await admin.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "target", Annotations = others } }, ns);
        var answer = AdmissionReviews.Stamp(Review("CREATE", Capture(withOtherAnnotations ? new JsonObject { ["team"] = "payments" } : null)));
        var patch = Encoding.UTF8.GetString(Convert.FromBase64String(answer["response"]!["patch"]!.GetValue<string>()));

        var patched = await admin.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch(patch, V1Patch.PatchType.JsonPatch), "target", ns);

        Assert.Equal([CaptureFinalizer.Name], patched.Metadata.Finalizers);
        // No controller lets go of it here: removed so that the namespace can go.
        await admin.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("""{"metadata":{"finalizers":null}}""", V1Patch.PatchType.MergePatch), "target", ns);
        var requester = RequesterStamp.Read(patched.Metadata);
        Assert.NotNull(requester);
        Assert.Equal("alice", requester.Username);
        Assert.Equal("alice-uid", requester.Uid);
        Assert.Equal(["team-payments", "system:authenticated"], requester.Groups);
        Assert.Equal(withOtherAnnotations ? "payments" : null, patched.Metadata.Annotations.TryGetValue("team", out var team) ? team : null);
    }

    /// <summary>The finalizer operations of a JSONPatch applied to a finalizers array (add at "-", or the whole list).</summary>
    private static JsonArray ApplyFinalizerOperations(JsonArray finalizers, JsonArray patch)
    {
        foreach (var operation in patch.Where(o => o!["path"]!.GetValue<string>().StartsWith("/metadata/finalizers", StringComparison.Ordinal)))
        {
            Assert.Equal("add", operation!["op"]!.GetValue<string>());
            if (operation["path"]!.GetValue<string>() == "/metadata/finalizers/-")
            {
                finalizers.Add(operation["value"]!.DeepClone());
            }
            else
            {
                finalizers = operation["value"]!.DeepClone().AsArray();
            }
        }

        return finalizers;
    }

    private const string OperatorUser = "system:serviceaccount:kubecapture-system:kc-kubecapture";

    private static JsonObject Guard(JsonNode? review) => AdmissionReviews.Guard(review, OperatorUser, out _);

    [Fact]
    public void Nobody_but_the_operator_removes_the_finalizer_cluster_admins_included_unless_the_capture_says_why_in_the_break_glass_annotation()
    {
        var stamp = Stamped("alice", "alice-uid", """["team-payments","system:authenticated"]""");
        JsonObject WithFinalizer(JsonObject annotations, bool finalizer)
        {
            var capture = Capture(annotations);
            capture["metadata"]!["finalizers"] = finalizer ? new JsonArray(CaptureFinalizer.Name, "other.io/keep") : new JsonArray("other.io/keep");
            return capture;
        }

        var admin = new JsonObject { ["username"] = "kubernetes-admin", ["groups"] = new JsonArray("system:masters", "system:authenticated") };
        var operatorUser = new JsonObject { ["username"] = OperatorUser, ["groups"] = new JsonArray("system:serviceaccounts") };
        var byAdmin = AdmissionReviews.Guard(Review("UPDATE", WithFinalizer(stamp, false), WithFinalizer(stamp, true), admin), OperatorUser, out var adminBroke);
        var byOperator = AdmissionReviews.Guard(Review("UPDATE", WithFinalizer(stamp, false), WithFinalizer(stamp, true), operatorUser), OperatorUser, out var operatorBroke);
        var unknownOperator = AdmissionReviews.Guard(Review("UPDATE", WithFinalizer(stamp, false), WithFinalizer(stamp, true), operatorUser), null, out _);
        var glass = (JsonObject)stamp.DeepClone();
        glass[CaptureFinalizer.BreakGlassAnnotation] = "the operator is gone for good (INC-4711)";
        var broken = AdmissionReviews.Guard(Review("UPDATE", WithFinalizer(glass, false), WithFinalizer(stamp, true), admin), OperatorUser, out var brokenGlass);
        var dryRun = Review("UPDATE", WithFinalizer(glass, false), WithFinalizer(stamp, true), admin);
        dryRun["request"]!["dryRun"] = true;
        var dry = AdmissionReviews.Guard(dryRun, OperatorUser, out var dryBroke);
        var otherFinalizer = Guard(Review("UPDATE", WithFinalizer(stamp, true), WithFinalizer(stamp, true), admin));

        Assert.False(byAdmin["response"]!["allowed"]!.GetValue<bool>());
        Assert.Contains($"metadata.finalizers: only the KubeCapture operator removes {CaptureFinalizer.Name}", Message(byAdmin), StringComparison.Ordinal);
        Assert.Contains($"first set the annotation {CaptureFinalizer.BreakGlassAnnotation}", Message(byAdmin), StringComparison.Ordinal);
        Assert.Null(adminBroke);
        Assert.True(byOperator["response"]!["allowed"]!.GetValue<bool>());
        Assert.Null(operatorBroke);
        Assert.False(unknownOperator["response"]!["allowed"]!.GetValue<bool>()); // who the operator is unknown: fail closed
        Assert.True(broken["response"]!["allowed"]!.GetValue<bool>());
        Assert.Equal(("kubernetes-admin", "the operator is gone for good (INC-4711)", "partner-timeouts", "payments"), (brokenGlass!.Actor, brokenGlass.Why, brokenGlass.Name, brokenGlass.Namespace));
        Assert.True(dry["response"]!["allowed"]!.GetValue<bool>());
        Assert.Null(dryBroke); // a dry run breaks nothing: nothing to audit
        Assert.True(otherFinalizer["response"]!["allowed"]!.GetValue<bool>());
    }

    private static JsonObject Stamped(string user, string uid, string groups) => new()
    {
        [RequesterStamp.Username] = user,
        [RequesterStamp.Uid] = uid,
        [RequesterStamp.Groups] = groups,
    };

    private static JsonObject Capture(JsonObject? annotations)
    {
        var metadata = new JsonObject { ["name"] = "partner-timeouts", ["namespace"] = "payments" };
        if (annotations is not null)
        {
            metadata["annotations"] = annotations.DeepClone();
        }

        return new JsonObject { ["apiVersion"] = "kubecapture.io/v1alpha1", ["kind"] = "PacketCapture", ["metadata"] = metadata, ["spec"] = new JsonObject { ["reason"] = "r" } };
    }

    /// <summary>An AdmissionReview as kube-apiserver sends it, from alice.</summary>
    private static JsonNode Review(string operation, JsonObject obj, JsonObject? oldObject = null, JsonObject? user = null) => JsonNode.Parse(new JsonObject
    {
        ["apiVersion"] = "admission.k8s.io/v1",
        ["kind"] = "AdmissionReview",
        ["request"] = new JsonObject
        {
            ["uid"] = "request-1",
            ["kind"] = new JsonObject { ["group"] = "kubecapture.io", ["version"] = "v1alpha1", ["kind"] = "PacketCapture" },
            ["resource"] = new JsonObject { ["group"] = "kubecapture.io", ["version"] = "v1alpha1", ["resource"] = "packetcaptures" },
            ["namespace"] = "payments",
            ["operation"] = operation,
            ["userInfo"] = (user ?? Alice).DeepClone(),
            ["object"] = obj,
            ["oldObject"] = oldObject,
        },
    }.ToJsonString())!;

    private static JsonArray Patch(JsonObject answer) =>
        JsonNode.Parse(Convert.FromBase64String(answer["response"]!["patch"]!.GetValue<string>()))!.AsArray();

    private static string Message(JsonObject answer) => answer["response"]!["status"]!["message"]!.GetValue<string>();
}
