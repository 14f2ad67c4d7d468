using k8s;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;
using KubeCapture.Operator.Tests.Ingest;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// The attack of issue 11, as a user allowed only to <c>get</c> pods runs it: read the capture
/// container's args and KUBECAPTURE_TOKEN from the pod spec, and run the real agent with them from a
/// network namespace of the attacker's own. Independent of which API server serves the pod (the
/// emulator here, a real kube-apiserver later): it needs only an <see cref="IKubernetes"/> client.
/// </summary>
public static class ForgedUpload
{
    /// <summary>Reads the capture container from the pod spec and runs its command in <paramref name="attackerNamespace"/> until it exits.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(IKubernetes client, string ns, string pod, string captureUid, string attackerNamespace, string agentDll)
    {
        var spec = await client.CoreV1.ReadNamespacedPodAsync(pod, ns);
        var container = spec.Spec.EphemeralContainers.Single(c => c.Name == EphemeralContainerSpec.ContainerName(captureUid));
        var token = container.Env.Single(e => e.Name == EphemeralContainerSpec.TokenVariable).Value;
        await using var forger = ChildProcess.Start("ip", ["netns", "exec", attackerNamespace, "dotnet", agentDll, .. container.Args],
            new Dictionary<string, string> { [EphemeralContainerSpec.TokenVariable] = token });
        var exit = await forger.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return (exit, forger.Output);
    }

    /// <summary>The target's refused uploads as its status counts them.</summary>
    public static long RefusedUploads(PacketCapture capture, string pod) =>
        capture.Status?.Targets.FirstOrDefault(t => t.Pod == pod)?.RefusedUploads ?? 0;

    /// <summary>The Warning Events UploadRefused recorded on the capture.</summary>
    public static async Task<IReadOnlyList<k8s.Models.Corev1Event>> RefusalEventsAsync(IKubernetes client, string ns, string captureName)
    {
        var events = await client.CoreV1.ListNamespacedEventAsync(ns);
        return [.. events.Items.Where(e => e.InvolvedObject.Kind == PacketCapture.KindName && e.InvolvedObject.Name == captureName && e.Reason == "UploadRefused" && e.Type == "Warning")];
    }
}
