using System.Collections.Concurrent;
using PacketDotNet;
using SharpPcap.LibPcap;

namespace KubeCapture.Contracts.Filter;

/// <summary>
/// Whether libpcap compiles a filter for the link type a capture on an interface will have, checked
/// without a device, before any capture starts. Each filter is compiled once per process: the
/// operator asks on every reconcile of a capture, and the answer for the same filter and link type
/// does not change.
/// </summary>
public static class FilterCheck
{
    /// <summary>More distinct filters than this and the remembered answers are forgotten (they are only a saving).</summary>
    private const int RememberedMax = 4096;

    private static readonly ConcurrentDictionary<(LinkLayers Link, string Filter), string?> Answers = new();

    /// <summary>
    /// The link type a capture on <paramref name="interfaceName"/> will have, known before opening it:
    /// "any" is Linux cooked (SLL); everything else is taken to be Ethernet (loopback is too).
    /// </summary>
    public static LinkLayers ExpectedLinkType(string interfaceName) => interfaceName == "any" ? LinkLayers.LinuxSll : LinkLayers.Ethernet;

    /// <summary>Null when libpcap compiles <paramref name="filter"/> (or there is none); else the problem, in libpcap's words: "invalid filter 'F': ...".</summary>
    public static string? Problem(string interfaceName, string filter)
    {
        if (filter.Length == 0)
        {
            return null;
        }

        var key = (ExpectedLinkType(interfaceName), filter);
        if (Answers.TryGetValue(key, out var known))
        {
            return known;
        }

        if (Answers.Count >= RememberedMax)
        {
            Answers.Clear();
        }

        return Answers.GetOrAdd(key, static k => Compile(k.Link, k.Filter));
    }

    private static string? Compile(LinkLayers link, string filter)
    {
        try
        {
            using var program = BpfProgram.Create(link, filter);
            return null;
        }
        catch (SharpPcap.PcapException e)
        {
            return $"invalid filter '{filter}': {e.Message}";
        }
    }
}
