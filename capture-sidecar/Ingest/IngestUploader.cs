using System.Net.Security;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using KubeCapture.Proto.V1;

namespace KubeCapture.Agent.Ingest;

/// <summary>
/// Streams the <see cref="UploadBuffer"/> to the operator's ingest: Open, then Chunks from the offset
/// the ingest asks for, Progress about once a second, and Finish with the SHA-256 and the manifest
/// once the pcap is complete. Acknowledged bytes are let go. A broken stream or an unreachable
/// ingest is retried with backoff, resuming from the ingest's durable offset, until
/// <see cref="IngestTarget.RetryBudget"/> passes without a successful connection.
/// </summary>
public sealed class IngestUploader : IDisposable
{
    /// <summary>Below the large-object-heap threshold (85,000 bytes), so neither side allocates chunks on the LOH.</summary>
    public const int ChunkBytes = 60 * 1024;
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(1);
    /// <summary>
    /// This process's session: 256 random bits, known only to this process (never logged, never in
    /// the spec). The ingest lets only this session continue the upload it opened, so someone else
    /// with the token cannot take it over, and a reconnect proves it is the same process.
    /// </summary>
    private readonly string _sessionId;
    private readonly int _snapshotIndex;
    private readonly GrpcChannel _channel;
    private volatile string? _tlsRefusal;
    private volatile TlsHandshakeProbe? _lastConnection;

    /// <summary>
    /// <paramref name="snapshotIndex"/> N &gt; 0 uploads snapshot N of a recording (Open.snapshot_index), under the session of
    /// the recording's own uploader (<paramref name="session"/>), which holds it with the same secret.
    /// </summary>
    public IngestUploader(IngestTarget target, UploadBuffer buffer, Action<string> stopRequested, TextWriter log, int snapshotIndex = 0, IngestUploader? session = null)
    {
        _sessionId = session?._sessionId ?? System.Security.Cryptography.RandomNumberGenerator.GetHexString(64, lowercase: true);
        _snapshotIndex = snapshotIndex;
        this.target = target;
        this.buffer = buffer;
        this.stopRequested = stopRequested;
        this.log = log;
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(5),
            KeepAlivePingDelay = TimeSpan.FromSeconds(10),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            EnableMultipleHttp2Connections = true,
        };
        if (target.Authority is { } authority)
        {
            // TLS: trust exactly the given CA; a refusal is remembered so the upload fails for good, saying why.
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                    (_tlsRefusal ??= IngestAuthority.Refusal(target.Url, authority, certificate, chain, errors)) is null,
            };
            handler.ConnectCallback = async (context, cancellationToken) =>
                _lastConnection = await TlsHandshakeProbe.ConnectAsync(context.DnsEndPoint, cancellationToken);
        }

        _channel = GrpcChannel.ForAddress(target.Url, new GrpcChannelOptions
        {
            HttpHandler = handler,
            MaxReceiveMessageSize = IngestMessageLimits.IngestMessage,
            MaxSendMessageSize = IngestMessageLimits.AgentMessage,
        });
    }

    private readonly IngestTarget target;
    private readonly UploadBuffer buffer;
    private readonly Action<string> stopRequested;
    private readonly TextWriter log;

    private volatile Progress? _progress;
    private volatile FinishInfo? _finish;

    /// <summary>A recording's stream: the operator asked for a snapshot (its requester, and the alert that asked, if one did).</summary>
    public Action<string, string?>? SnapshotRequested { get; init; }

    /// <summary>Connections made so far (1 when nothing broke).</summary>
    public int Connections { get; private set; }

    /// <summary>The latest counters, sent with the next Progress (thread-safe).</summary>
    public void Report(long packets, long bytes, long droppedByKernel, long droppedByInterface, string? summaryJson, RecorderProgress? recorder = null) =>
        _progress = new Progress
        {
            Packets = packets,
            Bytes = bytes,
            DroppedByKernel = droppedByKernel,
            DroppedByInterface = droppedByInterface,
            SummaryJson = summaryJson ?? "",
            Recorder = recorder,
        };

    /// <summary>The pcap is complete: send Finish once every byte is sent.</summary>
    public void Finish(string sha256, string manifestJson)
    {
        _finish = new FinishInfo(sha256, manifestJson);
        buffer.Complete();
    }

    /// <summary>Uploads until the pcap is stored, or fails with <see cref="IngestFailedException"/>.</summary>
    public async Task<StoredPcap> RunAsync(CancellationToken cancellationToken)
    {
        var client = new KubeCapture.Proto.V1.Ingest.IngestClient(_channel);
        var lastConnected = DateTime.UtcNow;
        var delay = TimeSpan.FromMilliseconds(200);
        while (true)
        {
            var connected = false;
            try
            {
                return await AttemptAsync(client, () =>
                {
                    connected = true;
                    lastConnected = DateTime.UtcNow;
                    delay = TimeSpan.FromMilliseconds(200);
                }, cancellationToken);
            }
            catch (IngestFailedException e)
            {
                buffer.Fail(e);
                throw;
            }
            catch (RpcException e) when (!IsTransient(e.StatusCode))
            {
                var failure = new IngestFailedException($"the ingest refused the upload ({e.StatusCode}): {e.Status.Detail}", e);
                buffer.Fail(failure);
                throw failure;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && TlsRefusal() is { } refusal)
            {
                var failure = new IngestFailedException(refusal, e);
                buffer.Fail(failure);
                throw failure;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                if (connected)
                {
                    lastConnected = DateTime.UtcNow;
                }

                var reason = e is RpcException rpc ? $"{rpc.StatusCode}: {rpc.Status.Detail}" : e.Message;
                if (DateTime.UtcNow - lastConnected + delay > target.RetryBudget)
                {
                    var failure = new IngestFailedException(
                        $"the ingest at {target.Url} was unreachable for {target.RetryBudget.TotalSeconds:0.#}s ({reason}); {buffer.End - buffer.Acknowledged} bytes captured were not stored", e);
                    buffer.Fail(failure);
                    throw failure;
                }

                log.WriteLine($"kubecapture-agent: upload interrupted at byte {buffer.Acknowledged} acknowledged ({reason}); reconnecting in {delay.TotalMilliseconds:0} ms");
                log.Flush();
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
    }

    private async Task<StoredPcap> AttemptAsync(KubeCapture.Proto.V1.Ingest.IngestClient client, Action onAccepted, CancellationToken cancellationToken)
    {
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var headers = target.TraceParent is { } traceParent ? new Metadata { { "traceparent", traceParent } } : null;
        using var call = client.Upload(headers, cancellationToken: attempt.Token);
        Connections++;
        var accepted = await IngestHandshake.OpenAsync(call, IngestHandshake.Open(target.CaptureUid, target.Namespace, target.CaptureName, target.Pod, target.Token, _sessionId,
            (long)(target.Retention?.TotalSeconds ?? 0), Capture.Manifests.AgentVersion, _snapshotIndex), attempt.Token);
        if (accepted.PartSize > 0 && buffer.Capacity < 2 * accepted.PartSize + ChunkBytes)
        {
            throw new IngestFailedException($"the ingest stores parts of {accepted.PartSize} bytes, but the agent keeps only {buffer.Capacity} bytes unacknowledged; it needs at least {2 * accepted.PartSize + ChunkBytes}");
        }

        var offset = accepted.ResumeOffset;
        if (offset < buffer.Acknowledged || offset > buffer.End)
        {
            throw new IngestFailedException($"the ingest asks to resume at byte {offset}, but this agent holds bytes {buffer.Acknowledged} to {buffer.End}: the upload cannot continue");
        }

        buffer.Acknowledge(offset);
        onAccepted();
        var receiving = ReceiveAsync(call.ResponseStream, attempt);
        try
        {
            await SendAsync(call.RequestStream, offset, receiving, attempt.Token);
            return await receiving;
        }
        catch
        {
            attempt.Cancel();
            try
            {
                await receiving; // its error explains best why the attempt broke
            }
            catch (RpcException e) when (e.StatusCode != StatusCode.Cancelled)
            {
                throw;
            }
            catch (Exception)
            {
                // cancelled along with the attempt
            }

            throw;
        }
    }

    private async Task SendAsync(IClientStreamWriter<AgentMessage> requests, long offset, Task<StoredPcap> receiving, CancellationToken cancellationToken)
    {
        var chunk = new byte[ChunkBytes];
        var nextProgress = DateTime.UtcNow;
        while (true)
        {
            if (receiving.IsCompleted)
            {
                await receiving; // the ingest ended the stream (an error, or an early Stored)
                return;
            }

            var changed = buffer.ChangedAsync();
            if (DateTime.UtcNow >= nextProgress && _progress is { } progress)
            {
                await requests.WriteAsync(new AgentMessage { Progress = progress }, cancellationToken);
                nextProgress = DateTime.UtcNow + ProgressInterval;
            }

            var count = buffer.Read(offset, chunk);
            if (count > 0)
            {
                // Wrapped, not copied: gRPC serializes the message into its own buffer within WriteAsync, and
                // the chunk is refilled only after it returns. A copy per chunk left a snapshot's worth of
                // garbage for the GC to collect (bench/recorder-bench.sh, record --ingest: 269 MiB peak).
                await requests.WriteAsync(new AgentMessage { Chunk = new Chunk { Offset = offset, Data = UnsafeByteOperations.UnsafeWrap(chunk.AsMemory(0, count)) } }, cancellationToken);
                offset += count;
                continue;
            }

            if (buffer.IsCompleted && _finish is { } finish && offset == buffer.End)
            {
                if (_progress is { } last)
                {
                    await requests.WriteAsync(new AgentMessage { Progress = last }, cancellationToken);
                }

                await requests.WriteAsync(new AgentMessage { Finish = new Finish { TotalBytes = offset, Sha256 = finish.Sha256, ManifestJson = finish.ManifestJson } }, cancellationToken);
                await requests.CompleteAsync();
                return;
            }

            await Task.WhenAny(changed, receiving, Task.Delay(ProgressInterval, cancellationToken));
        }
    }

    private async Task<StoredPcap> ReceiveAsync(IAsyncStreamReader<IngestMessage> responses, CancellationTokenSource attempt)
    {
        await Task.Yield();
        while (await responses.MoveNext(attempt.Token))
        {
            var message = responses.Current;
            switch (message.BodyCase)
            {
                case IngestMessage.BodyOneofCase.Ack:
                    buffer.Acknowledge(message.Ack.DurableOffset);
                    break;
                case IngestMessage.BodyOneofCase.Stop:
                    stopRequested(message.Stop.Reason);
                    break;
                case IngestMessage.BodyOneofCase.Snapshot:
                    SnapshotRequested?.Invoke(message.Snapshot.Requester, message.Snapshot.Alert is { Length: > 0 } alert ? alert : null);
                    break;
                case IngestMessage.BodyOneofCase.Stored:
                    var stored = message.Stored;
                    return new StoredPcap(stored.Uri, stored.Size, stored.Sha256, stored.ExpiresAt.Length > 0 ? stored.ExpiresAt : null);
            }
        }

        throw new RpcException(new Status(StatusCode.Unavailable, "the ingest ended the stream before the pcap was stored"));
    }

    /// <summary>Why the ingest's TLS was refused, if it was: its certificate, or a server that answered in plain text.</summary>
    private string? TlsRefusal() => _tlsRefusal ?? (_lastConnection?.AnsweredInPlainText == true
        ? $"the ingest at {target.Url} answered in plain text, not TLS (an h2c server?): refusing to send the capture over an unencrypted connection"
        : null);

    /// <summary>
    /// Retried: the ingest or storage is away, or a new operator does not know this pod's addresses
    /// yet (UNAVAILABLE until it reconciles the capture). Fatal: everything that says this agent may
    /// not upload (UNAUTHENTICATED: wrong token; PERMISSION_DENIED: not from the target pod's
    /// addresses) or that the upload cannot go on (INVALID_ARGUMENT, FAILED_PRECONDITION, DATA_LOSS).
    /// </summary>
    private static bool IsTransient(StatusCode code) => code is StatusCode.Unavailable or StatusCode.Internal or StatusCode.Unknown
        or StatusCode.Cancelled or StatusCode.DeadlineExceeded or StatusCode.Aborted or StatusCode.ResourceExhausted;

    public void Dispose() => _channel.Dispose();

    private sealed record FinishInfo(string Sha256, string ManifestJson);
}
