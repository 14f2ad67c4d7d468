using KubeCapture.Operator.Ingest;
using KubeCapture.Testing.S3;
using Microsoft.Extensions.DependencyInjection;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>An in-process ingest over s3rver with the binding on, and its address book (the reconciler's seam).</summary>
public sealed class BoundIngest(S3rverFixture s3, OperatorHost host) : IAsyncDisposable
{
    public S3rverFixture S3 => s3;

    public OperatorHost Host => host;

    public IAgentAddresses Addresses => host.Services.GetRequiredService<IAgentAddresses>();

    /// <summary>The ingest's side of the reconciler's seam (what it reports, and contests it is told).</summary>
    public IIngestStatus Status => host.Services.GetRequiredService<IIngestStatus>();

    public static async Task<BoundIngest> StartAsync(string ingestAddress = "127.0.0.1")
    {
        var s3 = await S3rverFixture.StartAsync();
        var settings = OperatorHost.S3Settings(s3);
        settings["Ingest:BindToPodAddress"] = "true";
        return new BoundIngest(s3, await OperatorHost.StartInProcessAsync(settings, ingestAddress));
    }

    public async ValueTask DisposeAsync()
    {
        await host.DisposeAsync();
        await s3.DisposeAsync();
    }
}
