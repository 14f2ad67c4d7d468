using System.Diagnostics;
using System.Globalization;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.S3;

/// <summary>
/// A production S3 for tests: Ceph RADOS Gateway (Debian's Ceph 16.2, installed by scripts/setup.sh)
/// as one monitor, one memstore OSD and one radosgw (beast on 127.0.0.1) in a temporary directory,
/// at free ports, started once per test process on first use and shared: each
/// <see cref="StartAsync(string?, bool)"/> gives the test a bucket of its own. All three processes
/// are stopped when the test process exits (or by <see cref="ShutdownAsync"/>); processes left by a
/// test process that died are killed by the next start. Tests that stop the gateway must not run
/// beside other tests that use it (put them in one xunit collection).
/// </summary>
public sealed class CephRgwFixture : IS3TestServer
{
    public const string AccessKey = "KCRGWTESTACCESSKEY00";
    public const string SecretKey = "kcrgwtestsecretkey000000000000000000000";
    public const string Uid = "kubecapture-test";

    /// <summary>The one line a test that needs RGW is skipped with when it is missing.</summary>
    public const string InstallHint = "Ceph RADOS Gateway is not installed (ceph-mon, ceph-osd, radosgw, ceph-common): scripts/setup.sh installs them";

    private static readonly string[] Binaries = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph"];
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static CephCluster? _cluster;
    private static int _buckets;
    private readonly CephCluster _owner;
    private readonly S3TestClient _client;
    private bool _ownsCluster;

    private CephRgwFixture(CephCluster cluster, string bucket, string? endpoint = null)
    {
        _owner = cluster;
        Bucket = bucket;
        Endpoint = endpoint ?? cluster.Endpoint;
        _client = new S3TestClient(cluster.Endpoint, AccessKey, SecretKey);
    }

    /// <summary>Null when every Ceph binary is on PATH; otherwise <see cref="InstallHint"/>.</summary>
    public static string? MissingReason { get; } = Binaries.All(b => FindOnPath(b) is not null) ? null : InstallHint;

    /// <summary>Under CI=true a missing Ceph fails the tests that need it instead of skipping them.</summary>
    public static bool Required => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public string Name => "ceph-rgw";

    public string Bucket { get; }

    /// <summary>Where this fixture's clients reach S3: the shared gateway on 127.0.0.1, or one at another address (<see cref="StartAtAsync"/>).</summary>
    public string Endpoint { get; }

    public int Port => new Uri(Endpoint).Port;

    public bool AbortsMultipartUploads => true;

    /// <summary>Where the cluster keeps its configuration, logs and pid files.</summary>
    public string Directory => _owner.Directory;

    /// <summary>How long bringing the shared cluster up took (zero for every test but the first).</summary>
    public static TimeSpan StartupTime => _cluster?.StartupTime ?? TimeSpan.Zero;

    string IS3TestServer.AccessKey => AccessKey;

    string IS3TestServer.SecretKey => SecretKey;

    /// <summary>Starts the shared cluster if it is not running yet and creates a bucket for this test (a fresh name unless given).</summary>
    public static async Task<CephRgwFixture> StartAsync(string? bucket = null, bool objectLock = false)
    {
        var cluster = await SharedAsync();
        await cluster.StartGatewayAsync(); // a test that stopped it and failed must not break the next
        var fixture = new CephRgwFixture(cluster, bucket ?? NewBucketName());
        await fixture._client.CreateBucketAsync(fixture.Bucket, objectLock);
        return fixture;
    }

    /// <summary>
    /// A Ceph cluster of the caller's own (not the shared one, which the storage tests stop when they
    /// are done), with a second radosgw listening at <paramref name="address"/> (e.g. a node IP that
    /// pods reach: 127.0.0.1 is every pod's own loopback), and a bucket; disposing the fixture stops it.
    /// </summary>
    public static async Task<CephRgwFixture> StartAtAsync(string address, string? bucket = null, bool objectLock = false)
    {
        if (MissingReason is { } missing)
        {
            throw new InvalidOperationException(missing);
        }

        var cluster = new CephCluster();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Shutdown();
        try
        {
            await cluster.StartAsync();
            var endpoint = await cluster.StartGatewayAtAsync(address);
            var fixture = new CephRgwFixture(cluster, bucket ?? NewBucketName(), endpoint) { _ownsCluster = true };
            await fixture._client.CreateBucketAsync(fixture.Bucket, objectLock);
            return fixture;
        }
        catch
        {
            cluster.Shutdown();
            throw;
        }
    }

    /// <summary>Another bucket on the same gateway (with Object Lock enabled if asked).</summary>
    public Task<CephRgwFixture> CreateBucketAsync(string? bucket = null, bool objectLock = false) => StartAsync(bucket, objectLock);

    /// <summary>Kills radosgw (SIGKILL: the data is in the OSD and stays); S3 is down until <see cref="StartAsync()"/>.</summary>
    public Task StopAsync() => _owner.StopGatewayAsync();

    /// <summary>Starts radosgw again on the same port; returns once it answers.</summary>
    public Task StartAsync() => _owner.StartGatewayAsync();

    public Task<byte[]?> ReadObjectAsync(string key) => _client.GetObjectAsync(Bucket, key);

    public Task<string?> HeadETagAsync(string key) => _client.HeadETagAsync(Bucket, key);

    /// <summary>The multipart uploads in progress in this bucket (ListMultipartUploads).</summary>
    public Task<IReadOnlyList<MultipartUploadInfo>> ListMultipartUploadsAsync(string prefix = "") => _client.ListMultipartUploadsAsync(Bucket, prefix);

    /// <summary>The parts stored for an upload (ListParts); null when the upload no longer exists.</summary>
    public Task<IReadOnlyList<MultipartPartInfo>?> ListPartsAsync(string key, string uploadId) => _client.ListPartsAsync(Bucket, key, uploadId);

    /// <summary>
    /// The names in the bucket's index as radosgw-admin sees them, below S3: besides the objects, a
    /// multipart upload in progress shows as <c>_multipart_KEY.UPLOADID.meta</c> and one entry per part.
    /// </summary>
    public async Task<IReadOnlyList<string>> BucketIndexAsync()
    {
        var result = (await _owner.AdminAsync("bucket", "list", $"--bucket={Bucket}", "--allow-unordered")).EnsureSuccess();
        using var json = System.Text.Json.JsonDocument.Parse(result.Stdout);
        return [.. json.RootElement.EnumerateArray().Select(e => e.GetProperty("name").GetString() ?? "")];
    }

    /// <summary>Stops the shared cluster now (the end of a test run; also done when the process exits).</summary>
    public static async Task ShutdownAsync()
    {
        await Gate.WaitAsync();
        try
        {
            _cluster?.Shutdown();
            _cluster = null;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Leaves the shared cluster running for the next test, with its gateway up.</summary>
    public async ValueTask DisposeAsync()
    {
        _client.Dispose();
        if (_ownsCluster)
        {
            _owner.Shutdown();
        }
        else if (_cluster == _owner)
        {
            await _owner.StartGatewayAsync();
        }
    }

    private static string NewBucketName() =>
        string.Create(CultureInfo.InvariantCulture, $"kc-{Environment.ProcessId}-{Interlocked.Increment(ref _buckets)}");

    private static async Task<CephCluster> SharedAsync()
    {
        if (MissingReason is { } missing)
        {
            throw new InvalidOperationException(missing);
        }

        await Gate.WaitAsync();
        try
        {
            // A monitor that could not take its ports (another process bound them between the free-port
            // probe and ceph-mon's bind) exits or never answers: the cluster is started again, once, on
            // new ports and in a new directory.
            for (var attempt = 1; _cluster is null; attempt++)
            {
                var cluster = new CephCluster();
                AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Shutdown();
                try
                {
                    await cluster.StartAsync();
                    _cluster = cluster;
                }
                catch (MonitorNotAnsweringException e) when (attempt == 1)
                {
                    await Console.Error.WriteLineAsync($"ceph-rgw: starting again on new ports: {e.Message}");
                }
            }

            return _cluster;
        }
        finally
        {
            Gate.Release();
        }
    }

    internal static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    /// <summary>The three Ceph processes and their directory.</summary>
    private sealed class CephCluster
    {
        private const string DirectoryPrefix = "kc-ceph-";
        private readonly int _monV1 = S3rverFixture.FreeTcpPort();
        private readonly int _monV2 = S3rverFixture.FreeTcpPort();
        private readonly SemaphoreSlim _gatewayGate = new(1, 1);
        private DaemonProcess? _mon;
        private DaemonProcess? _osd;
        private readonly Dictionary<string, (DaemonProcess Daemon, string Endpoint)> _gatewaysAt = [];
        private DaemonProcess? _gateway;
        private int _shutdown;

        public CephCluster()
        {
            KillLeftovers();
            Directory = System.IO.Directory.CreateTempSubdirectory($"{DirectoryPrefix}{Environment.ProcessId}-").FullName;
            GatewayPort = S3rverFixture.FreeTcpPort();
        }

        public string Directory { get; }

        public int GatewayPort { get; }

        public string Endpoint => $"http://127.0.0.1:{GatewayPort}";

        public TimeSpan StartupTime { get; private set; }

        private string Conf => Path.Combine(Directory, "ceph.conf");

        public async Task StartAsync()
        {
            var started = Stopwatch.StartNew();
            try
            {
                var fsid = Guid.NewGuid().ToString();
                var monHost = $"[v2:127.0.0.1:{_monV2},v1:127.0.0.1:{_monV1}]";
                foreach (var sub in new[] { "mon", "osd/ceph-0", "run", "log", "rgw" })
                {
                    System.IO.Directory.CreateDirectory(Path.Combine(Directory, sub));
                }

                await File.WriteAllTextAsync(Conf, Configuration(fsid, monHost));
                var monmap = Path.Combine(Directory, "run", "monmap");
                (await HostCommand.RunAsync("monmaptool", "--create", "--fsid", fsid, "--addv", "a", monHost, monmap)).EnsureSuccess();
                (await HostCommand.RunAsync("ceph-mon", "-c", Conf, "--mkfs", "-i", "a", "--monmap", monmap)).EnsureSuccess();
                _mon = DaemonProcess.Start(Directory, "mon", "ceph-mon", ["-c", Conf, "-f", "-i", "a"]);
                try
                {
                    await WaitForAsync("ceph-mon answering", TimeSpan.FromSeconds(60), MonitorAnswersAsync, () => _mon);
                }
                catch (Exception e) when (e is TimeoutException or InvalidOperationException)
                {
                    throw new MonitorNotAnsweringException(e.Message, e);
                }

                var osdUuid = Guid.NewGuid().ToString();
                var id = (await CephAsync("osd", "create", osdUuid)).EnsureSuccess().Stdout.Trim();
                if (id != "0")
                {
                    throw new InvalidOperationException($"ceph osd create gave id '{id}', expected 0");
                }

                (await HostCommand.RunAsync("ceph-osd", ["-c", Conf, "-i", "0", "--mkfs", "--osd-uuid", osdUuid], TimeSpan.FromSeconds(60))).EnsureSuccess();
                _osd = DaemonProcess.Start(Directory, "osd", "ceph-osd", ["-c", Conf, "-f", "-i", "0"]);
                await WaitForAsync("osd.0 up", TimeSpan.FromSeconds(60), async () =>
                    (await CephAsync("osd", "dump")).Stdout.Contains("osd.0 up", StringComparison.Ordinal), () => _osd);

                await StartGatewayAsync();
                (await AdminAsync("user", "create", $"--uid={Uid}", "--display-name=KubeCapture tests", $"--access-key={AccessKey}", $"--secret={SecretKey}")).EnsureSuccess();
                StartupTime = started.Elapsed;
            }
            catch
            {
                Shutdown();
                throw;
            }
        }

        public async Task StartGatewayAsync()
        {
            await _gatewayGate.WaitAsync();
            try
            {
                if (_gateway is { HasExited: false })
                {
                    return;
                }

                _gateway?.Dispose();
                _gateway = DaemonProcess.Start(Directory, "rgw", "radosgw", ["-c", Conf, "-f", "-n", "client.rgw.a"]);
                await WaitForAnswerAsync(Endpoint, () => _gateway);
            }
            finally
            {
                _gatewayGate.Release();
            }
        }

        private static async Task WaitForAnswerAsync(string endpoint, Func<DaemonProcess?> daemon)
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            await WaitForAsync($"radosgw answering on {endpoint}", TimeSpan.FromSeconds(90), async () =>
            {
                try
                {
                    using var response = await http.GetAsync(endpoint + "/");
                    return true; // any HTTP answer: the anonymous service listing is 200
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    return false;
                }
            }, daemon);
        }

        /// <summary>A second radosgw listening at <paramref name="address"/> (started once per address); returns its endpoint.</summary>
        public async Task<string> StartGatewayAtAsync(string address)
        {
            await _gatewayGate.WaitAsync();
            try
            {
                if (_gatewaysAt.TryGetValue(address, out var running) && !running.Daemon.HasExited)
                {
                    return running.Endpoint;
                }

                var port = S3rverFixture.FreeTcpPort();
                var name = $"rgw-at-{_gatewaysAt.Count}";
                var endpoint = $"http://{address}:{port}";
                System.IO.Directory.CreateDirectory(Path.Combine(Directory, name));
                var daemon = DaemonProcess.Start(Directory, name, "radosgw",
                [
                    "-c", Conf, "-f", "-n", $"client.{name}", $"--rgw_frontends=beast endpoint={address}:{port}",
                    $"--rgw_data={Path.Combine(Directory, name)}", "--rgw_exit_timeout_secs=5",
                ]);
                _gatewaysAt[address] = (daemon, endpoint);
                await WaitForAnswerAsync(endpoint, () => daemon);
                return endpoint;
            }
            finally
            {
                _gatewayGate.Release();
            }
        }

        public async Task StopGatewayAsync()
        {
            await _gatewayGate.WaitAsync();
            try
            {
                if (_gateway is not null)
                {
                    await _gateway.KillAsync();
                    _gateway.Dispose();
                    _gateway = null;
                }
            }
            finally
            {
                _gatewayGate.Release();
            }
        }

        /// <summary>One bounded question to the monitor: the ceph CLI waits forever for a monitor that is not there.</summary>
        private async Task<bool> MonitorAnswersAsync()
        {
            try
            {
                return (await HostCommand.RunAsync("ceph", ["-c", Conf, "--connect-timeout", "5", "mon", "stat"], TimeSpan.FromSeconds(20))).ExitCode == 0;
            }
            catch (TimeoutException)
            {
                return false;
            }
        }

        public Task<CommandResult> CephAsync(params string[] args) => HostCommand.RunAsync("ceph", ["-c", Conf, .. args], TimeSpan.FromSeconds(60));

        public Task<CommandResult> AdminAsync(params string[] args) => HostCommand.RunAsync("radosgw-admin", ["-c", Conf, "-n", "client.rgw.a", .. args], TimeSpan.FromSeconds(60));

        /// <summary>SIGTERM to all three, SIGKILL to what is left after 5 s, then the directory is deleted.</summary>
        public void Shutdown()
        {
            if (Interlocked.Exchange(ref _shutdown, 1) == 1)
            {
                return;
            }

            DaemonProcess?[] daemons = [.. _gatewaysAt.Values.Select(g => g.Daemon), _gateway, _osd, _mon];
            foreach (var daemon in daemons)
            {
                daemon?.Terminate();
            }

            var deadline = DateTime.UtcNow.AddSeconds(5);
            foreach (var daemon in daemons)
            {
                daemon?.WaitOrKill(deadline);
                daemon?.Dispose();
            }

            try
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        private static async Task WaitForAsync(string what, TimeSpan timeout, Func<Task<bool>> ready, Func<DaemonProcess?> daemon)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (!await ready())
            {
                if (daemon() is { HasExited: true } dead)
                {
                    throw new InvalidOperationException($"{dead.Name} exited ({dead.ExitCode}) while waiting for {what}: {dead.Output}");
                }

                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"no {what} within {timeout.TotalSeconds}s; logs in {daemon()?.LogDirectory}; its output: {daemon()?.Output}");
                }

                await Task.Delay(100);
            }
        }

        /// <summary>Processes of test processes that died without stopping their cluster (found by their pid files).</summary>
        private static void KillLeftovers()
        {
            foreach (var dir in new DirectoryInfo(Path.GetTempPath()).EnumerateDirectories(DirectoryPrefix + "*"))
            {
                var owner = dir.Name[DirectoryPrefix.Length..].Split('-')[0];
                if (!int.TryParse(owner, CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId || System.IO.Directory.Exists($"/proc/{pid}"))
                {
                    continue;
                }

                foreach (var pidFile in dir.EnumerateFiles("*.daemon-pid"))
                {
                    if (int.TryParse(File.ReadAllText(pidFile.FullName).Trim(), CultureInfo.InvariantCulture, out var daemon) && IsOurs(daemon, dir.FullName))
                    {
                        HostCommand.Signal(daemon, 9);
                    }
                }

                try
                {
                    dir.Delete(recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }

        private static bool IsOurs(int pid, string directory)
        {
            try
            {
                return File.ReadAllText($"/proc/{pid}/cmdline").Contains(directory, StringComparison.Ordinal);
            }
            catch (IOException)
            {
                return false;
            }
        }

        private string Configuration(string fsid, string monHost) => $"""
            [global]
            fsid = {fsid}
            mon host = {monHost}
            mon initial members = a
            auth cluster required = none
            auth service required = none
            auth client required = none
            public addr = 127.0.0.1
            cluster addr = 127.0.0.1
            osd pool default size = 1
            osd pool default min size = 1
            osd pool default pg num = 8
            osd pool default pgp num = 8
            osd pool default pg autoscale mode = off
            mon allow pool size one = true
            osd crush chooseleaf type = 0
            mon max pg per osd = 1000
            mon data avail warn = 1
            mon data avail crit = 0
            run dir = {Directory}/run
            pid file = {Directory}/run/$name.pid
            log file = {Directory}/log/$name.log
            admin socket = {Directory}/run/$name.asok
            keyring = {Directory}/keyring
            mon data = {Directory}/mon/$cluster-$id
            osd data = {Directory}/osd/$cluster-$id

            [mon]
            paxos propose interval = 0.05

            [osd]
            osd objectstore = memstore
            osd fast shutdown = false
            # memstore's capacity (a bound, not an allocation; RAM is about 1.9x what is stored). The
            # default 1 GiB fills up with the benchmark's objects, and a full OSD blocks every write.
            memstore device bytes = 8589934592

            [client]
            auth client required = none
            ms mon client mode = crc

            [client.rgw.a]
            rgw data = {Directory}/rgw
            rgw frontends = beast endpoint=127.0.0.1:{GatewayPort}
            rgw exit timeout secs = 5
            rgw gc obj min wait = 60
            rgw gc processor period = 60
            rgw lc debug interval = 10

            """;
    }

    /// <summary>ceph-mon exited or did not answer after it was started: worth one start on new ports.</summary>
    private sealed class MonitorNotAnsweringException(string message, Exception inner) : Exception(message, inner);

    /// <summary>One Ceph daemon run in the foreground (-f) by this process, its output kept for error messages.</summary>
    private sealed class DaemonProcess : IDisposable
    {
        private readonly Process _process;
        private readonly Queue<string> _tail = new();

        private DaemonProcess(Process process, string name, string directory)
        {
            _process = process;
            Name = name;
            LogDirectory = Path.Combine(directory, "log");
            _process.OutputDataReceived += (_, e) => Keep(e.Data);
            _process.ErrorDataReceived += (_, e) => Keep(e.Data);
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
            File.WriteAllText(Path.Combine(directory, $"{name}.daemon-pid"), process.Id.ToString(CultureInfo.InvariantCulture));
        }

        public string Name { get; }

        public string LogDirectory { get; }

        public bool HasExited => _process.HasExited;

        public int ExitCode => _process.ExitCode;

        public string Output
        {
            get
            {
                lock (_tail)
                {
                    return string.Join('\n', _tail);
                }
            }
        }

        public static DaemonProcess Start(string directory, string name, string file, IEnumerable<string> args)
        {
            var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }

            return new DaemonProcess(Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start"), name, directory);
        }

        public void Terminate()
        {
            try
            {
                HostCommand.Signal(_process.Id, 15);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }
        }

        public void WaitOrKill(DateTime deadline)
        {
            var left = deadline - DateTime.UtcNow;
            if (!_process.WaitForExit(left > TimeSpan.Zero ? left : TimeSpan.Zero))
            {
                _process.Kill();
                _process.WaitForExit();
            }
        }

        public async Task KillAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill();
            }

            await _process.WaitForExitAsync();
        }

        public void Dispose() => _process.Dispose();

        private void Keep(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_tail)
            {
                _tail.Enqueue(line);
                if (_tail.Count > 40)
                {
                    _tail.Dequeue();
                }
            }
        }
    }
}
