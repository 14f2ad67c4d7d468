using System.Net;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Testing.Kubernetes;

/// <summary>
/// The kubelet's side of the API, for <see cref="TestKubelet"/>: pods as they change, and the
/// ephemeral container statuses it writes back.
/// </summary>
public interface IKubeletPods : IDisposable
{
    /// <summary>A pod was added or changed (its JSON, as the API serves it).</summary>
    event Action<JsonObject>? PodChanged;

    /// <summary>Sets (adds or replaces by name) one entry of the pod's status.ephemeralContainerStatuses.</summary>
    Task WriteEphemeralContainerStatusAsync(string ns, string pod, JsonObject containerStatus);

    /// <summary>
    /// One key of a Secret of the pod's namespace, as a kubelet reads it for <c>env.valueFrom.secretKeyRef</c>;
    /// throws <see cref="SecretKeyMissingException"/> with the kubelet's message when the Secret or key is not there.
    /// </summary>
    Task<string> ReadSecretKeyAsync(string ns, string secret, string key);
}

/// <summary>The Secret or its key is missing: the kubelet reports CreateContainerConfigError with this message.</summary>
public sealed class SecretKeyMissingException(string message) : Exception(message);

/// <summary>The emulator's pods, straight from its store (so faults injected into its HTTP API hit only the operator).</summary>
public sealed class EmulatorPods : IKubeletPods
{
    private readonly KubernetesApiEmulator emulator;

    public EmulatorPods(KubernetesApiEmulator emulator)
    {
        this.emulator = emulator;
        emulator.Store.Changed += OnChange;
    }

    public event Action<JsonObject>? PodChanged;

    public async Task WriteEphemeralContainerStatusAsync(string ns, string pod, JsonObject containerStatus)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var current = emulator.Store.Get(ResourceType.Pods, ns, pod);
            if (current is null)
            {
                return;
            }

            var status = current["status"] as JsonObject ?? [];
            current["status"] = status;
            var statuses = status["ephemeralContainerStatuses"] as JsonArray ?? [];
            status["ephemeralContainerStatuses"] = statuses;
            var existing = statuses.FirstOrDefault(s => (string?)s!["name"] == (string?)containerStatus["name"]);
            if (existing is not null)
            {
                statuses.Remove(existing);
            }

            statuses.Add(containerStatus.DeepClone());
            try
            {
                emulator.Store.Update(ResourceType.Pods, ns, pod, current, "status");
                return;
            }
            catch (ApiException e) when (e.Code == HttpStatusCode.Conflict)
            {
                await Task.Delay(10);
            }
        }
    }

    public Task<string> ReadSecretKeyAsync(string ns, string secret, string key)
    {
        var found = emulator.Store.Get(ResourceType.Secrets, ns, secret) ?? throw new SecretKeyMissingException($"secret \"{secret}\" not found");
        var value = (string?)found["data"]?[key] ?? throw new SecretKeyMissingException($"couldn't find key {key} in Secret {ns}/{secret}");
        return Task.FromResult(System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(value)));
    }

    public void Dispose() => emulator.Store.Changed -= OnChange;

    private void OnChange(WatchEvent change)
    {
        if (change.Resource == ResourceType.Pods && change.Type is "ADDED" or "MODIFIED")
        {
            PodChanged?.Invoke(change.Object);
        }
    }
}

/// <summary>
/// The real kube-apiserver's pods, as a kubelet sees them: a list+watch of every pod (relisting when
/// the watch ends), ephemeral container statuses written to pods/status with optimistic concurrency,
/// and the part of the scheduler and kubelet that makes a pod Running: <see cref="StartPodAsync"/>
/// binds it to a node and reports it Running with the IP of the network namespace that plays it.
/// </summary>
public sealed class ApiServerPods : IKubeletPods
{
    public const string NodeName = "kc-node-1";
    private readonly IKubernetes client;
    private readonly CancellationTokenSource stopping = new();
    private readonly Task watching;

    public ApiServerPods(IKubernetes adminClient)
    {
        client = adminClient;
        watching = Task.Run(() => WatchAsync(stopping.Token));
    }

    public event Action<JsonObject>? PodChanged;

    /// <summary>
    /// Creates a pod (one app container; any extra spec the test wants through <paramref name="customize"/>),
    /// binds it to <see cref="NodeName"/>, and reports it Running with <paramref name="podIp"/>, as the
    /// scheduler and the kubelet would. Returns the pod as the server holds it.
    /// </summary>
    public async Task<V1Pod> StartPodAsync(string ns, string name, string podIp, IDictionary<string, string>? labels = null, Action<V1Pod>? customize = null)
    {
        var pod = new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns, Labels = labels },
            Spec = new V1PodSpec
            {
                Containers =
                [
                    new V1Container
                    {
                        Name = "app",
                        Image = "registry.k8s.io/pause:3.9",
                        SecurityContext = new V1SecurityContext
                        {
                            AllowPrivilegeEscalation = false,
                            RunAsNonRoot = true,
                            RunAsUser = 65535,
                            Capabilities = new V1Capabilities { Drop = ["ALL"] },
                            SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
                        },
                    },
                ],
                AutomountServiceAccountToken = false,
            },
        };
        customize?.Invoke(pod);
        await client.CoreV1.CreateNamespacedPodAsync(pod, ns);
        await client.CoreV1.CreateNamespacedPodBindingAsync(
            new V1Binding { Metadata = new V1ObjectMeta { Name = name }, Target = new V1ObjectReference { Kind = "Node", Name = NodeName } }, name, ns);
        var now = DateTime.UtcNow;
        return await UpdateStatusAsync(ns, name, status =>
        {
            status.Phase = "Running";
            status.HostIP = "127.0.0.1";
            status.PodIP = podIp;
            status.PodIPs = [new V1PodIP { Ip = podIp }];
            status.StartTime = now;
            status.Conditions =
            [
                new V1PodCondition { Type = "PodScheduled", Status = "True", LastTransitionTime = now },
                new V1PodCondition { Type = "Initialized", Status = "True", LastTransitionTime = now },
                new V1PodCondition { Type = "ContainersReady", Status = "True", LastTransitionTime = now },
                new V1PodCondition { Type = "Ready", Status = "True", LastTransitionTime = now },
            ];
            status.ContainerStatuses =
            [
                new V1ContainerStatus
                {
                    Name = "app", Image = "registry.k8s.io/pause:3.9", ImageID = "", Ready = true, RestartCount = 0, Started = true,
                    State = new V1ContainerState { Running = new V1ContainerStateRunning { StartedAt = now } },
                },
            ];
        });
    }

    public async Task WriteEphemeralContainerStatusAsync(string ns, string pod, JsonObject containerStatus)
    {
        var status = KubernetesJson.Deserialize<V1ContainerStatus>(containerStatus.ToJsonString());
        try
        {
            await UpdateStatusAsync(ns, pod, s =>
            {
                var statuses = s.EphemeralContainerStatuses?.Where(c => c.Name != status.Name).ToList() ?? [];
                statuses.Add(status);
                s.EphemeralContainerStatuses = statuses;
            });
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            // The pod is gone: a kubelet has nothing left to report to.
        }
    }

    public async Task<string> ReadSecretKeyAsync(string ns, string secret, string key)
    {
        V1Secret found;
        try
        {
            found = await client.CoreV1.ReadNamespacedSecretAsync(secret, ns);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new SecretKeyMissingException($"secret \"{secret}\" not found");
        }

        return found.Data?.TryGetValue(key, out var value) == true
            ? System.Text.Encoding.UTF8.GetString(value)
            : throw new SecretKeyMissingException($"couldn't find key {key} in Secret {ns}/{secret}");
    }

    public void Dispose()
    {
        stopping.Cancel();
        try
        {
            watching.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }

        stopping.Dispose();
    }

    private async Task<V1Pod> UpdateStatusAsync(string ns, string name, Action<V1PodStatus> change)
    {
        for (var attempt = 0; ; attempt++)
        {
            var pod = await client.CoreV1.ReadNamespacedPodAsync(name, ns);
            pod.Status ??= new V1PodStatus();
            change(pod.Status);
            try
            {
                return await client.CoreV1.ReplaceNamespacedPodStatusAsync(pod, name, ns);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < 50)
            {
                await Task.Delay(10);
            }
        }
    }

    private async Task WatchAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var list = await client.CoreV1.ListPodForAllNamespacesAsync(cancellationToken: cancellationToken);
                foreach (var pod in list.Items)
                {
                    Raise(pod);
                }

                var events = client.CoreV1.WatchListPodForAllNamespacesAsync(resourceVersion: list.Metadata.ResourceVersion, allowWatchBookmarks: true,
                    timeoutSeconds: 300, cancellationToken: cancellationToken);
                await foreach (var (type, pod) in events.WithCancellation(cancellationToken))
                {
                    if (type is WatchEventType.Added or WatchEventType.Modified)
                    {
                        Raise(pod);
                    }
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is HttpRequestException or HttpOperationException or IOException or KubernetesException)
            {
                // The server restarted or the watch expired: relist, as a kubelet does.
                await Task.Delay(200, CancellationToken.None);
            }
        }
    }

    private void Raise(V1Pod pod)
    {
        try
        {
            PodChanged?.Invoke(JsonNode.Parse(KubernetesJson.Serialize(pod))!.AsObject());
        }
        catch (Exception e) when (e is InvalidOperationException or System.Text.Json.JsonException)
        {
        }
    }
}
