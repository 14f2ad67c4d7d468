namespace KubeCapture.Testing.S3;

/// <summary>
/// An S3 server a test stores into, whichever it is (<see cref="S3rverFixture"/>: a process per test;
/// <see cref="CephRgwFixture"/>: a bucket of the run's shared Ceph RADOS Gateway), so that one test
/// body can run against both. <see cref="StopAsync"/> and <see cref="StartAsync"/> take the S3 endpoint
/// down and bring it back on the same port with the same data.
/// </summary>
public interface IS3TestServer : IAsyncDisposable
{
    /// <summary>"s3rver" or "ceph-rgw" (for messages).</summary>
    string Name { get; }

    string Endpoint { get; }

    string Bucket { get; }

    string AccessKey { get; }

    string SecretKey { get; }

    /// <summary>Whether the server really aborts multipart uploads (s3rver: no, its parts stay invisible).</summary>
    bool AbortsMultipartUploads { get; }

    /// <summary>The S3 endpoint goes away (the process is killed); its data stays.</summary>
    Task StopAsync();

    /// <summary>The S3 endpoint comes back on the same port with the same data; returns once it answers.</summary>
    Task StartAsync();

    /// <summary>The object's bytes, or null when there is no such object (read from outside the operator's code).</summary>
    Task<byte[]?> ReadObjectAsync(string key);
}
