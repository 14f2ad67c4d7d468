using System.Net;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts.Resources;
using KubeCapture.Testing.Kubernetes;

namespace KubeCapture.Operator.Tests.Emulator;

/// <summary>The emulator, driven by the real KubernetesClient: what the operator relies on must behave as in a cluster.</summary>
public sealed class KubernetesApiEmulatorTests : IAsyncLifetime
{
    private KubernetesApiEmulator emulator = null!;
    private IKubernetes client = null!;

    public async Task InitializeAsync()
    {
        emulator = await KubernetesApiEmulator.StartAsync();
        emulator.BookmarkInterval = TimeSpan.FromMilliseconds(200);
        emulator.AddNamespace("payments", new Dictionary<string, string> { ["pod-security.kubernetes.io/enforce"] = "baseline" });
        client = emulator.CreateClient();
    }

    public async Task DisposeAsync()
    {
        client.Dispose();
        await emulator.DisposeAsync();
    }

    [Fact]
    public async Task Pods_are_read_and_listed_with_labels_selectors_and_resource_versions()
    {
        emulator.AddPod("payments", "api-1", labels: new Dictionary<string, string> { ["app"] = "api" });
        emulator.AddPod("payments", "db-1", labels: new Dictionary<string, string> { ["app"] = "db" });

        var pod = await client.CoreV1.ReadNamespacedPodAsync("api-1", "payments");
        var list = await client.CoreV1.ListNamespacedPodAsync("payments", labelSelector: "app=api");
        var ns = await client.CoreV1.ReadNamespaceAsync("payments");

        Assert.Equal("Running", pod.Status.Phase);
        Assert.Equal("node-1", pod.Spec.NodeName);
        Assert.False(string.IsNullOrEmpty(pod.Metadata.Uid));
        Assert.Equal(["api-1"], list.Items.Select(p => p.Metadata.Name));
        Assert.True(long.Parse(list.Metadata.ResourceVersion) >= long.Parse(pod.Metadata.ResourceVersion));
        Assert.Equal("baseline", ns.Metadata.Labels["pod-security.kubernetes.io/enforce"]);
        var missing = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ReadNamespacedPodAsync("nope", "payments"));
        Assert.Equal(HttpStatusCode.NotFound, missing.Response.StatusCode);
    }

    [Fact]
    public async Task A_stale_update_is_refused_with_409_Conflict()
    {
        var created = await CreateCaptureAsync("c1");
        var first = await client.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c1");
        first.Spec.Stop = true;
        await client.CustomObjects.ReplaceNamespacedCustomObjectAsync<PacketCapture>(first, PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c1");

        created.Spec.Reason = "stale writer";
        var conflict = await Assert.ThrowsAsync<HttpOperationException>(() =>
            client.CustomObjects.ReplaceNamespacedCustomObjectAsync<PacketCapture>(created, PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c1"));

        Assert.Equal(HttpStatusCode.Conflict, conflict.Response.StatusCode);
        Assert.Contains("the object has been modified", conflict.Response.Content, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Generation_moves_on_spec_changes_only_and_status_changes_only_through_its_subresource()
    {
        var created = await CreateCaptureAsync("c2");
        Assert.Equal(1, created.Metadata.Generation);

        created.Status = new PacketCaptureStatus { Phase = CapturePhase.Running };
        var viaStatus = await client.CustomObjects.ReplaceNamespacedCustomObjectStatusAsync<PacketCapture>(created, PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c2");
        Assert.Equal(CapturePhase.Running, viaStatus.Status?.Phase);
        Assert.Equal(1, viaStatus.Metadata.Generation);

        viaStatus.Status = new PacketCaptureStatus { Phase = CapturePhase.Failed };
        viaStatus.Spec.Stop = true;
        var viaMain = await client.CustomObjects.ReplaceNamespacedCustomObjectAsync<PacketCapture>(viaStatus, PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c2");
        Assert.Equal(CapturePhase.Running, viaMain.Status?.Phase);
        Assert.Equal(2, viaMain.Metadata.Generation);

        viaMain.Metadata.Labels = new Dictionary<string, string> { ["team"] = "payments" };
        var relabelled = await client.CustomObjects.ReplaceNamespacedCustomObjectAsync<PacketCapture>(viaMain, PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c2");
        Assert.Equal(2, relabelled.Metadata.Generation);
    }

    [Fact]
    public async Task Deleting_an_object_with_finalizers_only_marks_it_and_removing_the_last_finalizer_deletes_it()
    {
        var created = await CreateCaptureAsync("c3", finalizer: "kubecapture.io/finalizer");
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c3");

        var marked = await client.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c3");
        Assert.NotNull(marked.Metadata.DeletionTimestamp);
        Assert.Equal(created.Metadata.Uid, marked.Metadata.Uid);

        var patch = new V1Patch("""{"metadata":{"finalizers":null}}""", V1Patch.PatchType.MergePatch);
        await client.CustomObjects.PatchNamespacedCustomObjectAsync(patch, PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c3");

        var gone = await Assert.ThrowsAsync<HttpOperationException>(() =>
            client.CustomObjects.GetNamespacedCustomObjectAsync<PacketCapture>(PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural, "c3"));
        Assert.Equal(HttpStatusCode.NotFound, gone.Response.StatusCode);
    }

    [Fact]
    public async Task Ephemeral_containers_are_added_by_strategic_merge_patch_and_can_never_be_changed_or_removed()
    {
        emulator.AddPod("payments", "api-1");
        var add = new V1Patch("""{"spec":{"ephemeralContainers":[{"name":"kubecapture-a","image":"agent:1","args":["capture"]}]}}""", V1Patch.PatchType.StrategicMergePatch);
        var pod = await client.CoreV1.PatchNamespacedPodEphemeralcontainersAsync(add, "api-1", "payments");
        Assert.Equal(["kubecapture-a"], pod.Spec.EphemeralContainers.Select(c => c.Name));

        var second = new V1Patch("""{"spec":{"ephemeralContainers":[{"name":"kubecapture-b","image":"agent:1"}]}}""", V1Patch.PatchType.StrategicMergePatch);
        pod = await client.CoreV1.PatchNamespacedPodEphemeralcontainersAsync(second, "api-1", "payments");
        Assert.Equal(["kubecapture-a", "kubecapture-b"], pod.Spec.EphemeralContainers.Select(c => c.Name));

        var change = new V1Patch("""[{"op":"replace","path":"/spec/ephemeralContainers/0/image","value":"agent:2"}]""", V1Patch.PatchType.JsonPatch);
        var changed = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.PatchNamespacedPodEphemeralcontainersAsync(change, "api-1", "payments"));
        Assert.True(changed.Response.StatusCode == HttpStatusCode.UnprocessableEntity, changed.Response.Content);
        Assert.Contains("may not be changed", changed.Response.Content, StringComparison.Ordinal);

        var remove = new V1Patch("""[{"op":"remove","path":"/spec/ephemeralContainers/1"}]""", V1Patch.PatchType.JsonPatch);
        var removed = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.PatchNamespacedPodEphemeralcontainersAsync(remove, "api-1", "payments"));
        Assert.Contains("may not be removed", removed.Response.Content, StringComparison.Ordinal);

        var viaPodUpdate = await client.CoreV1.ReadNamespacedPodAsync("api-1", "payments");
        viaPodUpdate.Spec.EphemeralContainers.Add(new V1EphemeralContainer { Name = "sneaky", Image = "x" });
        var replaced = await client.CoreV1.ReplaceNamespacedPodAsync(viaPodUpdate, "api-1", "payments");
        Assert.Equal(2, replaced.Spec.EphemeralContainers.Count);

        var withPorts = new V1Patch("""{"spec":{"ephemeralContainers":[{"name":"kubecapture-c","image":"agent:1","ports":[{"containerPort":80}]}]}}""", V1Patch.PatchType.StrategicMergePatch);
        var ports = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.PatchNamespacedPodEphemeralcontainersAsync(withPorts, "api-1", "payments"));
        Assert.Contains("ports: Forbidden", ports.Response.Content, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_watch_from_a_resourceVersion_sees_later_changes_and_bookmarks()
    {
        var before = await CreateCaptureAsync("w1");
        var received = new List<(WatchEventType Type, string? Name, string Version)>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var watch = client.CustomObjects.WatchListNamespacedCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural,
            allowWatchBookmarks: true, resourceVersion: before.Metadata.ResourceVersion, cancellationToken: cts.Token);
        var reader = Task.Run(async () =>
        {
            await foreach (var (type, raw) in watch)
            {
                var item = KubernetesJson.Deserialize<PacketCapture>(((JsonElement)raw).GetRawText());
                received.Add((type, item.Metadata.Name, item.Metadata.ResourceVersion));
                if (received.Any(r => r.Type == WatchEventType.Bookmark) && received.Any(r => r.Name == "w2"))
                {
                    return;
                }
            }
        });

        await CreateCaptureAsync("w2");
        await reader.WaitAsync(cts.Token);

        Assert.DoesNotContain(received, r => r.Name == "w1");
        Assert.Contains(received, r => r.Type == WatchEventType.Added && r.Name == "w2");
        Assert.Contains(received, r => r.Type == WatchEventType.Bookmark && long.Parse(r.Version) > long.Parse(before.Metadata.ResourceVersion));
    }

    [Fact]
    public async Task A_watch_from_a_compacted_resourceVersion_gets_410_Gone()
    {
        var before = await CreateCaptureAsync("g1");
        await CreateCaptureAsync("g2");
        emulator.Store.Compact();

        Exception? error = null;
        var watch = client.CustomObjects.WatchListNamespacedCustomObjectAsync(PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural,
            resourceVersion: before.Metadata.ResourceVersion, onError: e => error = e);
        var thrown = await Record.ExceptionAsync(async () =>
        {
            await foreach (var _ in watch)
            {
            }
        });

        var gone = Assert.IsType<KubernetesException>(thrown ?? error);
        Assert.Equal(410, gone.Status.Code);
    }

    [Fact]
    public async Task Faults_fail_requests_with_500_and_cut_open_watches()
    {
        emulator.Faults.FailNext(1, HttpStatusCode.InternalServerError, "GET", "/pods");
        var failed = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoreV1.ListNamespacedPodAsync("payments"));
        Assert.Equal(HttpStatusCode.InternalServerError, failed.Response.StatusCode);
        var fine = await client.CoreV1.ListNamespacedPodAsync("payments");
        Assert.Empty(fine.Items);

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var watch = client.CoreV1.WatchListNamespacedPodAsync("payments", cancellationToken: cts.Token);
        // A watch cut before its first event ends the client's stream with an error, one after it ends quietly.
        var ended = Task.Run(() => Record.ExceptionAsync(async () =>
        {
            await foreach (var _ in watch)
            {
            }
        }));
        while (emulator.Store.OpenWatches(ResourceType.Pods) == 0)
        {
            await Task.Delay(20, cts.Token);
        }

        Assert.Equal(1, emulator.Store.DropWatches());
        await ended.WaitAsync(cts.Token);
        Assert.Equal(0, emulator.Store.OpenWatches(ResourceType.Pods));
    }

    [Fact]
    public async Task Injected_latency_slows_every_response()
    {
        emulator.Faults.Latency = TimeSpan.FromMilliseconds(300);
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();

        await client.CoreV1.ListNamespacedPodAsync("payments");

        Assert.True(stopwatch.Elapsed >= TimeSpan.FromMilliseconds(290), $"{stopwatch.Elapsed}");
    }

    [Fact]
    public async Task Leases_are_created_read_and_replaced_with_optimistic_concurrency()
    {
        var lease = await client.CoordinationV1.CreateNamespacedLeaseAsync(new V1Lease
        {
            Metadata = new V1ObjectMeta { Name = "kubecapture-leader" },
            Spec = new V1LeaseSpec { HolderIdentity = "a", LeaseDurationSeconds = 15 },
        }, "payments");
        lease.Spec.HolderIdentity = "b";
        var replaced = await client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, "kubecapture-leader", "payments");
        Assert.Equal("b", replaced.Spec.HolderIdentity);

        lease.Spec.HolderIdentity = "c";
        var stale = await Assert.ThrowsAsync<HttpOperationException>(() => client.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, "kubecapture-leader", "payments"));
        Assert.Equal(HttpStatusCode.Conflict, stale.Response.StatusCode);
    }

    [Fact]
    public async Task Events_can_be_recorded_and_listed()
    {
        await client.CoreV1.CreateNamespacedEventAsync(new Corev1Event
        {
            Metadata = new V1ObjectMeta { GenerateName = "c1." },
            InvolvedObject = new V1ObjectReference { Kind = "PacketCapture", Name = "c1", NamespaceProperty = "payments" },
            Reason = "Injected",
            Message = "hello",
            Type = "Normal",
        }, "payments");

        var events = await client.CoreV1.ListNamespacedEventAsync("payments");
        var recorded = Assert.Single(events.Items);
        Assert.Equal("Injected", recorded.Reason);
        Assert.StartsWith("c1.", recorded.Metadata.Name, StringComparison.Ordinal);
    }

    private async Task<PacketCapture> CreateCaptureAsync(string name, string? finalizer = null)
    {
        var capture = new PacketCapture
        {
            Metadata = new V1ObjectMeta { Name = name, Finalizers = finalizer is null ? null : [finalizer] },
            Spec = new PacketCaptureSpec { Reason = "test", Duration = "30s", Target = new CaptureTarget { PodName = "api-1" } },
        };
        var created = await client.CustomObjects.CreateNamespacedCustomObjectAsync<PacketCapture>(capture, PacketCapture.Group, PacketCapture.Version, "payments", PacketCapture.Plural);
        return created;
    }
}
