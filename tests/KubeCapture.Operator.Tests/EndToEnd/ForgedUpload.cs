using k8s;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Resources;
using KubeCapture.Operator.Tests.Ingest;

namespace KubeCapture.Operator.Tests.EndToEnd;

/// <summary>
/// The attacks on the evidence, as a user of the namespace runs them: read the capture container's
/// args from the pod spec and its upload token where the kubelet reads it (the Secret its env refers
/// to, which needs <c>get secrets</c>: the built-in <c>edit</c> role, not <c>view</c>), and run the
/// real agent with them from a network namespace: an attacker's own, or the target pod's (code run
/// in the pod: <c>kubectl exec</c>, or a compromised app). Independent of which API server serves the
/// pod (the emulator, or the real kube-apiserver): it needs only an <see cref="IKubernetes"/> client.
/// </summary>
public static class ForgedUpload
{
    /// <summary>
    /// The capture container's args and its upload token, read as <paramref name="client"/>'s user:
    /// throws the API server's 403 when that user may not read the token's Secret.
    /// </summary>
    public static async Task<(IReadOnlyList<string> Args, string Token)> ReadAsync(IKubernetes client, string ns, string pod, string captureUid)
    {
        var spec = await client.CoreV1.ReadNamespacedPodAsync(pod, ns);
        var container = spec.Spec.EphemeralContainers.Single(c => c.Name == EphemeralContainerSpec.ContainerName(captureUid));
        var env = container.Env.Single(e => e.Name == EphemeralContainerSpec.TokenVariable);
        if (env.Value is { } literal)
        {
            return ([.. container.Args], literal);
        }

        var reference = env.ValueFrom.SecretKeyRef;
        var secret = await client.CoreV1.ReadNamespacedSecretAsync(reference.Name, ns);
        return ([.. container.Args], System.Text.Encoding.UTF8.GetString(secret.Data[reference.Key]));
    }

    /// <summary><paramref name="user"/> given <paramref name="clusterRole"/> in <paramref name="ns"/> (a RoleBinding).</summary>
    public static async Task BindAsync(IKubernetes admin, string ns, string user, string clusterRole) =>
        await admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new k8s.Models.V1RoleBinding
        {
            Metadata = new k8s.Models.V1ObjectMeta { Name = $"{user}-{clusterRole.Replace(':', '-')}" },
            RoleRef = new k8s.Models.V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "ClusterRole", Name = clusterRole },
            Subjects = [new k8s.Models.Rbacv1Subject { Kind = "User", Name = user, ApiGroup = "rbac.authorization.k8s.io" }],
        }, ns);

    /// <summary>Reads the capture container from the pod spec and runs its command in <paramref name="networkNamespace"/> until it exits.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(IKubernetes client, string ns, string pod, string captureUid, string networkNamespace, string agentDll)
    {
        var (args, token) = await ReadAsync(client, ns, pod, captureUid);
        return await RunAgentAsync(networkNamespace, agentDll, args, token);
    }

    /// <summary>
    /// Runs the real agent with <paramref name="args"/> and <paramref name="token"/> in
    /// <paramref name="networkNamespace"/> until it exits: its own process, so its own session.
    /// </summary>
    public static async Task<(int ExitCode, string Output)> RunAgentAsync(string networkNamespace, string agentDll, IReadOnlyList<string> args, string token, TimeSpan? timeout = null)
    {
        await using var forger = ChildProcess.Start("ip", ["netns", "exec", networkNamespace, "dotnet", agentDll, .. args],
            new Dictionary<string, string> { [EphemeralContainerSpec.TokenVariable] = token });
        var exit = await forger.WaitForExitAsync(timeout ?? TimeSpan.FromSeconds(60));
        return (exit, forger.Output);
    }

    /// <summary>
    /// The capture container's args with some options replaced (<c>-c 2</c>, <c>--retention 876000h</c>):
    /// the attacker runs the agent with whatever args suit them.
    /// </summary>
    public static List<string> WithOptions(IReadOnlyList<string> args, params (string Option, string Value)[] replaced)
    {
        var result = args.ToList();
        var end = result.IndexOf("--") is var dashes and >= 0 ? dashes : result.Count;
        foreach (var (option, value) in replaced)
        {
            var at = result.IndexOf(option);
            if (at >= 0 && at < end)
            {
                result[at + 1] = value;
            }
            else
            {
                result.InsertRange(end, [option, value]);
                end += 2;
            }
        }

        return result;
    }

    /// <summary>The target's refused uploads as its status counts them.</summary>
    public static long RefusedUploads(PacketCapture capture, string pod) =>
        capture.Status?.Targets.FirstOrDefault(t => t.Pod == pod)?.RefusedUploads ?? 0;

    /// <summary>The Warning Events UploadRefused recorded on the capture.</summary>
    public static Task<IReadOnlyList<k8s.Models.Corev1Event>> RefusalEventsAsync(IKubernetes client, string ns, string captureName) =>
        WarningsAsync(client, ns, captureName, "UploadRefused");

    /// <summary>The Warning Events of one reason recorded on the capture.</summary>
    public static async Task<IReadOnlyList<k8s.Models.Corev1Event>> WarningsAsync(IKubernetes client, string ns, string captureName, string reason)
    {
        var events = await client.CoreV1.ListNamespacedEventAsync(ns);
        return [.. events.Items.Where(e => e.InvolvedObject.Kind == PacketCapture.KindName && e.InvolvedObject.Name == captureName && e.Reason == reason && e.Type == "Warning")];
    }
}
