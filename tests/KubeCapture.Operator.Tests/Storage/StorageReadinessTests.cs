using KubeCapture.Operator.Tests.Ingest;
using KubeCapture.Testing.S3;

namespace KubeCapture.Operator.Tests.Storage;

public sealed class StorageReadinessTests
{
    [Fact]
    public async Task OperatorIsReadyOnlyWhileItsS3StorageAnswersButStaysLive()
    {
        await using var s3 = await S3rverFixture.StartAsync();
        await using var host = await OperatorHost.StartInProcessAsync(OperatorHost.S3Settings(s3));
        using var http = new HttpClient();
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/readyz")).StatusCode);

        await s3.StopAsync();
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, (await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/readyz")).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{host.HttpPort}/healthz")).StatusCode);
    }
}
