using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Google.Protobuf;
using Grpc.Net.Client;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Storage;
using KubeCapture.Proto.V1;
using KubeCapture.Testing.S3;

namespace KubeCapture.Bench;

/// <summary>
/// usage: IngestBench write FILE SIZE            writes the benchmark bytes to FILE (for the plain PUT)
///        IngestBench upload URL SECRET SIZE     streams the same bytes through the ingest; prints seconds
///        IngestBench put S3 FILE KEY            one signed PUT of FILE (read into memory first), with the
///                                               operator's own S3 code (S3Signer, HttpClient); prints seconds
///        IngestBench multipart S3 FILE PART N   a bare multipart upload of FILE through the operator's
///                                               S3ArtifactStore, N parts in flight, no ingest; prints seconds
///        IngestBench sha S3 KEY                 SHA-256 of a stored object (downloaded, hashed on the fly)
///        IngestBench serve-rgw FILE             starts the tests' Ceph RGW (CephRgwFixture), writes
///                                               "ENDPOINT BUCKET ACCESS SECRET DIR" to FILE, runs until stdin closes
/// S3 is "ENDPOINT,BUCKET,ACCESS,SECRET". The bytes are a fixed 8 MiB random block repeated, so every
/// path sends exactly the same content.
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
            case ["put", var s3, var file, var key]:
                return await PutAsync(S3Of(s3), file, key);
            case ["multipart", var s3, var file, var part, var inFlight]:
                return await MultipartAsync(S3Of(s3), file, int.Parse(part, CultureInfo.InvariantCulture), int.Parse(inFlight, CultureInfo.InvariantCulture));
            case ["sha", var s3, var key]:
                return await ShaAsync(S3Of(s3), key);
            case ["serve-rgw", var envFile]:
                await using (var rgw = await CephRgwFixture.StartAsync("kubecapture"))
                {
                    await File.WriteAllTextAsync(envFile, $"{rgw.Endpoint} {rgw.Bucket} {CephRgwFixture.AccessKey} {CephRgwFixture.SecretKey} {rgw.Directory}\n");
                    await Console.In.ReadToEndAsync(); // until the script closes our stdin (or SIGTERM: ProcessExit stops Ceph)
                }

                await CephRgwFixture.ShutdownAsync();
                return 0;
            default:
                await Console.Error.WriteLineAsync("usage: IngestBench write FILE SIZE | upload URL SECRET SIZE | put S3 FILE KEY | multipart S3 FILE PART N | sha S3 KEY | serve-rgw FILE");
                return 2;
        }
    }

    private static S3Options S3Of(string text) => text.Split(',') is [var endpoint, var bucket, var access, var secret]
        ? new S3Options { Endpoint = endpoint, Bucket = bucket, AccessKey = access, SecretKey = secret }
        : throw new ArgumentException("S3 is ENDPOINT,BUCKET,ACCESS,SECRET");

    private static async Task<int> PutAsync(S3Options s3, string file, string key)
    {
        var data = await File.ReadAllBytesAsync(file);
        using var http = new HttpClient(new SocketsHttpHandler()) { Timeout = TimeSpan.FromMinutes(10) };
        var started = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Put, $"{s3.Endpoint.TrimEnd('/')}/{s3.Bucket}/{S3Signer.Encode(key, true)}") { Content = new ByteArrayContent(data) };
        new S3Signer(s3.Region, s3.AccessKey, s3.SecretKey).Sign(request, data, DateTime.UtcNow); // signs the payload's SHA-256, as the ingest's parts are
        using var response = await http.SendAsync(request);
        if (!response.IsSuccessStatusCode)
        {
            await Console.Error.WriteLineAsync($"PUT failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            return 1;
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{started.Elapsed.TotalSeconds:0.000}"));
        return 0;
    }

    private static async Task<int> MultipartAsync(S3Options s3, string file, int partSize, int inFlight)
    {
        using var store = new S3ArtifactStore(s3, "multipart");
        var target = new CaptureIdentity(Guid.NewGuid().ToString("N"), "bench", "multipart", "pod-0");
        await using var input = File.OpenRead(file);
        var started = Stopwatch.StartNew();
        var uploadId = await store.BeginUploadAsync(target, null, CancellationToken.None);
        var running = new List<Task<UploadedPart>>();
        var parts = new List<UploadedPart>();
        for (var number = 1; ; number++)
        {
            var buffer = new byte[partSize];
            var length = await input.ReadAtLeastAsync(buffer, partSize, throwOnEndOfStream: false);
            if (length == 0)
            {
                break;
            }

            var n = number;
            running.Add(Task.Run(async () => new UploadedPart(n, length, await store.UploadPartAsync(target, uploadId, n, buffer.AsMemory(0, length), CancellationToken.None))));
            if (running.Count >= inFlight)
            {
                parts.Add(await running[0]);
                running.RemoveAt(0);
            }
        }

        foreach (var task in running)
        {
            parts.Add(await task);
        }

        var checkpoint = new UploadCheckpoint
        {
            Target = target,
            SessionId = "bench",
            UploadId = uploadId,
            Offset = input.Length,
            Parts = parts,
            Sha256State = new ResumableSha256().ExportState(),
            StartedAt = DateTimeOffset.UtcNow,
            UpdatedAt = DateTimeOffset.UtcNow,
        };
        var manifest = new StoredCaptureManifest
        {
            CaptureUid = target.CaptureUid,
            Namespace = target.Namespace,
            CaptureName = target.CaptureName,
            Pod = target.Pod,
            Uri = store.UriOf(target),
            Size = input.Length,
            Sha256 = "not-computed",
            StoredAt = DateTimeOffset.UtcNow,
        };
        await store.CompleteUploadAsync(checkpoint, manifest, StorageJsonContext.Unsigned, CancellationToken.None);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{started.Elapsed.TotalSeconds:0.000}"));
        return 0;
    }

    private static async Task<int> ShaAsync(S3Options s3, string key)
    {
        // One signed GET with the operator's own S3 code, as the plain PUT: the bytes hashed as they arrive.
        using var http = new HttpClient(new SocketsHttpHandler()) { Timeout = TimeSpan.FromMinutes(10) };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{s3.Endpoint.TrimEnd('/')}/{s3.Bucket}/{S3Signer.Encode(key, true)}");
        new S3Signer(s3.Region, s3.AccessKey, s3.SecretKey).Sign(request, [], DateTime.UtcNow);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
        {
            await Console.Error.WriteLineAsync($"GET {key} failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            return 1;
        }

        await using var body = await response.Content.ReadAsStreamAsync();
        Console.WriteLine(Convert.ToHexStringLower(await SHA256.HashDataAsync(body)));
        return 0;
    }

    private static async Task<int> UploadAsync(Uri url, string secret, long total, byte[] block)
    {
        var uid = Guid.NewGuid().ToString("N");
        var target = new CaptureIdentity(uid, "bench", "throughput-" + uid[..8], "pod-0");
        using var channel = GrpcChannel.ForAddress(url, new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler() });
        var started = Stopwatch.StartNew();
        using var call = new KubeCapture.Proto.V1.Ingest.IngestClient(channel).Upload();
        await IngestHandshake.OpenAsync(call, IngestHandshake.Open(target.CaptureUid, target.Namespace, target.CaptureName, target.Pod, new CaptureTokenIssuer(secret).Issue(target),
            System.Security.Cryptography.RandomNumberGenerator.GetHexString(64, lowercase: true)), CancellationToken.None);
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
