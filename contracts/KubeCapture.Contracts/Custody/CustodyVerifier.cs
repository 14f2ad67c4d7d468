using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;

namespace KubeCapture.Contracts.Custody;

/// <summary>
/// What <see cref="CustodyVerifier.Verify"/> found: each problem in words, and what the manifest says.
/// <paramref name="Contested"/>: the manifest records that the pcap did not come from the target's
/// capture agent (why), or null.
/// </summary>
public sealed record CustodyVerdict(IReadOnlyList<string> Problems, IReadOnlyList<string> Facts, bool SignatureChecked, string? Contested = null)
{
    /// <summary>Pcap and manifest are untouched and the manifest was signed by the given key.</summary>
    public bool Verified => Problems.Count == 0 && SignatureChecked;
}

/// <summary>
/// Proves a stored pcap and its signed manifest untouched and issued by the operator whose public
/// key is given: the envelope's signature over the manifest bytes, then the pcap's size and SHA-256
/// against what the signed manifest records.
/// </summary>
public static class CustodyVerifier
{
    public static CustodyVerdict Verify(string pcapPath, ReadOnlySpan<byte> manifestJson, ECDsa? publicKey)
    {
        var problems = new List<string>();
        var facts = new List<string>();
        SignedManifest envelope;
        byte[] payload;
        try
        {
            envelope = SignedManifest.FromJson(manifestJson);
            payload = Convert.FromBase64String(envelope.Payload);
            if (Convert.ToBase64String(payload) != envelope.Payload)
            {
                throw new FormatException("its payload is not the base64 the operator wrote");
            }
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            // InvalidOperationException: a string of the envelope is not valid UTF-8 (a flipped byte).
            problems.Add($"the manifest is not an intact signed KubeCapture manifest ({e.Message}): it was altered or is not one");
            return new CustodyVerdict(problems, facts, false);
        }

        if (envelope.PayloadType != SignedManifest.ManifestPayloadType)
        {
            problems.Add($"the manifest's payloadType is '{envelope.PayloadType}', not '{SignedManifest.ManifestPayloadType}'");
        }

        var signatureChecked = publicKey is not null;
        if (publicKey is not null)
        {
            CheckSignature(envelope, payload, publicKey, problems, facts);
        }

        JsonElement manifest;
        try
        {
            using var document = JsonDocument.Parse(payload);
            manifest = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            problems.Add($"the signed payload is not JSON ({e.Message})");
            return new CustodyVerdict(problems, facts, signatureChecked);
        }

        CheckPcap(pcapPath, manifest, problems, facts);
        facts.AddRange(Describe(manifest));
        var contested = manifest.TryGetProperty("contested", out var contest) && contest.ValueKind == JsonValueKind.Object
            ? contest.TryGetProperty("message", out var why) && why.ValueKind == JsonValueKind.String ? why.GetString() : contest.GetRawText()
            : null;
        return new CustodyVerdict(problems, facts, signatureChecked, contested);
    }

    private static void CheckSignature(SignedManifest envelope, byte[] payload, ECDsa publicKey, List<string> problems, List<string> facts)
    {
        var keyId = SignedManifest.KeyIdOf(publicKey);
        var signed = SignedManifest.PreAuthenticationEncoding(envelope.PayloadType, payload);
        foreach (var signature in envelope.Signatures.Where(s => s.KeyId == keyId))
        {
            byte[] bytes;
            try
            {
                bytes = Convert.FromBase64String(signature.Sig);
            }
            catch (FormatException)
            {
                continue;
            }

            // Base64 that decodes to the same bytes but is not what was written was altered too.
            if (Convert.ToBase64String(bytes) == signature.Sig && publicKey.VerifyData(signed, bytes, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence))
            {
                facts.Add($"signature: valid, ECDSA P-256 SHA-256 by key {keyId}");
                return;
            }
        }

        var named = string.Join(", ", envelope.Signatures.Select(s => s.KeyId));
        problems.Add(envelope.Signatures.Any(s => s.KeyId == keyId)
            ? $"signature: INVALID for key {keyId}: the manifest was altered after it was signed"
            : $"signature: not made by the given key {keyId}; the manifest names {(named.Length > 0 ? named : "no key")}: it was not issued by this operator, or was altered");
    }

    private static void CheckPcap(string pcapPath, JsonElement manifest, List<string> problems, List<string> facts)
    {
        var sha256 = manifest.TryGetProperty("sha256", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
        var size = manifest.TryGetProperty("size", out var n) && n.TryGetInt64(out var value) ? value : (long?)null;
        if (sha256 is null || size is null)
        {
            problems.Add("the signed manifest records no sha256 and size of a pcap");
            return;
        }

        long actualSize;
        string actualSha256;
        using (var pcap = File.OpenRead(pcapPath))
        {
            actualSize = pcap.Length;
            actualSha256 = Convert.ToHexStringLower(SHA256.HashData(pcap));
        }

        if (actualSize != size)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"pcap: {actualSize} bytes, but the manifest records {size}: the pcap is not the one captured"));
        }

        if (!string.Equals(actualSha256, sha256, StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"pcap: SHA-256 {actualSha256}, but the manifest records {sha256}: the pcap was altered");
        }
        else
        {
            facts.Add(string.Create(CultureInfo.InvariantCulture, $"pcap: {actualSize} bytes, SHA-256 {actualSha256} as recorded"));
        }
    }

    private static IEnumerable<string> Describe(JsonElement manifest)
    {
        JsonElement? At(params string[] path)
        {
            var element = manifest;
            foreach (var name in path)
            {
                if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out element))
                {
                    return null;
                }
            }

            return element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined ? null : element;
        }

        string? Text(params string[] path) => At(path) is not { } element ? null : element.ValueKind == JsonValueKind.String ? element.GetString() : element.GetRawText();

        // The requester as admission stamped it: "alice (uid U; groups a, b; extra {...})".
        string Requester()
        {
            if (Text("requester", "username") is not { } username)
            {
                return "not recorded";
            }

            var groups = At("requester", "groups") is { ValueKind: JsonValueKind.Array } array
                ? string.Join(", ", array.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString() : e.GetRawText()))
                : "";
            return $"{username} (uid {Text("requester", "uid") ?? "none"}; groups {(groups.Length == 0 ? "none" : groups)}{(Text("requester", "extra") is { } extra ? $"; extra {extra}" : "")})";
        }

        yield return $"capture: {Text("namespace")}/{Text("captureName")} (uid {Text("captureUid")}), pod {Text("pod")}";
        yield return $"requested by: {Requester()}";
        yield return $"reason: {Text("reason") ?? "not recorded"}";
        yield return $"stored: {Text("uri")}{(Text("versionId") is { } version ? $" (version {version})" : "")} at {Text("storedAt")}";
    }
}
