using System.Buffers.Binary;
using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KubeCapture.Agent.Summary;

/// <summary>
/// A TCP 4-tuple with its two endpoints in a fixed order (A is the smaller), so both directions of a
/// connection find the same entry. IPv4 addresses are held as IPv4-mapped IPv6.
/// Equality and hash are written out (the record default goes through EqualityComparer per field):
/// the summary looks a key up for every TCP segment.
/// </summary>
[StructLayout(LayoutKind.Auto)]
internal readonly record struct FlowKey(ulong AHigh, ulong ALow, ushort APort, ulong BHigh, ulong BLow, ushort BPort)
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static FlowKey Create(ReadOnlySpan<byte> source, ushort sourcePort, ReadOnlySpan<byte> destination, ushort destinationPort, out bool sourceIsA)
    {
        Widen(source, out var sh, out var sl);
        Widen(destination, out var dh, out var dl);
        sourceIsA = sh < dh || (sh == dh && (sl < dl || (sl == dl && sourcePort <= destinationPort)));
        return sourceIsA
            ? new FlowKey(sh, sl, sourcePort, dh, dl, destinationPort)
            : new FlowKey(dh, dl, destinationPort, sh, sl, sourcePort);
    }

    public bool Equals(FlowKey other) => Is(other);

    /// <summary><see cref="Equals(FlowKey)"/> without copying either key: what the summary asks of every segment.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Is(in FlowKey other) =>
        ALow == other.ALow && BLow == other.BLow && APort == other.APort && BPort == other.BPort &&
        AHigh == other.AHigh && BHigh == other.BHigh;

    public override int GetHashCode()
    {
        var hash = (ALow * 0x9E3779B97F4A7C15UL) ^ (BLow * 0xC2B2AE3D27D4EB4FUL) ^
            ((AHigh ^ BHigh) * 0x165667B19E3779F9UL) ^ (((ulong)APort << 16) | BPort);

        // Every bit into the low ones (MurmurHash3's whole 64-bit finalizer): the connection table
        // indexes by them. With one round of it, keys that differ only in the port (a client's
        // consecutive ephemeral ports) clustered in the table: 7 probes a lookup for 100 such
        // connections in 256 slots; with both rounds, 1.3.
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        hash *= 0xc4ceb9fe1a85ec53UL;
        hash ^= hash >> 33;
        return (int)hash;
    }

    public string Endpoint(bool a) => a ? Format(AHigh, ALow, APort) : Format(BHigh, BLow, BPort);

    public string Address(bool a) => a ? FormatAddress(AHigh, ALow) : FormatAddress(BHigh, BLow);

    public ushort Port(bool a) => a ? APort : BPort;

    /// <summary>Endpoint A's (or B's) address as the two halves of an IPv6 address (IPv4 mapped).</summary>
    public (ulong High, ulong Low) AddressBits(bool a) => a ? (AHigh, ALow) : (BHigh, BLow);

    /// <summary>IPv6 (IPv4 is held as IPv4-mapped IPv6).</summary>
    public bool IsIPv6 => !(AHigh == 0 && (ALow >> 32) == 0xffff);

    /// <summary>Whether endpoint A's (or B's) address is one of <paramref name="addresses"/>.</summary>
    public bool HasAddress(bool a, IReadOnlySet<string> addresses) => addresses.Contains(Address(a));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(ReadOnlySpan<byte> address, out ulong high, out ulong low)
    {
        if (address.Length == 4)
        {
            high = 0;
            low = 0x0000_ffff_0000_0000UL | BinaryPrimitives.ReadUInt32BigEndian(address);
        }
        else
        {
            high = BinaryPrimitives.ReadUInt64BigEndian(address);
            low = BinaryPrimitives.ReadUInt64BigEndian(address[8..]);
        }
    }

    public static string FormatAddress(ulong high, ulong low)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, high);
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], low);
        var address = new IPAddress(bytes);
        return address.IsIPv4MappedToIPv6 ? address.MapToIPv4().ToString() : address.ToString();
    }

    private static string Format(ulong high, ulong low, ushort port)
    {
        var address = FormatAddress(high, low);
        return address.Contains(':', StringComparison.Ordinal) ? $"[{address}]:{port}" : $"{address}:{port}";
    }
}
