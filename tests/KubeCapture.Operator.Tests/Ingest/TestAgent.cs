using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Proto.V1;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// Speaks the ingest protocol directly, with bytes the test controls (a deterministic pattern, so
/// any offset can be produced again after a resume): for large uploads and for faults a real
/// capture cannot produce on demand (a cut stream, a wrong SHA-256, a stranger's token).
/// </summary>
/// <param name="caPem">A TLS ingest: the CA its certificate must be issued by (as the agent trusts it).</param>
public sealed class TestAgent(Uri ingest, CaptureIdentity target, string token, System.Net.IPAddress? source = null, string? caPem = null) : IDisposable
{
    private readonly GrpcChannel _channel = GrpcChannel.ForAddress(ingest, new GrpcChannelOptions { HttpHandler = Handler(ingest, source, caPem) });

    public CaptureIdentity Target => target;

    public string SessionId { get; set; } = Guid.NewGuid().ToString("N");

    public long RetentionTtlSeconds { get; set; }

    /// <summary>Uploads snapshot N of the target's recording (Open.snapshot_index) instead of its own pcap.</summary>
    public int SnapshotIndex { get; set; }

    public static TestAgent For(OperatorHost host, CaptureIdentity target) =>
        new(host.IngestUrl, target, new CaptureTokenIssuer(OperatorHost.TokenSecret).Issue(target), caPem: host.IngestCaPem);

    public async Task<Upload> OpenAsync(CancellationToken cancellationToken = default)
    {
        var call = new KubeCapture.Proto.V1.Ingest.IngestClient(_channel).Upload(cancellationToken: cancellationToken);
        var accepted = await IngestHandshake.OpenAsync(call, IngestHandshake.Open(target.CaptureUid, target.Namespace, target.CaptureName, target.Pod, token, SessionId,
            RetentionTtlSeconds, agentVersion: "test", snapshotIndex: SnapshotIndex), cancellationToken);
        return new Upload(call, accepted.ResumeOffset);
    }

    /// <summary>Uploads <paramref name="size"/> pattern bytes in one stream and finishes; returns Stored and the SHA-256 sent.</summary>
    public async Task<(Stored Stored, string Sha256)> UploadWholeAsync(long size, CancellationToken cancellationToken = default)
    {
        using var upload = await OpenAsync(cancellationToken);
        await upload.SendPatternAsync(upload.ResumeOffset, size, cancellationToken);
        var sha = Pattern.Sha256(size);
        return (await upload.FinishAsync(size, sha, cancellationToken), sha);
    }

    public void Dispose() => _channel.Dispose();

    /// <summary>Connects from <paramref name="source"/> (e.g. 127.0.0.2 on lo: another "pod" of the same machine) when given.</summary>
    private static SocketsHttpHandler Handler(Uri ingest, System.Net.IPAddress? source, string? caPem)
    {
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true };
        if (caPem is not null)
        {
            var authority = KubeCapture.Contracts.Ingest.IngestAuthority.Parse(caPem);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                KubeCapture.Contracts.Ingest.IngestAuthority.Refusal(ingest, authority, certificate, chain, errors) is null;
        }

        if (source is not null)
        {
            handler.ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(source.AddressFamily, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new System.Net.IPEndPoint(source, 0));
                    await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                    return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        return handler;
    }

    public sealed class Upload(AsyncDuplexStreamingCall<AgentMessage, IngestMessage> call, long resumeOffset) : IDisposable
    {
        private readonly List<IngestMessage> _received = [];
        private readonly object _gate = new();
        private Task? _reader;

        public long ResumeOffset { get; } = resumeOffset;

        /// <summary>The highest durable offset acknowledged so far.</summary>
        public long Acknowledged
        {
            get
            {
                lock (_gate)
                {
                    return _received.Where(m => m.BodyCase == IngestMessage.BodyOneofCase.Ack).Select(m => m.Ack.DurableOffset).DefaultIfEmpty(0).Max();
                }
            }
        }

        public IReadOnlyList<IngestMessage> Received
        {
            get
            {
                lock (_gate)
                {
                    return [.. _received];
                }
            }
        }

        /// <summary>
        /// Sends the pattern's bytes from <paramref name="from"/> to <paramref name="to"/>. Once the ingest has
        /// ended the stream (it refused a chunk), the next write fails, as soon as the ingest's status arrives
        /// or a little later: sending stops there, and <see cref="FailureAsync"/> or <see cref="FinishAsync"/>
        /// says why, whichever write it was.
        /// </summary>
        public async Task SendPatternAsync(long from, long to, CancellationToken cancellationToken = default)
        {
            StartReading();
            var chunk = new byte[60 * 1024]; // as the agent: below the large-object heap
            for (var offset = from; offset < to;)
            {
                var count = (int)Math.Min(chunk.Length, to - offset);
                Pattern.Fill(offset, chunk.AsSpan(0, count));
                try
                {
                    await call.RequestStream.WriteAsync(new AgentMessage { Chunk = new Chunk { Offset = offset, Data = ByteString.CopyFrom(chunk, 0, count) } }, cancellationToken);
                }
                catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is RpcException or InvalidOperationException)
                {
                    return; // the call has ended: its status is the ingest's
                }

                offset += count;
            }
        }

        public Task SendAsync(AgentMessage message, CancellationToken cancellationToken = default)
        {
            StartReading();
            return call.RequestStream.WriteAsync(message, cancellationToken);
        }

        public async Task WaitForAckAsync(long atLeast, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (Acknowledged < atLeast)
            {
                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"no acknowledgement of {atLeast} bytes within {timeout.TotalSeconds}s (last {Acknowledged})");
                }

                if (_reader is { IsCompleted: true })
                {
                    await _reader;
                    throw new InvalidOperationException($"the ingest ended the stream before acknowledging {atLeast} bytes");
                }

                await Task.Delay(20);
            }
        }

        /// <summary>Sends Finish and returns Stored; throws the ingest's RpcException on failure.</summary>
        public async Task<Stored> FinishAsync(long total, string sha256, CancellationToken cancellationToken = default, string manifestJson = "")
        {
            await SendAsync(new AgentMessage { Finish = new Finish { TotalBytes = total, Sha256 = sha256, ManifestJson = manifestJson } }, cancellationToken);
            await call.RequestStream.CompleteAsync();
            await _reader!;
            lock (_gate)
            {
                return _received.LastOrDefault(m => m.BodyCase == IngestMessage.BodyOneofCase.Stored)?.Stored
                    ?? throw new InvalidOperationException("the stream ended without Stored");
            }
        }

        /// <summary>How the ingest ended the stream (the status it sent), once it has.</summary>
        public async Task<RpcException> FailureAsync()
        {
            StartReading();
            try
            {
                await _reader!.WaitAsync(TimeSpan.FromSeconds(30));
            }
            catch (RpcException e)
            {
                return e;
            }

            throw new InvalidOperationException("the ingest ended the stream without an error");
        }

        /// <summary>Breaks the stream as a dying agent or a cut network would (RST_STREAM, no Finish).</summary>
        public void Cut() => call.Dispose();

        public void Dispose() => call.Dispose();

        private void StartReading()
        {
            _reader ??= Task.Run(async () =>
            {
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    lock (_gate)
                    {
                        _received.Add(call.ResponseStream.Current);
                    }
                }
            });
        }
    }
}

/// <summary>Deterministic test bytes: the byte at any offset is a function of the offset alone.</summary>
public static class Pattern
{
    public static void Fill(long offset, Span<byte> destination)
    {
        for (var i = 0; i < destination.Length; i++)
        {
            var x = (ulong)(offset + i);
            x ^= x >> 7;
            x *= 0x9E3779B97F4A7C15UL;
            destination[i] = (byte)(x >> 56);
        }
    }

    public static string Sha256(long size)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        for (long offset = 0; offset < size;)
        {
            var count = (int)Math.Min(buffer.Length, size - offset);
            Fill(offset, buffer.AsSpan(0, count));
            hash.AppendData(buffer, 0, count);
            offset += count;
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
