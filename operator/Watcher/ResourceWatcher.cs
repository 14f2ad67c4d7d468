using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.Watcher;

/// <summary>One change seen by a watcher: the object after (or, for Deleted, before) the change.</summary>
public sealed record ResourceChange<T>(WatchEventType Type, T Object);

/// <summary>
/// List, then watch from the list's resourceVersion with bookmarks; when the stream ends or breaks,
/// watch again from the last resourceVersion seen (bookmarks keep it fresh); on 410 Gone, list
/// again and report what changed while away. Keeps a cache of the objects by namespace/name, which
/// is what the controller reads. <paramref name="keep"/>, when given, is applied to every object
/// before it is cached or reported: it keeps only the fields the controller reads (the memory of a
/// cache of every pod in the cluster).
/// </summary>
public sealed class ResourceWatcher<T>(
    string kind,
    Func<CancellationToken, Task<(IReadOnlyList<T> Items, string ResourceVersion)>> list,
    Func<string, Action<Exception>, CancellationToken, IAsyncEnumerable<(WatchEventType Type, T Object)>> watch,
    ILogger logger,
    TimeProvider? time = null,
    Func<T, T>? keep = null)
    where T : IKubernetesObject<V1ObjectMeta>
{
    private readonly Func<T, T> keep = keep ?? (item => item);
    private readonly Lock gate = new();
    private readonly Dictionary<string, T> cache = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TimeProvider time = time ?? TimeProvider.System;

    /// <summary>Raised for every change, after the cache has it.</summary>
    public event Action<ResourceChange<T>>? Changed;

    /// <summary>The resourceVersion the next watch starts from.</summary>
    public string? ResourceVersion { get; private set; }

    /// <summary>How many times the watcher had to list (1 + each 410 Gone).</summary>
    public int Lists { get; private set; }

    /// <summary>Completes when the first list is in the cache.</summary>
    public Task Synced => synced.Task;

    public static string KeyOf(T item) => $"{item.Metadata.NamespaceProperty}/{item.Metadata.Name}";

    public T? Get(string key)
    {
        lock (gate)
        {
            return cache.TryGetValue(key, out var item) ? item : default;
        }
    }

    /// <summary>
    /// Puts an object this process just wrote into the cache, unless the cache already holds a newer
    /// version: the next reconcile then starts from what was written instead of a stale copy (which
    /// would only earn a 409 Conflict). The watch event that follows changes nothing and raises no <see cref="Changed"/>.
    /// </summary>
    public void Offer(T item)
    {
        item = keep(item);
        lock (gate)
        {
            var key = KeyOf(item);
            if (cache.TryGetValue(key, out var cached) && !IsNewer(item.Metadata.ResourceVersion, cached.Metadata.ResourceVersion))
            {
                return;
            }

            cache[key] = item;
        }
    }

    private static bool IsNewer(string? candidate, string? cached) =>
        long.TryParse(candidate, out var a) && long.TryParse(cached, out var b) ? a > b : candidate != cached;

    public IReadOnlyList<T> Snapshot()
    {
        lock (gate)
        {
            return [.. cache.Values];
        }
    }

    /// <summary>The cached objects that match, without copying the whole cache.</summary>
    public IReadOnlyList<T> Where(Func<T, bool> predicate)
    {
        lock (gate)
        {
            return [.. cache.Values.Where(predicate)];
        }
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (ResourceVersion is null)
                {
                    await RelistAsync(cancellationToken);
                }

                // KubernetesClient reports an ERROR event (e.g. 410 Gone) to onError and ends the stream.
                Exception? streamError = null;
                await foreach (var (type, item) in watch(ResourceVersion!, e => streamError ??= e, cancellationToken))
                {
                    failures = 0;
                    Apply(type, item);
                }

                if (streamError is not null)
                {
                    throw streamError;
                }

                logger.LogDebug("{Kind} watch ended at resourceVersion {Version}; watching again", kind, ResourceVersion);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (KubernetesException e) when (e.Status?.Code == (int)HttpStatusCode.Gone)
            {
                logger.LogInformation("{Kind} watch: resourceVersion {Version} is too old (410 Gone); listing again", kind, ResourceVersion);
                ResourceVersion = null;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Gone)
            {
                ResourceVersion = null;
            }
            catch (Exception e)
            {
                failures++;
                var delay = TimeSpan.FromMilliseconds(Math.Min(5000, 100 * (1 << Math.Min(failures, 6))));
                if (KubeCapture.Operator.Queue.ServerPushback.RetryAfter(e) is { } asked && asked > delay)
                {
                    delay = asked; // a throttled list or watch waits as long as the server asked
                }

                logger.LogWarning("{Kind} watch failed ({Error}); retrying in {Delay} ms", kind, e.Message, delay.TotalMilliseconds);
                try
                {
                    await Task.Delay(delay, time, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task RelistAsync(CancellationToken cancellationToken)
    {
        var (items, version) = await list(cancellationToken);
        List<ResourceChange<T>> changes = [];
        lock (gate)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var listed in items)
            {
                var item = keep(listed);
                var key = KeyOf(item);
                seen.Add(key);
                var existed = cache.TryGetValue(key, out var old);
                if (!existed || old!.Metadata.ResourceVersion != item.Metadata.ResourceVersion)
                {
                    changes.Add(new ResourceChange<T>(existed ? WatchEventType.Modified : WatchEventType.Added, item));
                }

                cache[key] = item;
            }

            foreach (var gone in cache.Keys.Where(k => !seen.Contains(k)).ToList())
            {
                changes.Add(new ResourceChange<T>(WatchEventType.Deleted, cache[gone]));
                cache.Remove(gone);
            }

            ResourceVersion = version;
            Lists++;
        }

        synced.TrySetResult();
        foreach (var change in changes)
        {
            Changed?.Invoke(change);
        }
    }

    private void Apply(WatchEventType type, T received)
    {
        var item = type is WatchEventType.Bookmark or WatchEventType.Error ? received : keep(received);
        if (item.Metadata?.ResourceVersion is { Length: > 0 } version)
        {
            ResourceVersion = version;
        }

        if (type == WatchEventType.Bookmark)
        {
            return;
        }

        if (type == WatchEventType.Error)
        {
            throw new InvalidOperationException($"{kind} watch returned an error event");
        }

        lock (gate)
        {
            if (type == WatchEventType.Deleted)
            {
                cache.Remove(KeyOf(item));
            }
            else if (!cache.TryGetValue(KeyOf(item), out var cached) || IsNewer(item.Metadata?.ResourceVersion, cached?.Metadata?.ResourceVersion))
            {
                cache[KeyOf(item)] = item;
            }
            else
            {
                // This version (or a newer one) is cached already: this process wrote it and offered it
                // (Offer). Whoever wrote it knew what it wrote; waking its subscribers again would only
                // cost a reconcile that finds nothing to do.
                return;
            }
        }

        Changed?.Invoke(new ResourceChange<T>(type, item));
    }
}
