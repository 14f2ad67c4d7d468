using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Ingest;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// The ingest's HTTP/2 keep-alive (Ingest:KeepAlivePingDelay, Ingest:KeepAlivePingTimeout), as
/// services.AddIngestAndStorage sets it on Kestrel: on by default, so a stream whose connection died
/// without a FIN or RST is not held, and its upload Lease renewed, until TCP gives up (Kestrel's own default is off).
/// </summary>
public sealed class IngestKeepAliveTests
{
    [Theory]
    [InlineData(null, null, 10, 10)]
    [InlineData("30s", "5s", 30, 5)]
    public void The_ingest_pings_a_silent_agent_connection_and_drops_it_when_unanswered(string? delay, string? timeout, int delaySeconds, int timeoutSeconds)
    {
        var limits = KestrelOf(delay, timeout).Limits.Http2;

        Assert.Equal((TimeSpan.FromSeconds(delaySeconds), TimeSpan.FromSeconds(timeoutSeconds)), (limits.KeepAlivePingDelay, limits.KeepAlivePingTimeout));
    }

    [Theory]
    [InlineData("0s", "10s", "Ingest:KeepAlivePingDelay (0s)")]
    [InlineData("10s", "soon", "Ingest:KeepAlivePingTimeout")]
    public void A_keep_alive_that_would_never_find_a_dead_connection_stops_the_operator_naming_the_key(string delay, string timeout, string named)
    {
        var refused = Assert.Throws<OperatorConfigurationException>(() => KestrelOf(delay, timeout));

        Assert.Contains(named, refused.Message, StringComparison.Ordinal);
    }

    private static KestrelServerOptions KestrelOf(string? delay, string? timeout)
    {
        var settings = new Dictionary<string, string?> { ["Reconciler:Enabled"] = "false", ["Ingest:TokenSecret"] = "keep-alive-test" };
        if (delay is not null)
        {
            settings["Ingest:KeepAlivePingDelay"] = delay;
        }

        if (timeout is not null)
        {
            settings["Ingest:KeepAlivePingTimeout"] = timeout;
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddIngestAndStorage(configuration);
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<KestrelServerOptions>>().Value;
    }
}
