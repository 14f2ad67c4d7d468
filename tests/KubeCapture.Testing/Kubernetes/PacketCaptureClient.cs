using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>PacketCaptures as a user handles them (kubectl apply, get, patch, delete), against the emulator or the real kube-apiserver.</summary>
public static class PacketCaptureClient
{
    public static Task<PacketCapture> CreatePacketCaptureAsync(this IKubernetes client, string ns, string name, PacketCaptureSpec spec) =>
        client.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(
            new PacketCapture { ApiVersion = $"{PacketCapture.Group}/{PacketCapture.Version}", Kind = "PacketCapture", Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns }, Spec = spec },
            PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural);

    public static async Task<PacketCapture?> GetPacketCaptureAsync(this IKubernetes client, string ns, string name)
    {
        try
        {
            return await client.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, name);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>kubectl patch pcap NAME --type merge -p '{"spec":{"stop":true}}'.</summary>
    public static Task<PacketCapture> StopPacketCaptureAsync(this IKubernetes client, string ns, string name) =>
        client.CustomObjects.PatchNamespacedCustomObjectAsync<PacketCapture>(new V1Patch("""{"spec":{"stop":true}}""", V1Patch.PatchType.MergePatch),
            PacketCapture.Group, PacketCapture.Version, ns, PacketCapture.Plural, name);

    /// <summary>Polls the capture until <paramref name="until"/> holds; on timeout, fails with the last status seen.</summary>
    public static async Task<PacketCapture> WaitForPacketCaptureAsync(this IKubernetes client, string ns, string name, Func<PacketCapture, bool> until, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        PacketCapture? last = null;
        while (DateTime.UtcNow < deadline)
        {
            last = await client.GetPacketCaptureAsync(ns, name);
            if (last is not null && until(last))
            {
                return last;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"capture {ns}/{name} did not reach the expected state; last status: {(last is null ? "gone" : KubernetesJson.Serialize(last.Status))}");
    }

    public static Task<PacketCapture> WaitForPhaseAsync(this IKubernetes client, string ns, string name, string phase, TimeSpan? timeout = null) =>
        client.WaitForPacketCaptureAsync(ns, name, c => c.Status?.Phase == phase, timeout);
}
