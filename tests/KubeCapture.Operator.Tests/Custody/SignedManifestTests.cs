using System.Security.Cryptography;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Custody;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.Agent;

namespace KubeCapture.Operator.Tests.Custody;

/// <summary>
/// A real capture streamed to the real ingest, whose manifest the operator signs with the key in
/// Custody:SigningKeyFile; then the real <c>kubecapture-agent verify</c> on the stored pair, and on
/// copies with one byte changed.
/// </summary>
public sealed class SignedManifestTests : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("kcI-custody-").FullName;
    private string _pcap = "";
    private string _manifest = "";
    private string _publicKey = "";

    public async Task InitializeAsync()
    {
        var key = Path.Combine(_root, "keys", "manifest-signing.pem");
        await using var host = await OperatorHost.StartInProcessAsync(new Dictionary<string, string> { ["Storage:LocalPath"] = _root, ["Custody:SigningKeyFile"] = key });
        await using var traffic = new LoopbackTraffic();
        var target = new CaptureIdentity("uid-custody-1", "default", "custody", "web-0");
        await using var agent = await AgentRun.StartAsync(host, target, traffic.Filter, null, "-c", "10");
        await traffic.SendAsync(64 << 10, pause: TimeSpan.FromMilliseconds(5));
        Assert.Equal(0, await agent.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        _pcap = Path.Combine(_root, "captures", "default", "custody", "web-0.pcap");
        _manifest = Path.Combine(_root, "captures", "default", "custody", "web-0.manifest.json");
        _publicKey = key + ".pub";
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_root, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task The_stored_pair_verifies_with_the_operators_public_key()
    {
        var result = await AgentProcess.RunAsync(null, ["verify", _pcap, _manifest, "--public-key", _publicKey]);

        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        Assert.Contains("VERIFIED", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"SHA-256 {Evidence.Sha256Of(_pcap)} as recorded", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("capture: default/custody (uid uid-custody-1), pod web-0", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void The_stored_manifest_is_a_DSSE_envelope_whose_payload_records_both_hashes()
    {
        var bytes = File.ReadAllBytes(_manifest);
        var envelope = SignedManifest.FromJson(bytes);
        Assert.Equal(SignedManifest.ManifestPayloadType, envelope.PayloadType);
        var manifest = StorageJsonContext.ReadManifest(bytes);
        Assert.Equal(Evidence.Sha256Of(_pcap), manifest.Sha256);
        Assert.Equal(manifest.Sha256, manifest.AgentSha256);
        Assert.Equal(new FileInfo(_pcap).Length, manifest.Size);
        Assert.Equal("none", manifest.Retention!.Lock);
    }

    [Fact]
    public async Task One_flipped_byte_in_the_pcap_fails_verification_naming_the_pcap()
    {
        var tampered = Flip(_pcap, new FileInfo(_pcap).Length - 1);

        var result = await AgentProcess.RunAsync(null, ["verify", tampered, _manifest, "--public-key", _publicKey]);

        Assert.Equal(VerifyExit.NotVerified, result.ExitCode);
        Assert.Contains("the pcap was altered", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("NOT VERIFIED", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task One_flipped_byte_in_the_signed_payload_fails_verification_naming_the_signature()
    {
        // Change the recorded reason-free part of the payload that matters most: one byte of the decoded manifest.
        var envelope = SignedManifest.FromJson(File.ReadAllBytes(_manifest));
        var payload = Convert.FromBase64String(envelope.Payload);
        var at = System.Text.Encoding.UTF8.GetString(payload).IndexOf("\"pod\": \"web-0\"", StringComparison.Ordinal) + "\"pod\": \"web-".Length;
        payload[at] = (byte)'1';
        var tampered = Path.Combine(_root, "tampered-payload.manifest.json");
        File.WriteAllBytes(tampered, (envelope with { Payload = Convert.ToBase64String(payload) }).ToJson());

        var result = await AgentProcess.RunAsync(null, ["verify", _pcap, tampered, "--public-key", _publicKey]);

        Assert.Equal(VerifyExit.NotVerified, result.ExitCode);
        Assert.Contains("signature: INVALID", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("the manifest was altered after it was signed", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Any_single_flipped_byte_of_the_manifest_file_fails_verification()
    {
        var length = new FileInfo(_manifest).Length;
        foreach (var offset in new[] { 0, length / 7, length / 3, length / 2, 2 * length / 3, length - 3 })
        {
            var tampered = Flip(_manifest, offset);
            var result = await AgentProcess.RunAsync(null, ["verify", _pcap, tampered, "--public-key", _publicKey]);
            Assert.True(result.ExitCode == VerifyExit.NotVerified, $"byte {offset} of {length}: exit {result.ExitCode}\n{result.Stdout}{result.Stderr}");
        }
    }

    [Fact]
    public async Task A_byte_of_the_manifest_turned_into_invalid_UTF8_fails_verification_with_exit_3_not_a_crash()
    {
        var bytes = File.ReadAllBytes(_manifest);
        var inPayloadType = System.Text.Encoding.UTF8.GetString(bytes).IndexOf("application/", StringComparison.Ordinal);
        Assert.True(inPayloadType > 0);
        bytes[inPayloadType] = 0xC3; // a UTF-8 lead byte without its continuation, inside a JSON string
        var tampered = Path.Combine(_root, "invalid-utf8.manifest.json");
        File.WriteAllBytes(tampered, bytes);

        var result = await AgentProcess.RunAsync(null, ["verify", _pcap, tampered, "--public-key", _publicKey]);

        Assert.True(result.ExitCode == VerifyExit.NotVerified, $"exit {result.ExitCode}\n{result.Stdout}{result.Stderr}");
        Assert.Contains("the manifest is not an intact signed KubeCapture manifest", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Another_key_fails_verification_as_not_issued_by_this_operator()
    {
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var wrongKey = Path.Combine(_root, "other.pub");
        File.WriteAllText(wrongKey, other.ExportSubjectPublicKeyInfoPem());

        var result = await AgentProcess.RunAsync(null, ["verify", _pcap, _manifest, "--public-key", wrongKey]);

        Assert.Equal(VerifyExit.NotVerified, result.ExitCode);
        Assert.Contains($"signature: not made by the given key {SignedManifest.KeyIdOf(other)}", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_public_key_the_pcap_is_checked_but_the_issuer_is_reported_unproven()
    {
        var result = await AgentProcess.RunAsync(null, ["verify", _pcap, _manifest]);

        Assert.Equal(VerifyExit.IssuerUnproven, result.ExitCode);
        Assert.Contains("the signature was not checked: give --public-key", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_file_that_is_not_a_public_key_is_bad_input()
    {
        var notAKey = Path.Combine(_root, "not-a-key.pem");
        File.WriteAllText(notAKey, "hello");

        var result = await AgentProcess.RunAsync(null, ["verify", _pcap, _manifest, "--public-key", notAKey]);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("is not an ECDSA public key in PEM", result.Stderr, StringComparison.Ordinal);
    }

    private string Flip(string path, long offset)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[offset] ^= 0x01;
        var copy = Path.Combine(_root, $"flipped-{offset}-{Path.GetFileName(path)}");
        File.WriteAllBytes(copy, bytes);
        return copy;
    }

    private static class VerifyExit
    {
        public const int NotVerified = 3;
        public const int IssuerUnproven = 4;
    }
}
