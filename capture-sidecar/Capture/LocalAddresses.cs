using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace KubeCapture.Agent.Capture;

/// <summary>The addresses of the network namespace the agent runs in: which end of a conversation a capture is.</summary>
public static class LocalAddresses
{
    public static IReadOnlyList<string> OfThisHost()
    {
        try
        {
            return NetworkInterface.GetAllNetworkInterfaces()
                .SelectMany(i => i.GetIPProperties().UnicastAddresses)
                .Select(a => a.Address)
                .Where(a => a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6 && !System.Net.IPAddress.IsLoopback(a))
                .Select(a => (a.IsIPv6LinkLocal ? new System.Net.IPAddress(a.GetAddressBytes()) : a).ToString())
                .Distinct()
                .ToList();
        }
        catch (NetworkInformationException)
        {
            return []; // unknown: the findings say what either end could see
        }
    }
}
