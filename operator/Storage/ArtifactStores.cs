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

        if (options.S3.LifecycleExpirationDays > 0)
        {
            var logger = loggers.CreateLogger(typeof(ArtifactStores));
            try
            {
                logger.LogInformation("{Lifecycle}", store.EnsureLifecycleAsync(options.S3.LifecycleExpirationDays, CancellationToken.None).GetAwaiter().GetResult());
            }
            catch (S3ErrorException e) when (e.Status is System.Net.HttpStatusCode.NotImplemented or System.Net.HttpStatusCode.MethodNotAllowed)
            {
                logger.LogWarning("the storage has no lifecycle rules ({Error}): only the retention sweeper expires captures", e.Message);
            }
        }

        return store;
    }
}
