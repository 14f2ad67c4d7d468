using System.Net;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;
using KubeCapture.Operator.Alerts;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Logging;

namespace KubeCapture.Operator.Tests.Alerts;

/// <summary>
/// The alert receiver's bearer token followed in its Secret on the real kube-apiserver: a rotation is in
/// use at once (the old token refused) without a restart, and a notification never reads the API (the
/// check is <see cref="AlertReceiverToken.Refusal"/>, with no API client); the operator's own Secret deleted
/// is written again with the token in use; an <c>existingSecret</c> deleted, or a token that is not usable
/// written, leaves the token in use in use with an error naming the Secret. Each step waits for the line
/// the token logs when it has acted, never for a time.
/// </summary>
public sealed class AlertReceiverTokenTests
{
    private const string Name = "kc-kubecapture-alert-receiver";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [SkippableFact]
    public async Task A_rotated_token_is_accepted_at_once_and_the_one_before_refused_without_a_restart()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-alert-token-rotate");
        using var admin = server.AdminClient();
        await using var running = await StartAsync(admin, ns, createSecret: true);
        var before = await TokenAsync(admin, ns);
        Assert.Null(running.Token.Refusal($"Bearer {before}"));

        const string Rotated = "rotated-token-of-alertmanager-0123456789";
        await WriteTokenAsync(admin, ns, Rotated);
        await running.WhenLoggedAsync($"Information: alert receiver token of Secret {ns}/{Name} changed: the new one is in use, the one before is refused");

        Assert.Null(running.Token.Refusal($"Bearer {Rotated}"));
        Assert.Equal($"the bearer token is not the alert receiver's (the token entry of Secret {ns}/{Name})", running.Token.Refusal($"Bearer {before}"));
    }

    [SkippableFact]
    public async Task The_operators_Secret_deleted_is_written_again_with_the_token_in_use()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-alert-token-deleted");
        using var admin = server.AdminClient();
        await using var running = await StartAsync(admin, ns, createSecret: true);
        var token = await TokenAsync(admin, ns);

        await admin.CoreV1.DeleteNamespacedSecretAsync(Name, ns);
        await running.WhenLoggedAsync($"Warning: alert receiver token Secret {ns}/{Name} was deleted: written again with the token in use");

        var again = await admin.CoreV1.ReadNamespacedSecretAsync(Name, ns);
        Assert.Equal(token, Encoding.UTF8.GetString(again.Data[AlertReceiverToken.Entry]));
        Assert.Equal("kubecapture-operator", again.Metadata.Labels["app.kubernetes.io/managed-by"]);
        Assert.Null(running.Token.Refusal($"Bearer {token}"));
    }

    [SkippableFact]
    public async Task An_existing_Secret_deleted_is_never_created_and_the_token_in_use_stays_with_an_error_naming_it_until_it_is_back()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-alert-token-existing");
        using var admin = server.AdminClient();
        const string Token = "the-users-own-token-0123456789";
        await CreateSecretAsync(admin, ns, Token + "\n");
        await using var running = await StartAsync(admin, ns, createSecret: false);
        Assert.Null(running.Token.Refusal($"Bearer {Token}"));

        await admin.CoreV1.DeleteNamespacedSecretAsync(Name, ns);
        await running.WhenLoggedAsync($"Error: alert receiver token Secret {ns}/{Name} was deleted: the token in use stays in use; (alertReceiver.existingSecret) create it with the token in its 'token' entry: kubectl create secret generic {Name} -n {ns} --from-literal=token=");

        Assert.Null(running.Token.Refusal($"Bearer {Token}"));
        await AssertMissingAsync(admin, ns);

        // Written back by its owner, with another token: in use at once.
        const string Back = "the-users-new-token-9876543210";
        await CreateSecretAsync(admin, ns, Back);
        await running.WhenLoggedAsync($"Information: alert receiver token of Secret {ns}/{Name} changed");
        Assert.Null(running.Token.Refusal($"Bearer {Back}"));
        Assert.NotNull(running.Token.Refusal($"Bearer {Token}"));
    }

    [SkippableFact]
    public async Task An_existing_Secret_missing_at_start_is_never_created_and_its_token_is_used_once_it_is_written()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-alert-token-missing");
        using var admin = server.AdminClient();
        await using var running = await RunningToken.StartAsync(admin, ns, Name, createSecret: false);

        await running.WhenLoggedAsync($"Error: alert receiver token Secret {ns}/{Name} does not exist: every notification is answered 503 until it is loaded (Alertmanager sends it again); (alertReceiver.existingSecret) create it with the token in its 'token' entry: kubectl create secret generic {Name} -n {ns}");
        Assert.False(running.Token.IsLoaded);
        await AssertMissingAsync(admin, ns);

        const string Written = "the-users-own-token-0123456789";
        await CreateSecretAsync(admin, ns, Written);
        await running.WhenLoggedAsync($"Information: alert receiver token: Secret {ns}/{Name} in use");
        Assert.Null(running.Token.Refusal($"Bearer {Written}"));
    }

    [SkippableFact]
    public async Task A_token_too_short_written_to_the_Secret_leaves_the_token_in_use_with_an_error_naming_the_Secret_and_the_fix()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-alert-token-short");
        using var admin = server.AdminClient();
        await using var running = await StartAsync(admin, ns, createSecret: true);
        var token = await TokenAsync(admin, ns);

        await WriteTokenAsync(admin, ns, "too-short");
        var error = await running.WhenLoggedAsync("Error: ");

        Assert.Equal($"Error: alert receiver token: Secret {ns}/{Name} has no 'token' entry of at least 16 characters (write one: kubectl create secret generic {Name} -n {ns} --from-literal=token=\"$(head -c 32 /dev/urandom | base64)\" --dry-run=client -o yaml | kubectl apply -f -); the token in use stays in use", error);
        Assert.Null(running.Token.Refusal($"Bearer {token}"));
        Assert.NotNull(running.Token.Refusal("Bearer too-short"));
        // Never replaced: the user's mistake is theirs to fix.
        Assert.Equal("too-short", Encoding.UTF8.GetString((await admin.CoreV1.ReadNamespacedSecretAsync(Name, ns)).Data[AlertReceiverToken.Entry]));
    }

    [SkippableFact]
    public async Task A_watch_that_RBAC_does_not_grant_is_tried_again_with_a_doubling_backoff_and_the_token_read_stays_in_use()
    {
        var server = await KubeApiServer.SharedAsync();
        var ns = await server.CreateNamespaceAsync("kc-alert-token-nowatch");
        using var admin = server.AdminClient();
        const string Token = "the-users-own-token-0123456789";
        await CreateSecretAsync(admin, ns, Token);
        // The RBAC of the chart before the watch: get of the Secret by name, nothing else.
        await server.ApplyAsync($$"""
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: operator, namespace: {{ns}}}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata: {name: get-only, namespace: {{ns}}}
            rules: [{apiGroups: [""], resources: [secrets], resourceNames: [{{Name}}], verbs: [get]}]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {name: get-only, namespace: {{ns}}}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: get-only}
            subjects: [{kind: ServiceAccount, name: operator, namespace: {{ns}}}]
            """);
        using var getOnly = server.Client(await server.CreateServiceAccountTokenAsync(ns, "operator"));
        var log = new RecordingLogger<AlertReceiverToken>();
        using var token = new AlertReceiverToken(getOnly, new AlertReceiverOptions { SecretName = Name, Namespace = ns, CreateSecret = false }, log);
        await token.StartAsync(CancellationToken.None);
        try
        {
            var again = $"Information: alert receiver token Secret {ns}/{Name}: reading it again after ";
            // Each failed watch waits 250 ms, 500 ms, 1 s, 2 s before the next read and watch.
            await log.WhenLoggedAsync(l => log.Lines.Count(m => m.StartsWith(again, StringComparison.Ordinal)) >= 5, "five failed watches", Patience);

            var failures = log.Timed.Where(t => t.Line.StartsWith(again, StringComparison.Ordinal)).Take(5).Select(t => t.At).ToList();
            Assert.Contains("Forbidden", log.Lines.First(l => l.StartsWith(again, StringComparison.Ordinal)), StringComparison.Ordinal);
            Assert.True(failures[4] - failures[0] >= TimeSpan.FromMilliseconds(250 + 500 + 1000 + 2000), $"five failed watches within {(failures[4] - failures[0]).TotalMilliseconds} ms");
            Assert.True(failures[4] - failures[3] >= TimeSpan.FromSeconds(2), $"the fifth failed watch {(failures[4] - failures[3]).TotalMilliseconds} ms after the fourth");
            Assert.Null(token.Refusal($"Bearer {Token}"));
        }
        finally
        {
            await token.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>The token started and loaded (the chart's Secret created when <paramref name="createSecret"/>).</summary>
    private static async Task<RunningToken> StartAsync(IKubernetes admin, string ns, bool createSecret)
    {
        var running = await RunningToken.StartAsync(admin, ns, Name, createSecret);
        await running.WhenLoggedAsync($"Information: alert receiver token: Secret {ns}/{Name} in use");
        return running;
    }

    private static async Task<string> TokenAsync(IKubernetes admin, string ns) =>
        Encoding.UTF8.GetString((await admin.CoreV1.ReadNamespacedSecretAsync(Name, ns)).Data[AlertReceiverToken.Entry]);

    private static Task CreateSecretAsync(IKubernetes admin, string ns, string token) =>
        admin.CoreV1.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = Name },
            Data = new Dictionary<string, byte[]> { [AlertReceiverToken.Entry] = Encoding.UTF8.GetBytes(token) },
        }, ns);

    private static async Task WriteTokenAsync(IKubernetes admin, string ns, string token)
    {
        var secret = await admin.CoreV1.ReadNamespacedSecretAsync(Name, ns);
        secret.Data[AlertReceiverToken.Entry] = Encoding.UTF8.GetBytes(token);
        await admin.CoreV1.ReplaceNamespacedSecretAsync(secret, Name, ns);
    }

    private static async Task AssertMissingAsync(IKubernetes admin, string ns)
    {
        var read = await Assert.ThrowsAsync<HttpOperationException>(() => admin.CoreV1.ReadNamespacedSecretAsync(Name, ns));
        Assert.Equal(HttpStatusCode.NotFound, read.Response.StatusCode);
    }

    /// <summary>One operator process's token, following its Secret, and what it logged.</summary>
    private sealed class RunningToken(AlertReceiverToken token, RecordingLogger<AlertReceiverToken> log) : IAsyncDisposable
    {
        public AlertReceiverToken Token => token;

        public static async Task<RunningToken> StartAsync(IKubernetes admin, string ns, string name, bool createSecret)
        {
            var log = new RecordingLogger<AlertReceiverToken>();
            var token = new AlertReceiverToken(admin, new AlertReceiverOptions { SecretName = name, Namespace = ns, CreateSecret = createSecret }, log);
            await token.StartAsync(CancellationToken.None);
            return new RunningToken(token, log);
        }

        /// <summary>The first line starting with <paramref name="start"/>, once it is logged.</summary>
        public Task<string> WhenLoggedAsync(string start) =>
            log.WhenLoggedAsync(l => l.StartsWith(start, StringComparison.Ordinal), $"\"{start}\"", Patience);

        public async ValueTask DisposeAsync()
        {
            await token.StopAsync(CancellationToken.None);
            token.Dispose();
        }
    }
}
