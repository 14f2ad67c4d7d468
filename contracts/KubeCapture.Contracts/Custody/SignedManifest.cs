using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace KubeCapture.Contracts.Custody;

/// <summary>
/// The signed chain-of-custody manifest as stored beside a pcap: a DSSE envelope
/// (https://github.com/secure-systems-lab/dsse, as in-toto and Sigstore use it). <see cref="Payload"/>
/// is the manifest JSON, base64; each signature is ECDSA P-256 with SHA-256 (DER) over the DSSE
/// pre-authentication encoding of payload type and payload, so no byte of either can change unseen.
/// </summary>
public sealed record SignedManifest
{
    public const string ManifestPayloadType = "application/vnd.kubecapture.manifest.v1+json";

    [JsonPropertyName("payloadType")]
    public required string PayloadType { get; init; }

    /// <summary>The manifest JSON, standard base64.</summary>
    [JsonPropertyName("payload")]
    public required string Payload { get; init; }

    [JsonPropertyName("signatures")]
    public required IReadOnlyList<ManifestSignature> Signatures { get; init; }

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, CustodyJsonContext.Default.SignedManifest);

    /// <summary>The envelope in <paramref name="json"/>; a <see cref="JsonException"/> when it is not one.</summary>
    public static SignedManifest FromJson(ReadOnlySpan<byte> json)
    {
        var envelope = JsonSerializer.Deserialize(json, CustodyJsonContext.Default.SignedManifest) ?? throw new JsonException("the manifest is empty");
        return envelope.PayloadType is null || envelope.Payload is null || envelope.Signatures is null
            ? throw new JsonException("not a signed manifest: payloadType, payload and signatures are required")
            : envelope;
    }

    /// <summary>Whether <paramref name="json"/> is an envelope (it has a "payload" member) rather than a plain, unsigned manifest.</summary>
    public static bool IsEnvelope(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return false;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("payload"u8))
            {
                return true;
            }

            reader.Skip();
        }

        return false;
    }

    /// <summary>Signs <paramref name="payload"/> with <paramref name="key"/> (ECDSA P-256).</summary>
    public static SignedManifest Sign(byte[] payload, ECDsa key) => new()
    {
        PayloadType = ManifestPayloadType,
        Payload = Convert.ToBase64String(payload),
        Signatures =
        [
            new ManifestSignature
            {
                KeyId = KeyIdOf(key),
                Sig = Convert.ToBase64String(key.SignData(PreAuthenticationEncoding(ManifestPayloadType, payload), HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence)),
            },
        ],
    };

    /// <summary>"sha256:" and the hex SHA-256 of the key's SubjectPublicKeyInfo (DER): names a key without trusting anything.</summary>
    public static string KeyIdOf(ECDsa key) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(key.ExportSubjectPublicKeyInfo()));

    /// <summary>DSSE's PAE: "DSSEv1" SP len(type) SP type SP len(payload) SP payload.</summary>
    public static byte[] PreAuthenticationEncoding(string payloadType, byte[] payload)
    {
        var type = Encoding.UTF8.GetBytes(payloadType);
        var head = Encoding.ASCII.GetBytes(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"DSSEv1 {type.Length} "));
        var middle = Encoding.ASCII.GetBytes(string.Create(System.Globalization.CultureInfo.InvariantCulture, $" {payload.Length} "));
        return [.. head, .. type, .. middle, .. payload];
    }
}

public sealed record ManifestSignature
{
    /// <summary>Which key signed (<see cref="SignedManifest.KeyIdOf"/>).</summary>
    [JsonPropertyName("keyid")]
    public required string KeyId { get; init; }

    /// <summary>ECDSA P-256 SHA-256 signature, DER, base64.</summary>
    [JsonPropertyName("sig")]
    public required string Sig { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(SignedManifest))]
public sealed partial class CustodyJsonContext : JsonSerializerContext
{
}
