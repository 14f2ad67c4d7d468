using k8s;
using KubeCapture.Operator.LeaderElection;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.LeaderElection;

/// <summary>Two replicas against the emulator's Lease: one reconciles; when it goes away, the other takes over.</summary>
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
