using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Finalizer;
using KubeCapture.Operator.Provenance;

namespace KubeCapture.Operator.Admission;

/// <summary>
/// The two admission webhooks on PacketCaptures, as pure functions of an AdmissionReview v1 (JSON in,
/// JSON out). <see cref="Stamp"/> (mutating, CREATE) writes the requester kube-apiserver
/// authenticated into the <see cref="RequesterStamp"/> annotations and refuses a capture that brings
/// its own; <see cref="Guard"/> (validating, CREATE and UPDATE, after every mutation) refuses a
/// created capture whose stamp is missing or is not its requester, any update that sets, changes
/// or removes the stamp, whoever asks (the operator's ServiceAccount included), and any update that
/// removes the capture finalizer by anyone but the operator, cluster admins included, unless the
/// capture carries the break-glass annotation (then the removal is reported, to be audited).
/// </summary>
public static class AdmissionReviews
{
    public const string ApiVersion = "admission.k8s.io/v1";
    public const string StampWebhook = "stamp.packetcaptures.kubecapture.io";
    public const string GuardWebhook = "stamp-guard.packetcaptures.kubecapture.io";

    /// <summary>The mutating webhook's answer: a JSONPatch adding the stamp and the capture's finalizer, or a refusal.</summary>
    public static JsonObject Stamp(JsonNode? review)
    {
        var request = Request(review);
        if (Operation(request) != "CREATE")
        {
            return Allow(request);
        }

        var annotations = Annotations(request["object"]);
        var brought = annotations.Keys.Where(RequesterStamp.IsStampKey).Order(StringComparer.Ordinal).ToList();
        if (brought.Count > 0)
        {
            return Deny(request, $"metadata.annotations {string.Join(", ", brought)}: the requester is stamped by admission from the user kube-apiserver authenticated; a new PacketCapture may not bring its own (remove them)");
        }

        if (User(request) is not { } user)
        {
            return Deny(request, "kube-apiserver named no user in the admission request: the requester cannot be stamped");
        }

        var stamp = RequesterStamp.Annotations(user);
        var operations = new JsonArray();
        if (request["object"]?["metadata"]?["annotations"] is not JsonObject)
        {
            operations.Add(new JsonObject { ["op"] = "add", ["path"] = "/metadata/annotations", ["value"] = new JsonObject(stamp.Select(a => KeyValuePair.Create(a.Key, (JsonNode?)a.Value))) });
        }
        else
        {
            foreach (var (key, value) in stamp)
            {
                operations.Add(new JsonObject { ["op"] = "add", ["path"] = "/metadata/annotations/" + PointerSegment(key), ["value"] = value });
            }
        }

        // The finalizer too, from the first moment the capture exists: a capture deleted before the operator
        // saw it is still stopped and stored, and the operator saves its own finalizer patch (one write less per capture).
        if (request["object"]?["metadata"]?["finalizers"] is not JsonArray finalizers)
        {
            operations.Add(new JsonObject { ["op"] = "add", ["path"] = "/metadata/finalizers", ["value"] = new JsonArray(CaptureFinalizer.Name) });
        }
        else if (!finalizers.Any(f => f?.GetValueKind() == JsonValueKind.String && f.GetValue<string>() == CaptureFinalizer.Name))
        {
            operations.Add(new JsonObject { ["op"] = "add", ["path"] = "/metadata/finalizers/-", ["value"] = CaptureFinalizer.Name });
        }

        var response = Allow(request);
        response["response"]!["patchType"] = "JSONPatch";
        response["response"]!["patch"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(operations.ToJsonString()));
        return response;
    }

    /// <summary>
    /// The validating webhook's answer: allowed, or refused with what is wrong with the stamp or the
    /// finalizer. <paramref name="operatorUsername"/>: who the operator is (null: unknown, so nobody may
    /// remove the finalizer). <paramref name="brokenGlass"/>: set when a removal of the finalizer was
    /// allowed by the break-glass annotation (not for a dry run): the caller audits it.
    /// </summary>
    public static JsonObject Guard(JsonNode? review, string? operatorUsername, out BrokenGlass? brokenGlass)
    {
        brokenGlass = null;
        var request = Request(review);
        var operation = Operation(request);
        if (operation == "CREATE")
        {
            var stamped = RequesterStamp.Read(Annotations(request["object"]), out var problem);
            if (stamped is null)
            {
                return Deny(request, $"the PacketCapture is not stamped with its requester ({problem}): the mutating webhook {StampWebhook} did not run; is its MutatingWebhookConfiguration installed?");
            }

            var user = User(request);
            var unknown = Annotations(request["object"]).Keys.Where(k => RequesterStamp.IsStampKey(k) && !RequesterStamp.IsKnownKey(k)).ToList();
            if (user is null || !Same(stamped, user) || unknown.Count > 0)
            {
                return Deny(request, $"metadata.annotations {RequesterStamp.Prefix}*: the stamp says {Describe(stamped)}{(unknown.Count > 0 ? $" with {string.Join(", ", unknown)}" : "")}, but kube-apiserver authenticated {(user is null ? "no user" : Describe(user))}: it was changed after admission stamped it");
            }

            return Allow(request);
        }

        if (operation == "UPDATE")
        {
            var before = Annotations(request["oldObject"]);
            var after = Annotations(request["object"]);
            var changed = before.Keys.Concat(after.Keys).Where(RequesterStamp.IsStampKey).Distinct()
                .Where(k => before.GetValueOrDefault(k) != after.GetValueOrDefault(k)).Order(StringComparer.Ordinal).ToList();
            if (changed.Count > 0)
            {
                return Deny(request, $"metadata.annotations {string.Join(", ", changed)}: the requester is stamped by admission when a PacketCapture is created and cannot be set, changed or removed afterwards (by anyone)");
            }

            if (Finalizers(request["oldObject"]).Contains(CaptureFinalizer.Name) && !Finalizers(request["object"]).Contains(CaptureFinalizer.Name))
            {
                var user = User(request)?.Username;
                if (user is not null && user == operatorUsername)
                {
                    return Allow(request);
                }

                if (after.GetValueOrDefault(CaptureFinalizer.BreakGlassAnnotation) is not { } why || string.IsNullOrWhiteSpace(why))
                {
                    return Deny(request, $"metadata.finalizers: only the KubeCapture operator removes {CaptureFinalizer.Name} (it stops the capture, stores what was captured with its lock " +
                        $"and requester, and records the deletion in the audit log); {user ?? "no user"} may not. To remove it anyway, first set the annotation " +
                        $"{CaptureFinalizer.BreakGlassAnnotation}: \"<why>\" (the removal, who and why, is recorded in the audit log)");
                }

                if (request["dryRun"]?.GetValueKind() != JsonValueKind.True)
                {
                    var metadata = request["object"]?["metadata"];
                    brokenGlass = new BrokenGlass(Text(metadata?["namespace"]) ?? Text(request["namespace"]) ?? "", Text(metadata?["name"]) ?? Text(request["name"]) ?? "",
                        Text(metadata?["uid"]) ?? "", user ?? "", why, request["object"]!.DeepClone());
                }
            }
        }

        return Allow(request);
    }

    private static HashSet<string> Finalizers(JsonNode? obj) =>
        obj?["metadata"]?["finalizers"] is JsonArray finalizers ? [.. Strings(finalizers)] : [];

    private static string? Text(JsonNode? node) => node?.GetValueKind() == JsonValueKind.String ? node.GetValue<string>() : null;

    /// <summary>The request of a review; throws <see cref="AdmissionReviewException"/> naming what is missing.</summary>
    private static JsonObject Request(JsonNode? review)
    {
        if (review is not JsonObject root || root["apiVersion"]?.GetValueKind() != JsonValueKind.String || root["apiVersion"]!.GetValue<string>() != ApiVersion)
        {
            throw new AdmissionReviewException($"not an AdmissionReview of {ApiVersion}");
        }

        if (root["request"] is not JsonObject request || request["uid"]?.GetValueKind() != JsonValueKind.String)
        {
            throw new AdmissionReviewException("the AdmissionReview has no request with a uid");
        }

        return request;
    }

    private static string? Operation(JsonObject request) => request["operation"]?.GetValueKind() == JsonValueKind.String ? request["operation"]!.GetValue<string>() : null;

    private static Dictionary<string, string> Annotations(JsonNode? obj)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (obj?["metadata"]?["annotations"] is JsonObject annotations)
        {
            foreach (var (key, value) in annotations)
            {
                result[key] = value?.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : value?.ToJsonString() ?? "";
            }
        }

        return result;
    }

    private static CaptureRequester? User(JsonObject request)
    {
        var info = request["userInfo"] as JsonObject;
        string? Text(string key) => info?[key]?.GetValueKind() == JsonValueKind.String ? info[key]!.GetValue<string>() : null;
        if (Text("username") is not { Length: > 0 } name)
        {
            return null;
        }

        var groups = info?["groups"] is JsonArray array ? Strings(array) : [];
        var extra = info?["extra"] is JsonObject given
            ? RequesterStamp.NormalizeExtra(given.Select(e => KeyValuePair.Create(e.Key, (IReadOnlyList<string>)(e.Value is JsonArray values ? Strings(values) : []))))
            : null;
        return new CaptureRequester { Username = name, Uid = Text("uid") is { Length: > 0 } uid ? uid : null, Groups = groups, Extra = extra };
    }

    private static List<string> Strings(JsonArray array) => [.. array.Where(g => g?.GetValueKind() == JsonValueKind.String).Select(g => g!.GetValue<string>())];

    private static bool Same(CaptureRequester a, CaptureRequester b) =>
        a.Username == b.Username && a.Uid == b.Uid && a.Groups.SequenceEqual(b.Groups) && SameExtra(a.Extra, b.Extra);

    /// <summary>The same keys, each with the same values in the same order (both normalized: keys in ordinal order).</summary>
    private static bool SameExtra(IReadOnlyDictionary<string, IReadOnlyList<string>>? a, IReadOnlyDictionary<string, IReadOnlyList<string>>? b) =>
        (a?.Count ?? 0) == (b?.Count ?? 0)
        && (a ?? new Dictionary<string, IReadOnlyList<string>>()).All(e => b is not null && b.TryGetValue(e.Key, out var values) && values.SequenceEqual(e.Value));

    private static string ExtraText(CaptureRequester r) =>
        string.Join(";", (r.Extra ?? new Dictionary<string, IReadOnlyList<string>>()).Select(e => $"{e.Key}={string.Join(",", e.Value)}"));

    private static string Describe(CaptureRequester r) =>
        $"{r.Username} (uid {r.Uid ?? "none"}, groups {string.Join(",", r.Groups)}{(r.Extra is null ? "" : $", extra {ExtraText(r)}")})";

    /// <summary>A JSON Pointer segment (RFC 6901): ~ as ~0, / as ~1.</summary>
    private static string PointerSegment(string key) => key.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    private static JsonObject Allow(JsonObject request) => Review(new JsonObject { ["uid"] = request["uid"]!.GetValue<string>(), ["allowed"] = true });

    private static JsonObject Deny(JsonObject request, string message) => Review(new JsonObject
    {
        ["uid"] = request["uid"]!.GetValue<string>(),
        ["allowed"] = false,
        ["status"] = new JsonObject { ["code"] = 403, ["reason"] = "Forbidden", ["message"] = message },
    });

    private static JsonObject Review(JsonObject response) => new() { ["apiVersion"] = ApiVersion, ["kind"] = "AdmissionReview", ["response"] = response };
}

/// <summary>A request body that is not an AdmissionReview v1 the webhooks can answer.</summary>
public sealed class AdmissionReviewException(string message) : Exception(message);
