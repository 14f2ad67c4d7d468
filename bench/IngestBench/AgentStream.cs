using System.Diagnostics;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Net.Client;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Proto.V1;

namespace KubeCapture.Bench;

/// <summary>
/// One capture target's upload as the agent makes it: Open with the target's token and a fresh
/// session, 60 KiB chunks hashed as they are sent, Finish with the SHA-256, then wait for Stored
/// and check its SHA-256. Each upload is a new capture (a new UID). The environment's CHUNK_BYTES
/// sends chunks of another size, to measure what the message size costs.
/// </summary>
public sealed class AgentStream(GrpcChannel channel, string secret, byte[] block)
{
    /// <summary>What the agent sends in one Chunk (capture-sidecar's IngestUploader.ChunkBytes), unless CHUNK_BYTES says otherwise.</summary>
    private static readonly int ChunkSize = int.TryParse(Environment.GetEnvironmentVariable("CHUNK_BYTES"), out var bytes) && bytes > 0 ? bytes : 60 * 1024;

    public async Task<Upload> UploadAsync(long total)
    {
        var uid = Guid.NewGuid().ToString("N");
        var target = new CaptureIdentity(uid, "bench", "throughput-" + uid[..8], "pod-0");
        var started = Stopwatch.StartNew();
        using var call = new KubeCapture.Proto.V1.Ingest.IngestClient(channel).Upload();
        await IngestHandshake.OpenAsync(call, IngestHandshake.Open(target.CaptureUid, target.Namespace, target.CaptureName, target.Pod, new CaptureTokenIssuer(secret).Issue(target),
            RandomNumberGenerator.GetHexString(64, lowercase: true)), CancellationToken.None);
        var responses = Task.Run(async () =>
        {
            Stored? stored = null;
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                if (call.ResponseStream.Current.BodyCase == IngestMessage.BodyOneofCase.Stored)
                {
                    stored = call.ResponseStream.Current.Stored;
                }
            }

            return stored;
        });
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (long offset = 0; offset < total;)
        {
            var inBlock = (int)(offset % block.Length);
            var count = (int)Math.Min(Math.Min(ChunkSize, block.Length - inBlock), total - offset);
            var data = block.AsMemory(inBlock, count);
            sha.AppendData(data.Span);
            await call.RequestStream.WriteAsync(new AgentMessage { Chunk = new Chunk { Offset = offset, Data = UnsafeByteOperations.UnsafeWrap(data) } });
            offset += count;
        }

        var hash = Convert.ToHexStringLower(sha.GetHashAndReset());
        var sent = started.Elapsed.TotalSeconds;
        await call.RequestStream.WriteAsync(new AgentMessage { Finish = new Finish { TotalBytes = total, Sha256 = hash } });
        await call.RequestStream.CompleteAsync();
        var result = await responses;
        var seconds = started.Elapsed.TotalSeconds;
        return result is not null && result.Sha256 == hash
            ? new Upload(seconds, sent, result.Uri, hash)
            : throw new InvalidOperationException($"upload of {target.CaptureName} failed: stored {result?.Sha256 ?? "nothing"}, expected {hash}");
    }

    public sealed record Upload(double Seconds, double SentAfter, string Uri, string Sha256);
}
