using System.Net;
using KubeCapture.Contracts;
using KubeCapture.Operator.Configuration;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Certificates;

/// <summary>
/// Loads the serving certificate at start and keeps it current: in Managed mode from the Secret
/// (created or renewed as due, then waiting until the next renewal is due — nothing periodic); in
/// Mounted mode from the files, loaded again when they change. Publishes the CA bundle to the
/// configured APIServices and webhook configurations. Failures are retried with backoff.
/// </summary>
public sealed class ServingCertificateRotation(
    IServiceProvider services,
    IOptions<ServingCertificateOptions> options,
    ServingCertificateSource source,
    ILogger<ServingCertificateRotation> logger,
    TimeProvider time) : BackgroundService
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMinutes(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        var backoff = TimeSpan.FromSeconds(1);
        using var changed = o.Mode == ServingCertificateModes.Mounted ? WatchFiles(o) : null;
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan next;
            try
            {
                next = o.Mode == ServingCertificateModes.Mounted ? await LoadMountedAsync(o, stoppingToken) : await EnsureManagedAsync(o, stoppingToken);
                backoff = TimeSpan.FromSeconds(1);
            }
            catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning("serving certificate not ready ({Mode}): {Error}; retrying in {Backoff}", o.Mode, e.Message, backoff);
                next = backoff;
                backoff = backoff * 2 > MaxBackoff ? MaxBackoff : backoff * 2;
            }

            try
            {
                if (changed is null)
                {
                    await Task.Delay(next, time, stoppingToken);
                }
                else
                {
                    await Task.WhenAny(Task.Delay(next, time, stoppingToken), changed.NextAsync(stoppingToken));
                    stoppingToken.ThrowIfCancellationRequested();
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<TimeSpan> EnsureManagedAsync(ServingCertificateOptions o, CancellationToken cancellationToken)
    {
        var wanted = ServingCertificateConfiguration.Requirements(o);
        var kubernetes = services.GetRequiredService<k8s.IKubernetes>();
        var secret = new ServingCertificateSecret(kubernetes, ServingCertificateConfiguration.Namespace(o), o.SecretName, logger);
        var now = time.GetUtcNow();
        var material = await secret.EnsureAsync(wanted, now, cancellationToken);
        source.Set(material.Serving.ToX509(), material.CaBundlePem);
        await services.GetRequiredService<CaBundlePublisher>().PublishAsync(material.CaBundlePem, cancellationToken);
        var wait = material.RenewAt(wanted.RenewBefore) - time.GetUtcNow();
        // Task.Delay takes at most about 49 days; waking early only reads the Secret again.
        return wait < TimeSpan.FromMinutes(1) ? TimeSpan.FromMinutes(1) : wait > TimeSpan.FromDays(30) ? TimeSpan.FromDays(30) : wait;
    }

    private async Task<TimeSpan> LoadMountedAsync(ServingCertificateOptions o, CancellationToken cancellationToken)
    {
        var certificate = new PemCertificate(await File.ReadAllTextAsync(o.CertificateFile, cancellationToken), await File.ReadAllTextAsync(o.KeyFile, cancellationToken));
        var loaded = certificate.ToX509();
        var authority = o.CaFile.Length > 0 ? await File.ReadAllTextAsync(o.CaFile, cancellationToken) : null;
        source.Set(loaded, authority);
        logger.LogInformation("serving certificate loaded from {File} (expires {NotAfter:O})", o.CertificateFile, loaded.NotAfter.ToUniversalTime());
        if (authority is not null && CaBundlePublisher.Publishes(o))
        {
            await services.GetRequiredService<CaBundlePublisher>().PublishAsync(authority, cancellationToken);
        }

        return TimeSpan.FromDays(1);
    }

    /// <summary>Signals when anything in the mounted files' directories changes (a Secret volume swaps its ..data symlink).</summary>
    private static FileChanges WatchFiles(ServingCertificateOptions o) =>
        new(new[] { o.CertificateFile, o.KeyFile, o.CaFile }.Where(f => f.Length > 0).Select(f => Path.GetDirectoryName(Path.GetFullPath(f))!).Distinct());

    private sealed class FileChanges : IDisposable
    {
        private readonly List<FileSystemWatcher> watchers = [];
        private TaskCompletionSource signal = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public FileChanges(IEnumerable<string> directories)
        {
            foreach (var directory in directories.Where(Directory.Exists))
            {
                var watcher = new FileSystemWatcher(directory) { IncludeSubdirectories = false, EnableRaisingEvents = true };
                watcher.Changed += (_, _) => signal.TrySetResult();
                watcher.Created += (_, _) => signal.TrySetResult();
                watcher.Renamed += (_, _) => signal.TrySetResult();
                watchers.Add(watcher);
            }
        }

        public async Task NextAsync(CancellationToken cancellationToken)
        {
            await signal.Task.WaitAsync(cancellationToken);
            // Let the writer finish (certificate and key are replaced together), then take the next change.
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken);
            signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        public void Dispose()
        {
            foreach (var watcher in watchers)
            {
                watcher.Dispose();
            }
        }
    }
}

/// <summary>Reads and checks the ServingCertificate section: every bad value named.</summary>
public static class ServingCertificateConfiguration
{
    public static string Namespace(ServingCertificateOptions o) =>
        o.Namespace.Length > 0 ? o.Namespace : Environment.GetEnvironmentVariable("POD_NAMESPACE") is { Length: > 0 } own ? own : "default";

    public static ServingRequirements Requirements(ServingCertificateOptions o)
    {
        var ips = o.IpAddresses.Select(text => IPAddress.TryParse(text, out var ip) ? ip
            : throw new OperatorConfigurationException($"ServingCertificate:IpAddresses: '{text}' is not an IP address")).ToList();
        if (o.DnsNames.Count == 0 && ips.Count == 0)
        {
            throw new OperatorConfigurationException("ServingCertificate: give at least one of DnsNames or IpAddresses (the names clients reach the operator by)");
        }

        var validity = Duration(o.Validity, "Validity");
        var authorityValidity = Duration(o.AuthorityValidity, "AuthorityValidity");
        var renewBefore = Duration(o.RenewBefore, "RenewBefore");
        if (renewBefore >= validity || renewBefore >= authorityValidity)
        {
            throw new OperatorConfigurationException($"ServingCertificate:RenewBefore ({o.RenewBefore}) must be shorter than Validity ({o.Validity}) and AuthorityValidity ({o.AuthorityValidity})");
        }

        return new ServingRequirements("kubecapture-operator-ca", o.DnsNames, ips, validity, authorityValidity, renewBefore);
    }

    /// <summary>Every problem of the section, empty when it is valid.</summary>
    public static IReadOnlyList<string> Problems(ServingCertificateOptions o)
    {
        if (o.Mode == ServingCertificateModes.Mounted)
        {
            var problems = new List<string>();
            if (o.CertificateFile.Length == 0 || o.KeyFile.Length == 0)
            {
                problems.Add("ServingCertificate:Mode is Mounted: set CertificateFile and KeyFile (e.g. /tls/tls.crt and /tls/tls.key)");
            }

            return problems;
        }

        if (o.Mode != ServingCertificateModes.Managed)
        {
            return [$"ServingCertificate:Mode '{o.Mode}' is neither {ServingCertificateModes.Managed} nor {ServingCertificateModes.Mounted}"];
        }

        if (o.SecretName.Length == 0)
        {
            return ["ServingCertificate:SecretName is empty"];
        }

        try
        {
            Requirements(o);
            return [];
        }
        catch (InvalidOperationException e)
        {
            return [e.Message];
        }
    }

    private static TimeSpan Duration(string text, string key)
    {
        if (!Quantities.TryParseDuration(text, out var value, out var error))
        {
            throw new OperatorConfigurationException($"ServingCertificate:{key}: {error}");
        }

        return value > TimeSpan.Zero ? value : throw new OperatorConfigurationException($"ServingCertificate:{key} must be positive, not '{text}'");
    }
}
