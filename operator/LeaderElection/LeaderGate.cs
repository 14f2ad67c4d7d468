using k8s;
using k8s.LeaderElection;
using k8s.LeaderElection.ResourceLock;
using KubeCapture.Agent.Cli;
using Microsoft.Extensions.Logging;

namespace KubeCapture.Operator.LeaderElection;

/// <summary>
/// Runs work only while this replica holds the Lease (KubernetesClient's LeaderElector): started
/// when leadership is acquired, cancelled when it is lost, started again if it comes back.
/// </summary>
public sealed class LeaderGate(IKubernetes kubernetes, LeaderElectionOptions options, ILogger<LeaderGate> logger)
{
    public string Identity { get; } = options.Identity is { Length: > 0 } id ? id
        : Environment.GetEnvironmentVariable("POD_NAME") is { Length: > 0 } pod ? pod
        : $"{Environment.MachineName}-{Environment.ProcessId}";

    public bool IsLeading { get; private set; }

    public async Task RunAsync(Func<CancellationToken, Task> whileLeading, CancellationToken cancellationToken)
    {
        if (!options.Enabled)
        {
            IsLeading = true;
            await whileLeading(cancellationToken);
            return;
        }

        var ns = options.Namespace is { Length: > 0 } configured ? configured
            : Environment.GetEnvironmentVariable("POD_NAMESPACE") is { Length: > 0 } own ? own : "default";
        var config = new LeaderElectionConfig(new LeaseLock(kubernetes, ns, options.LeaseName, Identity))
        {
            LeaseDuration = Duration(options.LeaseDuration, "LeaseDuration"),
            RenewDeadline = Duration(options.RenewDeadline, "RenewDeadline"),
            RetryPeriod = Duration(options.RetryPeriod, "RetryPeriod"),
        };
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
                term = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var token = term.Token;
                leading = Task.Run(() => whileLeading(token), CancellationToken.None);
            }
        };
        elector.OnStoppedLeading += () =>
        {
            lock (gate)
            {
                logger.LogWarning("{Identity} lost the Lease {Namespace}/{Lease}; stopping reconciliation", Identity, ns, options.LeaseName);
                IsLeading = false;
                term?.Cancel();
            }
        };
        elector.OnError += e => logger.LogWarning("leader election: {Error}", e.Message);
        try
        {
            await elector.RunAndTryToHoldLeadershipForeverAsync(cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            Task? running;
            lock (gate)
            {
                term?.Cancel();
                running = leading;
            }

            if (running is not null)
            {
                await running.ContinueWith(_ => { }, TaskScheduler.Default);
            }

            IsLeading = false;
            term?.Dispose();
        }
    }

    private static TimeSpan Duration(string text, string key) =>
        Quantities.TryParseDuration(text, out var value, out var error) ? value : throw new InvalidOperationException($"LeaderElection:{key}: {error}");
}
