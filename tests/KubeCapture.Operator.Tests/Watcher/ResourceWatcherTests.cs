using System.Collections.Concurrent;
using System.Net;
using k8s;
using k8s.Models;
using KubeCapture.Operator.Watcher;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.Watcher;

/// <summary>The list+watch loop against the emulator, through the real KubernetesClient.</summary>
public sealed class ResourceWatcherTests : IAsyncLifetime
{
    private KubernetesApiEmulator emulator = null!;
    private IKubernetes client = null!;

    public async Task InitializeAsync()
    {
        emulator = await KubernetesApiEmulator.StartAsync();
        emulator.BookmarkInterval = TimeSpan.FromMilliseconds(100);
        emulator.AddNamespace("shop");
        emulator.AddNamespace("busy");
        client = emulator.CreateClient();
    }

    public async Task DisposeAsync()
    {
        client.Dispose();
        await emulator.DisposeAsync();
    }

    [Fact]
    public async Task Bookmarks_move_the_resourceVersion_forward_without_changes_to_the_watched_objects()
    {
        emulator.AddPod("shop", "api-1");
        var watcher = PodWatcher("shop");
        using var cts = new CancellationTokenSource();
        var run = watcher.RunAsync(cts.Token);
        await watcher.Synced.WaitAsync(TimeSpan.FromSeconds(10));
        var listed = long.Parse(watcher.ResourceVersion!);

        emulator.AddPod("busy", "other-1"); // changes elsewhere move the global resourceVersion
        await WaitUntil(() => long.Parse(watcher.ResourceVersion!) > listed);

        Assert.Equal(1, watcher.Lists);
        Assert.Contains(emulator.Requests, r => r.Contains("allowWatchBookmarks=true", StringComparison.Ordinal));
        await cts.CancelAsync();
        await run;
    }

    [Fact]
    public async Task A_dropped_watch_resumes_from_the_last_resourceVersion_and_misses_nothing()
    {
        var watcher = PodWatcher("shop");
        var seen = new ConcurrentQueue<string>();
        watcher.Changed += c => seen.Enqueue($"{c.Type}:{c.Object.Metadata.Name}");
        using var cts = new CancellationTokenSource();
        var run = watcher.RunAsync(cts.Token);
        await watcher.Synced.WaitAsync(TimeSpan.FromSeconds(10));
        emulator.AddPod("shop", "api-1");
        await WaitUntil(() => watcher.Get("shop/api-1") is not null);

        emulator.Faults.FailNext(2, HttpStatusCode.InternalServerError, "GET", "/pods");
        emulator.Store.DropWatches();
        emulator.AddPod("shop", "api-2");
        emulator.Store.Delete(ResourceType.Pods, "shop", "api-1");

        await WaitUntil(() => watcher.Get("shop/api-2") is not null && watcher.Get("shop/api-1") is null);
        Assert.Equal(1, watcher.Lists);
        Assert.Equal(["Added:api-1", "Added:api-2", "Deleted:api-1"], seen);
        await cts.CancelAsync();
        await run;
    }

    [Fact]
    public async Task A_410_Gone_relists_and_reports_what_changed_while_away_including_deletions()
    {
        emulator.AddPod("shop", "api-1");
        var watcher = PodWatcher("shop");
        var seen = new ConcurrentQueue<string>();
        watcher.Changed += c => seen.Enqueue($"{c.Type}:{c.Object.Metadata.Name}");
        using var cts = new CancellationTokenSource();
        var run = watcher.RunAsync(cts.Token);
        await watcher.Synced.WaitAsync(TimeSpan.FromSeconds(10));

        emulator.Faults.FailNext(2, HttpStatusCode.InternalServerError, "GET", "/pods");
        emulator.Store.DropWatches();
        emulator.Store.Delete(ResourceType.Pods, "shop", "api-1");
        emulator.AddPod("shop", "api-2");
        emulator.Store.Compact();

        await WaitUntil(() => watcher.Lists == 2 && watcher.Get("shop/api-2") is not null);
        Assert.Null(watcher.Get("shop/api-1"));
        Assert.Equal(["Added:api-1", "Added:api-2", "Deleted:api-1"], seen.Order());
        await cts.CancelAsync();
        await run;
    }

    [Fact]
    public async Task The_watch_event_of_a_write_this_process_offered_raises_no_change_and_someone_elses_next_write_does()
    {
        emulator.AddPod("shop", "api-1");
        var watcher = PodWatcher("shop");
        var seen = new ConcurrentQueue<string>();
        watcher.Changed += c => seen.Enqueue($"{c.Type}:{c.Object.Metadata.Name}:{c.Object.Metadata.Labels?["step"]}");
        using var cts = new CancellationTokenSource();
        var run = watcher.RunAsync(cts.Token);
        await watcher.Synced.WaitAsync(TimeSpan.FromSeconds(10));

        // This process writes and offers what the server returned (as the reconciler does); then another writer changes the pod.
        var ours = await client.CoreV1.PatchNamespacedPodAsync(new V1Patch("""{"metadata":{"labels":{"step":"ours"}}}""", V1Patch.PatchType.MergePatch), "api-1", "shop");
        watcher.Offer(ours);
        var oursVersion = long.Parse(ours.Metadata.ResourceVersion);
        await WaitUntil(() => long.Parse(watcher.ResourceVersion!) >= oursVersion); // its watch event has arrived
        await client.CoreV1.PatchNamespacedPodAsync(new V1Patch("""{"metadata":{"labels":{"step":"theirs"}}}""", V1Patch.PatchType.MergePatch), "api-1", "shop");
        await WaitUntil(() => watcher.Get("shop/api-1")?.Metadata.Labels?["step"] == "theirs");

        Assert.Equal(["Modified:api-1:theirs"], seen);
        await cts.CancelAsync();
        await run;
    }

    private ResourceWatcher<V1Pod> PodWatcher(string ns) => new("Pod",
        async token =>
        {
            var list = await client.CoreV1.ListNamespacedPodAsync(ns, cancellationToken: token);
            return ([.. list.Items], list.Metadata.ResourceVersion);
        },
        (version, onError, token) => client.CoreV1.WatchListNamespacedPodAsync(ns, allowWatchBookmarks: true, resourceVersion: version, onError: onError, cancellationToken: token),
        NullLogger.Instance);

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(20);
        }
    }
}
