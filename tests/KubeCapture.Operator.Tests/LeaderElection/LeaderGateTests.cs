using k8s;
using KubeCapture.Operator.LeaderElection;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.LeaderElection;

/// <summary>Replicas sharing a Lease (the emulator's, and the real kube-apiserver's): one reconciles; when it goes away, another takes over.</summary>
public sealed class LeaderGateTests
{
    [Fact]
    public async Task Only_one_replica_leads_and_the_other_takes_over_when_the_leader_stops()
    {
        await using var emulator = await KubernetesApiEmulator.StartAsync();
        emulator.AddNamespace("kubecapture-system");
        using var client = emulator.CreateClient();
        LeaderGate Replica(string id) => new(client, new LeaderElectionOptions
        {
            Namespace = "kubecapture-system",
            Identity = id,
            LeaseDuration = "4s",
            RenewDeadline = "3s",
            RetryPeriod = "200ms",
        }, NullLogger<LeaderGate>.Instance);

        var working = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>();
        Func<CancellationToken, Task> Work(string id) => async token =>
        {
            working[id] = true;
            try
            {
                await Task.Delay(Timeout.Infinite, token);
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                working[id] = false;
            }
        };

        using var stopA = new CancellationTokenSource();
        using var stopB = new CancellationTokenSource();
        var a = Replica("replica-a");
        var runA = a.RunAsync(Work("replica-a"), stopA.Token);
        await WaitUntil(() => a.IsLeading);
        var b = Replica("replica-b");
        var runB = b.RunAsync(Work("replica-b"), stopB.Token);
        await Task.Delay(1000);

        Assert.True(working.GetValueOrDefault("replica-a"));
        Assert.False(working.GetValueOrDefault("replica-b"));
        var lease = await client.CoordinationV1.ReadNamespacedLeaseAsync("kubecapture-operator", "kubecapture-system");
        Assert.Equal("replica-a", lease.Spec.HolderIdentity);

        await stopA.CancelAsync();
        await runA.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(working.GetValueOrDefault("replica-a"));
        await WaitUntil(() => working.GetValueOrDefault("replica-b"), TimeSpan.FromSeconds(15));
        lease = await client.CoordinationV1.ReadNamespacedLeaseAsync("kubecapture-operator", "kubecapture-system");
        Assert.Equal("replica-b", lease.Spec.HolderIdentity);

        await stopB.CancelAsync();
        await runB.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [SkippableFact]
    public async Task A_leader_that_shuts_down_releases_the_Lease_on_the_real_kube_apiserver_so_the_next_replica_leads_long_before_it_would_expire()
    {
        KubeApiServer.Require();
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-lease");
        using var client = server.AdminClient();
        LeaderGate Replica(string id) => new(client, new LeaderElectionOptions
        {
            Namespace = ns,
            Identity = id,
            LeaseDuration = "60s", // waiting it out would take a minute
            RenewDeadline = "40s",
            RetryPeriod = "200ms",
        }, NullLogger<LeaderGate>.Instance);
        static Task Idle(CancellationToken token) => Task.Delay(Timeout.Infinite, token).ContinueWith(_ => { }, TaskScheduler.Default);

        using var stopOld = new CancellationTokenSource();
        using var stopNew = new CancellationTokenSource();
        using var stopThird = new CancellationTokenSource();
        var old = Replica("old-pod");
        var runOld = old.RunAsync(Idle, stopOld.Token);
        await WaitUntil(() => old.IsLeading);
        var next = Replica("new-pod");
        var runNext = next.RunAsync(Idle, stopNew.Token);
        var third = Replica("standby-pod");
        var runThird = third.RunAsync(Idle, stopThird.Token);
        await Task.Delay(1000);
        Assert.False(next.IsLeading || third.IsLeading);

        // A replica that does not lead leaves the Lease alone when it stops.
        await stopThird.CancelAsync();
        await runThird.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("old-pod", (await client.CoordinationV1.ReadNamespacedLeaseAsync("kubecapture-operator", ns)).Spec.HolderIdentity);

        var stopped = DateTime.UtcNow;
        await stopOld.CancelAsync();
        await runOld.WaitAsync(TimeSpan.FromSeconds(10));
        await WaitUntil(() => next.IsLeading, TimeSpan.FromSeconds(10));

        Assert.True(DateTime.UtcNow - stopped < TimeSpan.FromSeconds(10), $"took over after {(DateTime.UtcNow - stopped).TotalSeconds:F1} s");
        var lease = await client.CoordinationV1.ReadNamespacedLeaseAsync("kubecapture-operator", ns);
        Assert.Equal("new-pod", lease.Spec.HolderIdentity);
        Assert.Equal(60, lease.Spec.LeaseDurationSeconds);
        await stopNew.CancelAsync();
        await runNext.WaitAsync(TimeSpan.FromSeconds(10));
    }

    private static async Task WaitUntil(Func<bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(50);
        }
    }
}
