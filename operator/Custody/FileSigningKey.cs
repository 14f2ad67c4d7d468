namespace KubeCapture.Operator.Custody;

/// <summary>
/// The signing key in a PEM file (Custody:SigningKeyFile), created there (mode 0600) when missing,
/// with the public key beside it as FILE.pub: for an operator run without Kubernetes (a standalone
/// ingest, tests).
/// </summary>
public sealed class FileSigningKey(string path) : ISigningKeySource
{
    public string Describe => $"file {path}";

    public async Task<string> LoadOrCreateAsync(Func<string> create, CancellationToken cancellationToken)
    {
        if (File.Exists(path))
        {
            return await File.ReadAllTextAsync(path, cancellationToken);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var pem = create();
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            await using var file = new FileStream(path, options);
            await file.WriteAsync(System.Text.Encoding.ASCII.GetBytes(pem), cancellationToken);
            return pem;
        }
        catch (IOException) when (File.Exists(path))
        {
            return await File.ReadAllTextAsync(path, cancellationToken); // another process created it first
        }
    }

    public Task PublishAsync(string publicKeyPem, string keyId, CancellationToken cancellationToken) =>
        File.WriteAllTextAsync(path + ".pub", publicKeyPem, cancellationToken);
}
