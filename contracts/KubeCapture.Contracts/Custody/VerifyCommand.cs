using System.Security.Cryptography;
using KubeCapture.Contracts.Arguments;

namespace KubeCapture.Contracts.Custody;

/// <summary>
/// <c>verify PCAP MANIFEST [--public-key FILE]</c>: exit 0 when both are untouched and the manifest
/// is signed by the key; 3 when anything does not verify; 5 when both are untouched but the manifest
/// records the pcap as contested (it did not come from the target's capture agent: never clean
/// evidence); 4 when the pcap matches the manifest but no key was given, so who issued it is
/// unproven; 2 for bad input (a missing file, a key that is not an ECDSA P-256 public key in PEM).
/// </summary>
public static class VerifyCommand
{
    public const int NotVerified = 3;
    public const int IssuerUnproven = 4;
    public const int Contested = 5;

    /// <param name="program">The name the messages start with, and the usage names (kubectl-capture shares this command).</param>
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, string program = "kubecapture-agent")
    {
        string? keyFile = null;
        var files = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            if (args[i] == "--public-key")
            {
                keyFile = i + 1 < args.Count ? args[++i] : throw new UsageException("--public-key needs a file (the operator's public key, PEM)");
            }
            else if (args[i].StartsWith("--public-key=", StringComparison.Ordinal))
            {
                keyFile = args[i]["--public-key=".Length..];
            }
            else
            {
                files.Add(args[i]);
            }
        }

        if (files.Count != 2)
        {
            throw new UsageException($"verify takes a pcap and its manifest: {program} verify PCAP MANIFEST [--public-key FILE]");
        }

        foreach (var file in files.Append(keyFile).OfType<string>())
        {
            if (!File.Exists(file))
            {
                throw new UsageException($"no such file: '{file}'");
            }
        }

        using var key = keyFile is null ? null : ReadPublicKey(keyFile);
        var verdict = CustodyVerifier.Verify(files[0], File.ReadAllBytes(files[1]), key);
        foreach (var fact in verdict.Facts)
        {
            stdout.WriteLine(fact);
        }

        foreach (var problem in verdict.Problems)
        {
            stderr.WriteLine($"{program}: verify: {problem}");
        }

        if (verdict.Problems.Count > 0)
        {
            stderr.WriteLine($"{program}: verify: NOT VERIFIED");
            return NotVerified;
        }

        if (verdict.Contested is { } contested)
        {
            stderr.WriteLine($"{program}: verify: CONTESTED: the manifest records that this pcap did not come from the target's capture agent: {contested}");
            stderr.WriteLine($"{program}: verify: the pcap and manifest are untouched{(verdict.SignatureChecked ? " and signed by this key" : "")}, but this pcap is not clean evidence");
            return Contested;
        }

        if (!verdict.SignatureChecked)
        {
            stderr.WriteLine($"{program}: verify: the pcap matches the manifest, but the signature was not checked: give --public-key (the operator's ConfigMap kubecapture-manifest-signing, key public-key.pem)");
            return IssuerUnproven;
        }

        stdout.WriteLine("VERIFIED: pcap and manifest are untouched and the manifest was issued by the holder of this key");
        return 0;
    }

    private static ECDsa ReadPublicKey(string path)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(File.ReadAllText(path));
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            key.Dispose();
            throw new UsageException($"--public-key '{path}' is not an ECDSA public key in PEM ({e.Message})");
        }

        if (key.KeySize != 256)
        {
            key.Dispose();
            throw new UsageException($"--public-key '{path}' is a {key.KeySize}-bit ECDSA key; the operator signs with P-256");
        }

        return key;
    }
}
