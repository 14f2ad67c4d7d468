namespace KubeCapture.Operator.Storage;

/// <summary>Chooses the store from configuration: S3 when Storage:S3:Endpoint is set, else the local filesystem.</summary>
public static class ArtifactStores
{
    public static IArtifactStore Create(StorageOptions options, ILoggerFactory loggers)
    {
        if (string.IsNullOrWhiteSpace(options.S3.Endpoint))
        {
            loggers.CreateLogger(typeof(ArtifactStores)).LogInformation("storing captures in the local directory {Path} (no Storage:S3:Endpoint configured)", Path.GetFullPath(options.LocalPath));
            return new LocalArtifactStore(options.LocalPath, options.Prefix);
        }

        var store = new S3ArtifactStore(options.S3, options.Prefix);
        loggers.CreateLogger(typeof(ArtifactStores)).LogInformation("storing captures in s3://{Bucket}/{Prefix} at {Endpoint}", options.S3.Bucket, options.Prefix, options.S3.Endpoint);
        if (options.S3.CreateBucket)
        {
            store.EnsureBucketAsync(CancellationToken.None).GetAwaiter().GetResult();
        }

        return store;
    }
}
