using System.Diagnostics;
using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Contracts;

namespace KubeCapture.Operator.Ingest;

/// <summary>
/// This replica's hold on one target's upload Lease (<see cref="UploadOwnership"/>): renewed in the
/// background every <see cref="UploadOwnershipOptions.RenewPeriod"/>, with the stream's progress;
/// a stop or a handover another replica wrote into the Lease is passed on to the stream. When it
/// could not be renewed for the renew deadline, the stream writes nothing more (<see cref="WhenWritableAsync"/>
/// holds it, the agent keeps its bytes) before any other replica may find the Lease expired; a later
/// renewal that succeeds proves no one took it meanwhile, and writing resumes (a control-plane outage
/// costs no capture); one that finds it taken ends the stream (<see cref="IStreamOwner.Lose"/>).
/// Disposing it deletes the Lease, if still held.
/// </summary>
public sealed class UploadClaim : IAsyncDisposable
{
    private readonly IKubernetes _kubernetes;
    private readonly UploadOwnershipOptions _options;
    private readonly CaptureIdentity _target;
    private readonly IStreamOwner? _owner;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewing;
    private V1Lease _lease;
    private long _lastRenewStarted;
    private string? _progress;
    private KubeCapture.Contracts.Resources.RecorderStatus? _recorder; // a flight recording's state (armed, the ring's fill, ...)
    private bool _stopPassedOn;
    private volatile bool _lost;
    private volatile TaskCompletionSource? _paused;

    internal UploadClaim(IKubernetes kubernetes, UploadOwnershipOptions options, V1Lease lease, CaptureIdentity target, IStreamOwner? owner, long started, ILogger logger)
    {
        _kubernetes = kubernetes;
        _options = options;
        _lease = lease;
        _target = target;
        _owner = owner;
        _lastRenewStarted = started;
        _logger = logger;
        PassOn(lease);
        _renewing = owner is null ? Task.CompletedTask : Task.Run(RenewAsync);
    }

    public string LeaseName => _lease.Metadata.Name;

    /// <summary>True once the Lease was found taken by another replica: the stream was told to end.</summary>
    public bool Lost => _lost;

    /// <summary>False while the Lease is not known to be this replica's (not renewed within the renew deadline).</summary>
    public bool Writable => _paused is null;

    /// <summary>Raised when writing stops (false) or resumes (true).</summary>
    public event Action<bool>? WritableChanged;

    /// <summary>Completes at once while the Lease is renewed; else when a renewal succeeds again (or never, if it was taken: the stream is ended).</summary>
    public Task WhenWritableAsync(CancellationToken cancellationToken) => _paused is { } paused ? paused.Task.WaitAsync(cancellationToken) : Task.CompletedTask;

    /// <summary>What the stream has received so far, written into the Lease at the next renewal (for the leader's status).</summary>
    public void Report(long packets, long bytes, long droppedByKernel, KubeCapture.Contracts.Resources.RecorderStatus? recorder = null)
    {
        _progress = FormattableString.Invariant($"{packets} {bytes} {droppedByKernel}");
        _recorder = recorder ?? _recorder;
    }

    private async Task RenewAsync()
    {
        var token = _stop.Token;
        var wait = _options.RenewPeriod;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(wait, token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            var started = Stopwatch.GetTimestamp();
            var silent = Stopwatch.GetElapsedTime(_lastRenewStarted, started);
            if (silent >= _options.RenewDeadline)
            {
                Pause($"it could not renew its Lease {LeaseName} for {silent.TotalSeconds:0.#} s");
            }

            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(token);
                deadline.CancelAfter(_paused is null ? _options.RenewDeadline - silent : _options.RenewPeriod);
                _lease = await RenewOnceAsync(deadline.Token);
                _lastRenewStarted = started;
                wait = _options.RenewPeriod;
                Resume();
                PassOn(_lease);
            }
            catch (LeaseTakenException taken)
            {
                LoseAt($"replica {taken.Holder} holds its Lease {LeaseName} now");
                return;
            }
            catch (Exception e) when (!token.IsCancellationRequested)
            {
                _logger.LogWarning("{Namespace}/{Capture} pod {Pod}: renewing the upload Lease {Lease} failed ({Error}); retrying",
                    _target.Namespace, _target.CaptureName, _target.Pod, LeaseName, e.Message);
                if (Stopwatch.GetElapsedTime(_lastRenewStarted) is var since && since >= _options.RenewDeadline)
                {
                    Pause($"it could not renew its Lease {LeaseName} for {since.TotalSeconds:0.#} s");
                }

                wait = _options.RetryPeriod;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Pause(string why)
    {
        if (_paused is not null)
        {
            return;
        }

        _paused = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _logger.LogWarning("{Namespace}/{Capture} pod {Pod}: {Identity} writes nothing more of the upload until it renews its Lease: {Why} (the agent keeps its bytes)",
            _target.Namespace, _target.CaptureName, _target.Pod, _options.Identity, why);
        WritableChanged?.Invoke(false);
    }

    private void Resume()
    {
        if (Interlocked.Exchange(ref _paused, null) is { } paused)
        {
            _logger.LogInformation("{Namespace}/{Capture} pod {Pod}: {Identity} renewed its Lease again, no other replica took it: the upload goes on",
                _target.Namespace, _target.CaptureName, _target.Pod, _options.Identity);
            WritableChanged?.Invoke(true);
            paused.TrySetResult();
        }
    }

    /// <summary>One renewal: the Lease as last written, with a new renewTime and the progress; on a conflict (another replica annotated it) read again, still ours or taken.</summary>
    private async Task<V1Lease> RenewOnceAsync(CancellationToken cancellationToken)
    {
        var lease = _lease;
        for (var attempt = 1; ; attempt++)
        {
            lease.Spec.RenewTime = DateTime.UtcNow;
            if (_progress is { } progress)
            {
                lease.Metadata.Annotations = new Dictionary<string, string>(lease.Metadata.Annotations ?? new Dictionary<string, string>()) { [UploadOwnership.ProgressAnnotation] = progress };
            }

            if (_recorder is { } recorder)
            {
                lease.Metadata.Annotations[UploadOwnership.RecorderAnnotation] = k8s.KubernetesJson.Serialize(recorder);
            }

            try
            {
                return await _kubernetes.CoordinationV1.ReplaceNamespacedLeaseAsync(lease, LeaseName, _options.Namespace, cancellationToken: cancellationToken);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode is HttpStatusCode.Conflict or HttpStatusCode.NotFound && attempt < 5)
            {
                lease = e.Response.StatusCode == HttpStatusCode.NotFound ? null! : await _kubernetes.CoordinationV1.ReadNamespacedLeaseAsync(LeaseName, _options.Namespace, cancellationToken: cancellationToken);
                if (lease?.Spec?.HolderIdentity != _options.Identity)
                {
                    throw new LeaseTakenException(lease?.Spec?.HolderIdentity is { Length: > 0 } other ? other : "none (the Lease was deleted)");
                }
            }
        }
    }

    /// <summary>A stop or a handover for this stream's session, written into the Lease by another replica, told to the stream.</summary>
    private void PassOn(V1Lease lease)
    {
        var annotations = lease.Metadata.Annotations;
        if (_owner is null || annotations is null)
        {
            return;
        }

        if (!_stopPassedOn && annotations.TryGetValue(UploadOwnership.StopAnnotation, out var reason))
        {
            _stopPassedOn = true;
            _owner.RequestStop(reason);
        }

        if (UploadOwnership.Annotation(lease, UploadOwnership.HandoverAnnotation) == _owner.Session.Sha256)
        {
            _logger.LogInformation("{Namespace}/{Capture} pod {Pod}: a newer stream of the same agent session reached another replica: this one hands the upload over",
                _target.Namespace, _target.CaptureName, _target.Pod);
            _owner.Supersede();
        }
    }

    private void LoseAt(string why)
    {
        _lost = true;
        _logger.LogWarning("{Namespace}/{Capture} pod {Pod}: {Identity} stops writing the upload: {Why}; the agent resumes from the last acknowledged byte with the replica that takes it",
            _target.Namespace, _target.CaptureName, _target.Pod, _options.Identity, why);
        _owner?.Lose($"replica {_options.Identity} gave the upload up: {why}; resume from the last acknowledged byte");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _renewing;
        _stop.Dispose();
        if (_lost)
        {
            return; // another replica may hold it now; it expires otherwise
        }

        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            var lease = _lease;
            for (var attempt = 1; attempt <= 3; attempt++)
            {
                try
                {
                    await _kubernetes.CoordinationV1.DeleteNamespacedLeaseAsync(LeaseName, _options.Namespace,
                        new V1DeleteOptions { Preconditions = new V1Preconditions { ResourceVersion = lease.Metadata.ResourceVersion } }, cancellationToken: patience.Token);
                    return;
                }
                catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
                {
                    lease = await _kubernetes.CoordinationV1.ReadNamespacedLeaseAsync(LeaseName, _options.Namespace, cancellationToken: patience.Token);
                    if (lease.Spec?.HolderIdentity != _options.Identity)
                    {
                        return;
                    }
                }
            }
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }
        catch (Exception e)
        {
            _logger.LogWarning("{Namespace}/{Capture} pod {Pod}: could not release the upload Lease {Lease} ({Error}); another replica takes the target once it expires",
                _target.Namespace, _target.CaptureName, _target.Pod, LeaseName, e.Message);
        }
    }

    private sealed class LeaseTakenException(string holder) : Exception($"the Lease is held by {holder}")
    {
        public string Holder { get; } = holder;
    }
}
