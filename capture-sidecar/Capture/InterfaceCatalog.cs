using PacketDotNet;
using SharpPcap.LibPcap;

namespace KubeCapture.Agent.Capture;

/// <summary>The interfaces libpcap can see in this network namespace, and the link type of each.</summary>
public static class InterfaceCatalog
{
    /// <summary>Finds an interface by name, or throws with the list of the ones that exist.</summary>
    public static LibPcapLiveDevice Find(string name)
    {
        var devices = LibPcapLiveDeviceList.New();
        var device = devices.FirstOrDefault(d => d.Name == name);
        if (device is null)
        {
            var names = string.Join(", ", devices.Select(d => d.Name).Where(IsCaptureInterface));
            throw new CaptureSetupException($"unknown interface '{name}': this network namespace has {names}");
        }

        return device;
    }

    /// <summary>libpcap's DLT name for a link type, as tcpdump prints it.</summary>
    public static string DltName(LinkLayers link) => link switch
    {
        LinkLayers.Ethernet => "EN10MB",
        LinkLayers.LinuxSll => "LINUX_SLL",
        LinkLayers.LinuxSll2 => "LINUX_SLL2",
        LinkLayers.Raw or LinkLayers.RawLegacy => "RAW",
        LinkLayers.Null => "NULL",
        LinkLayers.Loop => "LOOP",
        _ => link.ToString().ToUpperInvariant(),
    };

    private static bool IsCaptureInterface(string name) =>
        !name.StartsWith("dbus-", StringComparison.Ordinal) &&
        name is not ("nflog" or "nfqueue" or "bluetooth-monitor");
}

/// <summary>
/// A capture that cannot start because of what was asked (interface, filter, output, privilege).
/// The message is one line for people; the agent exits 2.
/// </summary>
public sealed class CaptureSetupException(string message) : Exception(message)
{
    public static CaptureSetupException FromOpenFailure(string device, string libpcapMessage)
    {
        var permission = libpcapMessage.Contains("permission", StringComparison.OrdinalIgnoreCase) ||
                         libpcapMessage.Contains("not permitted", StringComparison.OrdinalIgnoreCase);
        return permission
            ? new CaptureSetupException($"cannot capture on '{device}': capture needs root or CAP_NET_RAW ({OneLine(libpcapMessage)})")
            : new CaptureSetupException($"cannot open '{device}': {OneLine(libpcapMessage)}");
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ").Trim();
}
