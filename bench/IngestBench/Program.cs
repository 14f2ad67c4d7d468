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
///        IngestBench upload URL SECRET SIZE OPERATOR_PID SERVER_PIDS WARMUP
///                                               warms the operator up (<see cref="OperatorWarmUp"/>, rounds of
///                                               WARMUP bytes), then streams SIZE bytes through the ingest as the
///                                               agent does; prints seconds, seconds until all was sent, the stored
///                                               URI, the SHA-256, the CPU seconds of this client, of the operator and
///                                               of the S3 server over the timed upload, and the bytes the warm-up sent
///        IngestBench fleet URLS SECRET SIZE N OPERATOR_PIDS SERVER_PIDS WARMUP
///                                               warms each operator up (rounds of WARMUP bytes; 0: no warm-up, the
///                                               operators are warm already), then N captures at once, SIZE bytes each,
///                                               split in turn between the ingests URLS (comma-separated; one
///                                               operator process each, OPERATOR_PIDS in the same order); prints
///                                               seconds, each operator's CPU seconds (comma-separated), this client's
///                                               and the S3 server's
///        IngestBench put S3 FILE KEY SERVER_PIDS PREFILL
///                                               one signed PUT of FILE (read into memory first) with the operator's
///                                               own S3 code (S3Signer, HttpClient), after PREFILL bytes of untimed
///                                               PUTs (the same code warmed up, and the server holding what the
///                                               ingest's warm-up left in its own); prints seconds and the CPU
///                                               seconds of this client and of the S3 server
///        IngestBench multipart S3 FILE PART N SERVER_PIDS PREFILL
///                                               the same, as a bare multipart upload through the operator's
///                                               S3ArtifactStore, N parts in flight, no ingest
///        IngestBench sha S3 KEY                 SHA-256 of a stored object (downloaded, hashed on the fly)
///        IngestBench token SECRET UID NAMESPACE NAME POD
///                                               the upload token the operator's CaptureTokenIssuer gives that
///                                               capture target under SECRET (for the real agent's --token)
///        IngestBench serve-rgw FILE             starts the tests' Ceph RGW (CephRgwFixture), writes
///                                               "ENDPOINT BUCKET ACCESS SECRET DIR" to FILE, runs until stdin closes
/// S3 is "ENDPOINT,BUCKET,ACCESS,SECRET"; PIDS are comma-separated. The bytes are a fixed 8 MiB random
/// block repeated, so every path sends exactly the same content. CPU seconds are user + system: this
/// process's from <see cref="Environment.CpuUsage"/>, the others' from /proc (<see cref="ProcessCpu"/>),
/// all over the same timed interval.
/// </summary>
public static class Program
{
    private const int BlockSize = 8 << 20;

    public static async Task<int> Main(string[] args)
    {
        var block = new byte[BlockSize];
        new Random(42).NextBytes(block);
        switch (args)
        {
            case ["write", var file, var size]:
                await using (var output = File.Create(file))
                {
                    for (long offset = 0, total = Bytes(size); offset < total; offset += BlockSize)
                    {
                        await output.WriteAsync(block.AsMemory(0, (int)Math.Min(BlockSize, total - offset)));
                    }
                }

                return 0;
            case ["upload", var url, var secret, var size, var pid, var server, var warmUp]:
                return await UploadAsync(new Uri(url), secret, Bytes(size), new ProcessCpu(pid), new ProcessCpu(server), Bytes(warmUp), block);
            case ["fleet", var urls, var secret, var size, var streams, var pids, var server, var warmUp]:
                return await FleetAsync([.. urls.Split(',').Select(u => new Uri(u))], secret, Bytes(size), int.Parse(streams, CultureInfo.InvariantCulture),
                    [.. pids.Split(',').Select(p => new ProcessCpu(p))], new ProcessCpu(server), Bytes(warmUp), block);
            case ["put", var s3, var file, var key, var server, var prefill]:
                return await PutAsync(S3Of(s3), file, key, new ProcessCpu(server), Bytes(prefill));
            case ["multipart", var s3, var file, var part, var inFlight, var server, var prefill]:
                return await MultipartAsync(S3Of(s3), file, int.Parse(part, CultureInfo.InvariantCulture), int.Parse(inFlight, CultureInfo.InvariantCulture), new ProcessCpu(server), Bytes(prefill));
            case ["sha", var s3, var key]:
                return await ShaAsync(S3Of(s3), key);
            case ["token", var secret, var uid, var ns, var name, var pod]:
                Console.WriteLine(new CaptureTokenIssuer(secret).Issue(new CaptureIdentity(uid, ns, name, pod)));
                return 0;
            case ["serve-rgw", var envFile]:
                await using (var rgw = await CephRgwFixture.StartAsync("kubecapture"))
                {
                    await File.WriteAllTextAsync(envFile, $"{rgw.Endpoint} {rgw.Bucket} {CephRgwFixture.AccessKey} {CephRgwFixture.SecretKey} {rgw.Directory}\n");
                    await Console.In.ReadToEndAsync(); // until the script closes our stdin (or SIGTERM: ProcessExit stops Ceph)
                }

                await CephRgwFixture.ShutdownAsync();
                return 0;
            default:
                await Console.Error.WriteLineAsync("usage: IngestBench write FILE SIZE | upload URL SECRET SIZE OPERATOR_PID SERVER_PIDS WARMUP | fleet URLS SECRET SIZE N OPERATOR_PIDS SERVER_PIDS WARMUP"
                    + " | put S3 FILE KEY SERVER_PIDS PREFILL | multipart S3 FILE PART N SERVER_PIDS PREFILL | sha S3 KEY | token SECRET UID NAMESPACE NAME POD | serve-rgw FILE");
                return 2;
        }
    }

    private static long Bytes(string text) => long.Parse(text, CultureInfo.InvariantCulture);

    private static string Seconds(double seconds) => seconds.ToString("0.000", CultureInfo.InvariantCulture);

    private static double CpuSeconds() => Environment.CpuUsage.TotalTime.TotalSeconds;

    private static S3Options S3Of(string text) => text.Split(',') is [var endpoint, var bucket, var access, var secret]
        ? new S3Options { Endpoint = endpoint, Bucket = bucket, AccessKey = access, SecretKey = secret }
        : throw new ArgumentException("S3 is ENDPOINT,BUCKET,ACCESS,SECRET");

    /// <summary>Untimed PUTs of <paramref name="bytes"/> in objects of up to 128 MiB, with the plain PUT's code.</summary>
    private static async Task PrefillAsync(PlainPut put, byte[] data, long bytes)
    {
        for (var n = 0; bytes > 0; n++)
        {
            var length = (int)Math.Min(Math.Min(bytes, 128 << 20), data.Length);
            await put.SendAsync(data.AsMemory(0, length), $"prefill/{n}");
            bytes -= length;
        }
    }

    private static async Task<int> PutAsync(S3Options s3, string file, string key, ProcessCpu server, long prefill)
    {
        var data = await File.ReadAllBytesAsync(file);
        using var put = new PlainPut(s3);
        await PrefillAsync(put, data, Math.Max(prefill, Math.Min(data.Length, BlockSize)));
        var cpu = CpuSeconds();
        var serverBefore = server.Seconds();
        var started = Stopwatch.StartNew();
        await put.SendAsync(data, key);
        Console.WriteLine($"{Seconds(started.Elapsed.TotalSeconds)} {Seconds(CpuSeconds() - cpu)} {Seconds(server.Seconds() - serverBefore)}");
        return 0;
    }

    private static async Task<int> MultipartAsync(S3Options s3, string file, int partSize, int inFlight, ProcessCpu server, long prefill)
    {
        using (var put = new PlainPut(s3))
        {
            await PrefillAsync(put, await File.ReadAllBytesAsync(file), prefill);
        }

        using var store = new S3ArtifactStore(s3, "multipart");
        var target = new CaptureIdentity(Guid.NewGuid().ToString("N"), "bench", "multipart", "pod-0");
        await using var input = File.OpenRead(file);
        var cpu = CpuSeconds();
        var serverBefore = server.Seconds();
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
        Console.WriteLine($"{Seconds(started.Elapsed.TotalSeconds)} {Seconds(CpuSeconds() - cpu)} {Seconds(server.Seconds() - serverBefore)}");
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

    private static async Task<int> UploadAsync(Uri url, string secret, long total, ProcessCpu operatorCpu, ProcessCpu server, long warmUpBytes, byte[] block)
    {
        using var channel = GrpcChannel.ForAddress(url, new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler() });
        var agent = new AgentStream(channel, secret, block);
        var warmedWith = await OperatorWarmUp.RunAsync(agent, int.Parse(operatorCpu.Pids, CultureInfo.InvariantCulture), warmUpBytes);
        var cpu = CpuSeconds();
        var operatorBefore = operatorCpu.Seconds();
        var serverBefore = server.Seconds();
        var upload = await agent.UploadAsync(total);
        var operatorSeconds = operatorCpu.Seconds() - operatorBefore;
        var serverSeconds = server.Seconds() - serverBefore;
        Console.WriteLine($"{Seconds(upload.Seconds)} {Seconds(upload.SentAfter)} {upload.Uri} {upload.Sha256} {Seconds(CpuSeconds() - cpu)} {Seconds(operatorSeconds)} {Seconds(serverSeconds)} {warmedWith}");
        return 0;
    }

    /// <summary>
    /// N captures streaming at once, each its own agent connection, split in turn between the ingests
    /// (capture i to ingest i mod count), each operator warmed up first unless told it is warm already.
    /// </summary>
    private static async Task<int> FleetAsync(Uri[] ingests, string secret, long size, int streams, ProcessCpu[] operators, ProcessCpu server, long warmUpBytes, byte[] block)
    {
        if (ingests.Length != operators.Length)
        {
            throw new ArgumentException($"{ingests.Length} ingest URLs but {operators.Length} operator PIDs");
        }

        var channels = Enumerable.Range(0, Math.Max(streams, ingests.Length))
            .Select(i => GrpcChannel.ForAddress(ingests[i % ingests.Length], new GrpcChannelOptions { HttpHandler = new SocketsHttpHandler() })).ToList();
        try
        {
            for (var i = 0; i < ingests.Length && warmUpBytes > 0; i++)
            {
                await OperatorWarmUp.RunAsync(new AgentStream(channels[i], secret, block), int.Parse(operators[i].Pids, CultureInfo.InvariantCulture), warmUpBytes);
            }

            var cpu = CpuSeconds();
            var before = operators.Select(o => o.Seconds()).ToList();
            var serverBefore = server.Seconds();
            var started = Stopwatch.StartNew();
            await Task.WhenAll(channels.Take(streams).Select(c => Task.Run(() => new AgentStream(c, secret, block).UploadAsync(size))));
            var seconds = started.Elapsed.TotalSeconds;
            var operatorSeconds = operators.Select((o, i) => Seconds(o.Seconds() - before[i])).ToList();
            Console.WriteLine($"{Seconds(seconds)} {string.Join(',', operatorSeconds)} {Seconds(CpuSeconds() - cpu)} {Seconds(server.Seconds() - serverBefore)}");
            return 0;
        }
        finally
        {
            channels.ForEach(c => c.Dispose());
        }
    }
}
