using System.Security.Cryptography;
using k8s;
using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Testing.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;

namespace KubeCapture.Operator.Tests.Ingest;

/// <summary>
/// The upload token key in its Secret, on the real kube-apiserver: created once when missing and
/// shared by every operator process (a restart, a second replica, a new leader sign and verify the
/// same tokens), rotated without turning away the tokens already handed out, and written again when
/// someone deletes it.
/// </summary>
public sealed class IngestTokenKeySecretTests
{
    private const string Name = "kc-kubecapture-ingest-token";
    private static readonly CaptureIdentity Target = new("uid-1", "payments", "partner-timeouts", "api-7d9f");
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public async Task Two_operator_processes_starting_together_create_one_key_and_issue_the_same_tokens()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-token-key");
        using var admin = server.AdminClient();
        await using var first = await StartAsync(admin, ns);
        await using var second = await StartAsync(admin, ns);

        var secret = await admin.CoreV1.ReadNamespacedSecretAsync(Name, ns);

        Assert.Equal(32, secret.Data[IngestTokenKeySecret.CurrentEntry].Length);
        Assert.False(secret.Data.ContainsKey(IngestTokenKeySecret.PreviousEntry));
        Assert.Equal(first.Issuer.Issue(Target), second.Issuer.Issue(Target));
        Assert.True(second.Issuer.Verify(Target, first.Issuer.Issue(Target)));
        // A restart reads the same key: the agents of the process before are still accepted.
        await first.DisposeAsync();
        await using var restarted = await StartAsync(admin, ns);
        Assert.True(restarted.Issuer.Verify(Target, second.Issuer.Issue(Target)));
    }

    [SkippableFact]
    public async Task A_rotation_written_to_the_Secret_takes_effect_without_a_restart_and_tokens_of_the_previous_key_stay_valid()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-token-rotate");
        using var admin = server.AdminClient();
        await using var running = await StartAsync(admin, ns);
        var handedOut = running.Issuer.Issue(Target);

        // The rotation README gives: current moves to previous, a new current.
        var secret = await admin.CoreV1.ReadNamespacedSecretAsync(Name, ns);
        var newKey = RandomNumberGenerator.GetBytes(32);
        secret.Data[IngestTokenKeySecret.PreviousEntry] = secret.Data[IngestTokenKeySecret.CurrentEntry];
        secret.Data[IngestTokenKeySecret.CurrentEntry] = newKey;
        await admin.CoreV1.ReplaceNamespacedSecretAsync(secret, Name, ns);
        await WaitUntilAsync(() => running.Keys.Current.AsSpan().SequenceEqual(newKey), "the rotation to reach the running process");

        Assert.True(running.Issuer.Verify(Target, handedOut));
        Assert.NotEqual(handedOut, running.Issuer.Issue(Target));
        Assert.Equal(new CaptureTokenIssuer(IngestTokenKeys.Of(newKey, "test")).Issue(Target), running.Issuer.Issue(Target));
        await using var restarted = await StartAsync(admin, ns);
        Assert.True(restarted.Issuer.Verify(Target, handedOut));
    }

    [SkippableFact]
    public async Task A_deleted_Secret_is_written_again_with_the_keys_in_use()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-token-deleted");
        using var admin = server.AdminClient();
        await using var running = await StartAsync(admin, ns);
        var key = running.Keys.Current;

        await admin.CoreV1.DeleteNamespacedSecretAsync(Name, ns);
        V1Secret? again = null;
        await WaitUntilAsync(async () => (again = await ReadAsync(admin, ns)) is not null, "the Secret to be written again");

        Assert.Equal(key, again!.Data[IngestTokenKeySecret.CurrentEntry]);
    }

    [SkippableFact]
    public async Task A_Secret_without_a_usable_key_is_never_replaced_and_nothing_is_signed_until_it_is_fixed()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-token-bad");
        using var admin = server.AdminClient();
        await admin.CoreV1.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = Name },
            Data = new Dictionary<string, byte[]> { ["key"] = RandomNumberGenerator.GetBytes(32) },
        }, ns);
        var keys = new IngestTokenKeys();
        using var service = new IngestTokenKeySecret(admin, ns, Name, keys, NullLogger<IngestTokenKeySecret>.Instance);

        var error = await Assert.ThrowsAsync<InvalidDataException>(() => service.LoadOrCreateAsync(CancellationToken.None));

        Assert.Contains($"Secret {ns}/{Name} has no 'current' entry of at least 16 bytes", error.Message, StringComparison.Ordinal);
        Assert.False(keys.IsLoaded);
        Assert.False((await admin.CoreV1.ReadNamespacedSecretAsync(Name, ns)).Data.ContainsKey(IngestTokenKeySecret.CurrentEntry));
    }

    private static async Task<RunningKey> StartAsync(IKubernetes admin, string ns)
    {
        var keys = new IngestTokenKeys();
        var service = new IngestTokenKeySecret(admin, ns, Name, keys, NullLogger<IngestTokenKeySecret>.Instance);
        await service.StartAsync(CancellationToken.None);
        using var loaded = new CancellationTokenSource(Patience);
        await keys.WhenLoadedAsync(loaded.Token);
        return new RunningKey(service, keys);
    }

    private static async Task<V1Secret?> ReadAsync(IKubernetes admin, string ns)
    {
        try
        {
            return await admin.CoreV1.ReadNamespacedSecretAsync(Name, ns);
        }
        catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    private static Task WaitUntilAsync(Func<bool> done, string what) => WaitUntilAsync(() => Task.FromResult(done()), what);

    private static async Task WaitUntilAsync(Func<Task<bool>> done, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!await done())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(100);
        }
    }

    /// <summary>One operator process's view of the key: the service following the Secret, and the issuer on it.</summary>
    private sealed class RunningKey(IngestTokenKeySecret service, IngestTokenKeys keys) : IAsyncDisposable
    {
        private bool disposed;

        public IngestTokenKeys Keys => keys;

        public CaptureTokenIssuer Issuer { get; } = new(keys);

        public async ValueTask DisposeAsync()
        {
            if (!disposed)
            {
                disposed = true;
                await service.StopAsync(CancellationToken.None);
                service.Dispose();
            }
        }
    }
}
