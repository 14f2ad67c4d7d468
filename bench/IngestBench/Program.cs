using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Net.Client;
using KubeCapture.Operator.Ingest;
using KubeCapture.Proto.V1;

namespace KubeCapture.Bench;

/// <summary>
/// usage: IngestBench write FILE SIZE            writes the benchmark bytes to FILE (for the plain PUT)
///        IngestBench upload URL SECRET SIZE     streams the same bytes through the ingest; prints seconds
/// The bytes are a fixed 8 MiB random block repeated, so both sides send exactly the same content.
/// </summary>
public static class Program
{
    private const int BlockSize = 8 << 20;
    private const int ChunkSize = 60 * 1024;

    public static async Task<int> Main(string[] args)
    {
        var block = new byte[BlockSize];
        new Random(42).NextBytes(block);
        switch (args)
        {
            case ["write", var file, var size]:
                await using (var output = File.Create(file))
                {
                    for (long offset = 0, total = long.Parse(size, CultureInfo.InvariantCulture); offset < total; offset += BlockSize)
                    {
                        await output.WriteAsync(block.AsMemory(0, (int)Math.Min(BlockSize, total - offset)));
                    }
                }

                return 0;
            case ["upload", var url, var secret, var size]:
                return await UploadAsync(new Uri(url), secret, long.Parse(size, CultureInfo.InvariantCulture), block);
            default:
                await Console.Error.WriteLineAsync("usage: IngestBench write FILE SIZE | upload URL SECRET SIZE");
                return 2;
        }
    }

    private static async Task<int> UploadAsync(Uri url, string secret, long total, byte[] block)
    {
        var uid = Guid.NewGuid().ToString("N");
        var target = new CaptureIdentity(uid, "bench", "throughput-" + uid[..8], "pod-0");
        using var channel = GrpcChannel.ForAddress(url, new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler() });
        var started = Stopwatch.StartNew();
        using var call = new KubeCapture.Proto.V1.Ingest.IngestClient(channel).Upload();
        await call.RequestStream.WriteAsync(new AgentMessage
        {
            Open = new Open
            {
                CaptureUid = target.CaptureUid,
                Namespace = target.Namespace,
                CaptureName = target.CaptureName,
                Pod = target.Pod,
                Token = new CaptureTokenIssuer(secret).Issue(target),
                SessionId = "bench",
            },
        });
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
            var inBlock = (int)(offset % BlockSize);
            var count = (int)Math.Min(Math.Min(ChunkSize, BlockSize - inBlock), total - offset);
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
        if (result is null || result.Sha256 != hash)
        {
            await Console.Error.WriteLineAsync($"upload failed: stored {result?.Sha256 ?? "nothing"}, expected {hash}");
            return 1;
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{seconds:0.000} {sent:0.000} {result.Uri} {hash}"));
        return 0;
    }
}
