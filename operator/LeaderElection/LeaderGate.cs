using k8s;
using k8s.LeaderElection;
using k8s.LeaderElection.ResourceLock;
using KubeCapture.Contracts;
using KubeCapture.Operator.Configuration;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.LeaderElection;

/// <summary>
/// Runs work only while this replica holds the Lease (KubernetesClient's LeaderElector): started
/// when leadership is acquired, cancelled when it is lost, started again if it comes back.
///
/// Losing the Lease, or the API not answering at all (a control-plane upgrade, an etcd hiccup),
/// never ends the process: unlike controller-runtime, which exits on a lost Lease and lets the
/// kubelet restart it, this process also carries live uploads in its ingest, and exiting would cut
/// every agent's stream. Reconciliation stops at once; the election is joined again with backoff
/// until the API answers, and reconciliation resumes when the Lease is held again. On shutdown the
/// Lease is released, so that a rollout's next replica does not wait out its duration.
/// </summary>
public sealed class LeaderGate(IKubernetes kubernetes, LeaderElectionOptions options, ILogger<LeaderGate> logger, TimeProvider? time = null)
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);
    private readonly TimeProvider clock = time ?? TimeProvider.System;

    public string Identity { get; } = ReplicaIdentity.Of(options.Identity);

    public bool IsLeading { get; private set; }

    /// <summary>How many times the election was joined again after it failed (for tests and logs).</summary>
    public int Rejoins { get; private set; }

    public async Task RunAsync(Func<CancellationToken, Task> whileLeading, CancellationToken cancellationToken)
    {
        if (!options.Enabled)
        {
            IsLeading = true;
            await whileLeading(cancellationToken);
            return;
        }

        var ns = ReplicaIdentity.NamespaceOf(options.Namespace);
        var retry = Duration(options.RetryPeriod, "RetryPeriod");
        var config = new LeaderElectionConfig(new LeaseLock(kubernetes, ns, options.LeaseName, Identity))
        {
            LeaseDuration = Duration(options.LeaseDuration, "LeaseDuration"),
            RenewDeadline = Duration(options.RenewDeadline, "RenewDeadline"),
            RetryPeriod = retry,
        };
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await ElectAsync(config, ns, whileLeading, cancellationToken);
                failures = 0;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                failures++;
                Rejoins++;
                var delay = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, retry.Ticks * (1L << Math.Min(failures, 5))));
                logger.LogWarning("leader election for Lease {Namespace}/{Lease} failed ({Error}); the ingest keeps serving; waiting {Delay} s for the Kubernetes API before joining again",
                    ns, options.LeaseName, e.Message, delay.TotalSeconds);
                try
                {
                    await Task.Delay(delay, clock, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>One election: until it ends (throws) or shutdown; whatever runs while leading is stopped before it returns.</summary>
    private async Task ElectAsync(LeaderElectionConfig config, string ns, Func<CancellationToken, Task> whileLeading, CancellationToken cancellationToken)
    {
        using var elector = new LeaderElector(config);
        CancellationTokenSource? term = null;
        Task? leading = null;
        var gate = new Lock();
        elector.OnStartedLeading += () =>
        {
            lock (gate)
            {
                logger.LogInformation("{Identity} leads (Lease {Namespace}/{Lease})", Identity, ns, options.LeaseName);
                IsLeading = true;
                term?.Dispose();
                term = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var token = term.Token;
                leading = Task.Run(() => whileLeading(token), CancellationToken.None);
            }
        };
        elector.OnStoppedLeading += () =>
        {
            lock (gate)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    logger.LogInformation("{Identity} stops leading: shutting down", Identity);
                }
                else
                {
                    logger.LogWarning("{Identity} lost the Lease {Namespace}/{Lease}; stopping reconciliation (the ingest keeps serving)", Identity, ns, options.LeaseName);
                }

                IsLeading = false;
                term?.Cancel();
            }
        };
        elector.OnError += e => logger.LogWarning("leader election: {Error}", e.Message);
        try
        {
            await elector.RunAndTryToHoldLeadershipForeverAsync(cancellationToken);
        }
        finally
        {
            Task? running;
            lock (gate)
            {
                IsLeading = false;
                term?.Cancel();
                running = leading;
            }

            if (running is not null)
            {
                await running.ContinueWith(_ => { }, TaskScheduler.Default);
            }

            term?.Dispose();
            if (cancellationToken.IsCancellationRequested)
            {
                await ReleaseAsync(ns); // the elector has already reported "stopped leading" by now: the Lease itself says who holds it
            }
        }
    }

    /// <summary>
    /// On shutdown, after reconciliation has stopped: gives the Lease up (no holder, as client-go's
    /// ReleaseOnCancel does), so that the next replica (a rollout's new pod) leads within its retry
    /// period instead of waiting out the lease duration. Only if the Lease names this replica (the
    /// update carries the resourceVersion read); best effort, a few seconds at most.
    /// </summary>
    private async Task ReleaseAsync(string ns)
    {
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            var lease = await kubernetes.CoordinationV1.ReadNamespacedLeaseAsync(options.LeaseName, ns, cancellationToken: patience.Token);
            if (lease.Spec?.HolderIdentity != Identity)
            {
                return;
            }

            var now = clock.GetUtcNow().UtcDateTime;
            lease.Spec.HolderIdentity = ""; // as client-go releases it: KubernetesClient's elector takes an empty holder as free (with none at all it did not take over)
            lease.Spec.LeaseDurationSeconds = 1;
            lease.Spec.RenewTime = now;
            lease.Spec.AcquireTime = now;
            await kubernetes.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, options.LeaseName, ns, cancellationToken: patience.Token);
            logger.LogInformation("{Identity} released the Lease {Namespace}/{Lease} on shutdown", Identity, ns, options.LeaseName);
        }
        catch (Exception e)
        {
            logger.LogWarning("{Identity} could not release the Lease {Namespace}/{Lease} on shutdown ({Error}); the next replica leads once it expires",
                Identity, ns, options.LeaseName, e.Message);
        }
    }

    /// <summary>Throws naming the key when a Lease timing does not parse (checked at start, before the host runs).</summary>
    public static void Validate(LeaderElectionOptions options)
    {
        _ = Duration(options.LeaseDuration, "LeaseDuration");
        _ = Duration(options.RenewDeadline, "RenewDeadline");
        _ = Duration(options.RetryPeriod, "RetryPeriod");
    }

    private static TimeSpan Duration(string text, string key) =>
        Quantities.TryParseDuration(text, out var value, out var error) ? value : throw new OperatorConfigurationException($"LeaderElection:{key}: {error}");
}
