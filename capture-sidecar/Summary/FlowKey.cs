using System.Buffers.Binary;
using System.Net;

namespace KubeCapture.Agent.Summary;

/// <summary>
/// A TCP 4-tuple with its two endpoints in a fixed order (A is the smaller), so both directions of a
/// connection find the same entry. IPv4 addresses are held as IPv4-mapped IPv6.
/// </summary>
internal readonly record struct FlowKey(ulong AHigh, ulong ALow, ushort APort, ulong BHigh, ulong BLow, ushort BPort)
{
    public static FlowKey Create(ReadOnlySpan<byte> source, ushort sourcePort, ReadOnlySpan<byte> destination, ushort destinationPort, out bool sourceIsA)
    {
        var (sh, sl) = Widen(source);
        var (dh, dl) = Widen(destination);
        sourceIsA = (sh, sl, sourcePort).CompareTo((dh, dl, destinationPort)) <= 0;
        return sourceIsA
            ? new FlowKey(sh, sl, sourcePort, dh, dl, destinationPort)
            : new FlowKey(dh, dl, destinationPort, sh, sl, sourcePort);
    }

    public string Endpoint(bool a) => a ? Format(AHigh, ALow, APort) : Format(BHigh, BLow, BPort);

    public string Address(bool a) => a ? FormatAddress(AHigh, ALow) : FormatAddress(BHigh, BLow);

    public ushort Port(bool a) => a ? APort : BPort;

    private static (ulong High, ulong Low) Widen(ReadOnlySpan<byte> address) => address.Length == 4
        ? (0UL, 0x0000_ffff_0000_0000UL | BinaryPrimitives.ReadUInt32BigEndian(address))
        : (BinaryPrimitives.ReadUInt64BigEndian(address), BinaryPrimitives.ReadUInt64BigEndian(address[8..]));

    private static string FormatAddress(ulong high, ulong low)
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
