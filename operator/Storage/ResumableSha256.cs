using System.Runtime.InteropServices;

namespace KubeCapture.Operator.Storage;

/// <summary>
/// SHA-256 whose running state can be saved and restored, so a new operator process continues the
/// hash of an upload another process started (the checkpoint stores <see cref="ExportState"/>).
/// OpenSSL's <c>SHA256_CTX</c> is a plain struct (eight state words, bit count, one pending block),
/// so its bytes are the whole state; the hashing itself is libcrypto's (SHA-NI where the CPU has it).
/// </summary>
public sealed partial class ResumableSha256
{
    private const string LibCrypto = "libcrypto.so.3";
    private const int StateLength = 112;
    private readonly byte[] _context = new byte[StateLength];

    public ResumableSha256()
    {
        if (SHA256_Init(_context) != 1)
        {
            throw new InvalidOperationException("libcrypto SHA256_Init failed");
        }
    }

    private ResumableSha256(byte[] state) => state.CopyTo(_context, 0);

    /// <summary>Restores a state saved by <see cref="ExportState"/>.</summary>
    public static ResumableSha256 Import(string state)
    {
        var bytes = Convert.FromBase64String(state);
        return bytes.Length == StateLength
            ? new ResumableSha256(bytes)
            : throw new FormatException($"a SHA-256 state has {StateLength} bytes, not {bytes.Length}");
    }

    public string ExportState() => Convert.ToBase64String(_context);

    public void Append(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        if (SHA256_Update(_context, data, (nuint)data.Length) != 1)
        {
            throw new InvalidOperationException("libcrypto SHA256_Update failed");
        }
    }

    /// <summary>The hash of everything appended, lower-case hex. The state is left as it was.</summary>
    public string HashHex()
    {
        var copy = (byte[])_context.Clone();
        Span<byte> digest = stackalloc byte[32];
        if (SHA256_Final(digest, copy) != 1)
        {
            throw new InvalidOperationException("libcrypto SHA256_Final failed");
        }

        return Convert.ToHexStringLower(digest);
    }

    [LibraryImport(LibCrypto)]
    private static partial int SHA256_Init(Span<byte> context);

    [LibraryImport(LibCrypto)]
    private static partial int SHA256_Update(Span<byte> context, ReadOnlySpan<byte> data, nuint length);

    [LibraryImport(LibCrypto)]
    private static partial int SHA256_Final(Span<byte> digest, Span<byte> context);
}
