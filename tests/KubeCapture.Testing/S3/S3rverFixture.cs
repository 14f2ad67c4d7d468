using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace KubeCapture.Testing.S3;

/// <summary>
/// A real S3 HTTP endpoint for tests: s3rver (npm s3rver@3.7.1, installed by scripts/setup.sh into
/// .tools/s3rver) on 127.0.0.1 at a free port, with its data in a temporary directory and one
/// bucket. It can be stopped and started again on the same port and data (fault tests).
/// Credentials are s3rver's fixed S3RVER / S3RVER.
/// </summary>
public sealed class S3rverFixture : IS3TestServer
{
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";
    private readonly string _directory = Directory.CreateTempSubdirectory("kcI-s3rver-").FullName;
    private Process? _process;

    private S3rverFixture(string bucket, int port)
    {
        Bucket = bucket;
        Port = port;
    }

    public string Name => "s3rver";

    public string Bucket { get; }

    string IS3TestServer.AccessKey => AccessKey;

    string IS3TestServer.SecretKey => SecretKey;

    /// <summary>s3rver 3.7.1 answers AbortMultipartUpload with an error: the parts stay on its disk, invisible.</summary>
    public bool AbortsMultipartUploads => false;

    public int Port { get; }

    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>Where s3rver keeps its objects (object <c>K</c> of bucket <c>B</c> is <c>B/K._S3rver_object</c>).</summary>
    public string DataDirectory => _directory;

    public bool IsRunning => _process is { HasExited: false };

    public static async Task<S3rverFixture> StartAsync(string bucket = "kubecapture")
    {
        var fixture = new S3rverFixture(bucket, FreeTcpPort());
        await fixture.StartAsync();
        return fixture;
    }

    /// <summary>The s3rver executable installed by scripts/setup.sh.</summary>
    public static string Executable
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, ".tools", "s3rver", "node_modules", ".bin", "s3rver");
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }

            throw new FileNotFoundException("s3rver is not installed: run scripts/setup.sh (it installs s3rver@3.7.1 into .tools/s3rver)");
        }
    }

    /// <summary>Starts (or restarts) s3rver on the same port and data directory; returns once it answers.</summary>
    public async Task StartAsync()
    {
        if (IsRunning)
        {
            return;
        }

        var start = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-d", _directory, "-a", "127.0.0.1", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--silent", "--configure-bucket", Bucket })
        {
            start.ArgumentList.Add(arg);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("s3rver did not start");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"s3rver exited with {_process.ExitCode} on port {Port}");
            }

            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        throw new TimeoutException($"s3rver did not listen on port {Port} within 20 s");
    }

    /// <summary>Kills s3rver (SIGKILL) and waits until it is gone; its data stays.</summary>
    public async Task StopAsync()
    {
        if (_process is null)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync();
        _process.Dispose();
        _process = null;
    }

    /// <summary>
    /// The bytes s3rver stores for object <paramref name="key"/>, or null when there is no such object, or
    /// not yet a whole one: s3rver creates the object's file when a PUT starts and writes its metadata
    /// file once the content has gone through, so an object without its metadata is still being written.
    /// </summary>
    public string? ObjectPath(string key)
    {
        var path = Path.Combine(_directory, Bucket, key + "._S3rver_object");
        return File.Exists(path) && File.Exists(Path.Combine(_directory, Bucket, key + "._S3rver_metadata.json")) ? path : null;
    }

    /// <summary>The object's bytes, read from s3rver's data directory (not through S3), or null.</summary>
    public async Task<byte[]?> ReadObjectAsync(string key) => ObjectPath(key) is { } path ? await File.ReadAllBytesAsync(path) : null;

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
