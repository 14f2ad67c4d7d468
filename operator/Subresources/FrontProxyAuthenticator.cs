using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace KubeCapture.Operator.Subresources;

/// <summary>
/// The user kube-apiserver authenticated and passed on in the front-proxy headers; <see cref="Uid"/>
/// only from a kube-apiserver that names its UID headers (1.32 and later), else null.
/// </summary>
public sealed record RemoteUser(string Name, IReadOnlyList<string> Groups, IReadOnlyDictionary<string, IReadOnlyList<string>> Extra, string? Uid = null)
{
    public override string ToString() => Groups.Count == 0 ? Name : $"{Name} (groups {string.Join(",", Groups)})";
}

/// <summary>How kube-apiserver's front proxy identifies itself and its users (kube-system/extension-apiserver-authentication).</summary>
public sealed record RequestHeaderSettings(
    X509Certificate2Collection ClientCertificateAuthorities,
    IReadOnlyList<string> AllowedNames,
    IReadOnlyList<string> UsernameHeaders,
    IReadOnlyList<string> GroupHeaders,
    IReadOnlyList<string> ExtraHeaderPrefixes,
    IReadOnlyList<string> UidHeaders)
{
    public const string ConfigMapNamespace = "kube-system";
    public const string ConfigMapName = "extension-apiserver-authentication";

    /// <summary>Reads the ConfigMap kube-apiserver keeps; throws with what is missing.</summary>
    public static RequestHeaderSettings FromConfigMap(V1ConfigMap configMap)
    {
        var data = configMap.Data ?? new Dictionary<string, string>();
        if (!data.TryGetValue("requestheader-client-ca-file", out var caPem) || caPem.Trim().Length == 0)
        {
            throw new InvalidOperationException($"{ConfigMapNamespace}/{ConfigMapName} has no requestheader-client-ca-file: kube-apiserver runs without --requestheader-client-ca-file, so no request can be trusted to come from it");
        }

        var cas = new X509Certificate2Collection();
        cas.ImportFromPem(caPem);
        IReadOnlyList<string> List(string key) => data.TryGetValue(key, out var json) && json.Length > 0 ? JsonSerializer.Deserialize<List<string>>(json) ?? [] : [];
        return new RequestHeaderSettings(cas, List("requestheader-allowed-names"), List("requestheader-username-headers"), List("requestheader-group-headers"), List("requestheader-extra-headers-prefix"),
            List("requestheader-uid-headers"));
    }
}

/// <summary>
/// Authenticates requests as a Kubernetes extension API server must: the TLS client certificate
/// must chain to the requestheader CA (for client authentication) and, when kube-apiserver lists
/// allowed names, carry one of them as its common name; only then are the user, group and extra
/// headers believed. Anything else is refused. The settings are read from the ConfigMap on first
/// use and read again (at most every 30 s) when a certificate does not verify, so a rotated CA is
/// picked up without a restart.
/// </summary>
public sealed class FrontProxyAuthenticator(IKubernetes kubernetes, ILogger<FrontProxyAuthenticator> logger, TimeProvider time)
{
    private static readonly TimeSpan RereadAfter = TimeSpan.FromSeconds(30);
    private readonly SemaphoreSlim reading = new(1, 1);
    private RequestHeaderSettings? settings;
    private DateTimeOffset readAt;

    /// <summary>The verified front proxy's user, or why the request is refused.</summary>
    public async Task<(RemoteUser? User, string? Refusal)> AuthenticateAsync(HttpContext context, bool requireUser, CancellationToken cancellationToken)
    {
        var certificate = await context.Connection.GetClientCertificateAsync(cancellationToken);
        if (certificate is null)
        {
            return (null, "no client certificate: this API is served only through kube-apiserver (kubectl get --raw /apis/subresources.kubecapture.io/...)");
        }

        RequestHeaderSettings current;
        try
        {
            current = await SettingsAsync(force: false, cancellationToken);
            if (!Verifies(certificate, current) && await RereadAsync(cancellationToken) is { } reread)
            {
                current = reread;
            }
        }
        catch (Exception e) when (e is HttpOperationException or HttpRequestException or InvalidOperationException or JsonException or CryptographicException)
        {
            logger.LogError("cannot read the front-proxy settings from {Namespace}/{Name}: {Error}", RequestHeaderSettings.ConfigMapNamespace, RequestHeaderSettings.ConfigMapName, e.Message);
            return (null, $"the front-proxy settings ({RequestHeaderSettings.ConfigMapNamespace}/{RequestHeaderSettings.ConfigMapName}) cannot be read: {e.Message}");
        }

        if (!Verifies(certificate, current))
        {
            return (null, $"the client certificate {certificate.Subject} is not signed by kube-apiserver's requestheader CA");
        }

        var commonName = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        if (current.AllowedNames.Count > 0 && !current.AllowedNames.Contains(commonName))
        {
            return (null, $"the client certificate's common name {commonName} is not one of the allowed front-proxy names ({string.Join(", ", current.AllowedNames)})");
        }

        var headers = context.Request.Headers;
        if (UserFrom(headers, current) is not { } user)
        {
            return requireUser ? (null, $"the front proxy named no user ({string.Join(", ", current.UsernameHeaders)})") : (new RemoteUser("", [], new Dictionary<string, IReadOnlyList<string>>()), null);
        }

        return (user, null);
    }

    /// <summary>
    /// The user the verified front proxy names in <paramref name="headers"/>, or null. The UID is read
    /// only from the headers kube-apiserver lists as its UID headers (<c>requestheader-uid-headers</c>,
    /// kube-apiserver 1.32 and later, which sets them and drops what a client sent); an older
    /// kube-apiserver passes a client's own <c>X-Remote-Uid</c> on, so none is believed then.
    /// </summary>
    public static RemoteUser? UserFrom(IHeaderDictionary headers, RequestHeaderSettings settings)
    {
        var name = settings.UsernameHeaders.Select(h => headers[h].FirstOrDefault()).FirstOrDefault(v => !string.IsNullOrEmpty(v));
        if (name is null)
        {
            return null;
        }

        var groups = settings.GroupHeaders.SelectMany(h => headers[h].Where(v => !string.IsNullOrEmpty(v)).Select(v => v!)).ToList();
        var extra = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (header, values) in headers)
        {
            var prefix = settings.ExtraHeaderPrefixes.FirstOrDefault(p => header.StartsWith(p, StringComparison.OrdinalIgnoreCase));
            if (prefix is not null)
            {
                extra[Uri.UnescapeDataString(header[prefix.Length..]).ToLowerInvariant()] = values.Where(v => v is not null).Select(v => v!).ToList();
            }
        }

        var uid = settings.UidHeaders.Select(h => headers[h].FirstOrDefault()).FirstOrDefault(v => !string.IsNullOrEmpty(v));
        return new RemoteUser(name, groups, extra, uid);
    }

    private static bool Verifies(X509Certificate2 certificate, RequestHeaderSettings settings)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(settings.ClientCertificateAuthorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true; // never fetch a URL a presented certificate names (AIA)
        chain.ChainPolicy.ApplicationPolicy.Add(new Oid("1.3.6.1.5.5.7.3.2")); // clientAuth
        return chain.Build(certificate);
    }

    private async Task<RequestHeaderSettings?> RereadAsync(CancellationToken cancellationToken) =>
        time.GetUtcNow() - readAt >= RereadAfter ? await SettingsAsync(force: true, cancellationToken) : null;

    private async Task<RequestHeaderSettings> SettingsAsync(bool force, CancellationToken cancellationToken)
    {
        if (settings is { } known && !force)
        {
            return known;
        }

        await reading.WaitAsync(cancellationToken);
        try
        {
            if (settings is { } other && !force)
            {
                return other;
            }

            V1ConfigMap configMap;
            try
            {
                configMap = await kubernetes.CoreV1.ReadNamespacedConfigMapAsync(RequestHeaderSettings.ConfigMapName, RequestHeaderSettings.ConfigMapNamespace, cancellationToken: cancellationToken);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
            {
                throw new InvalidOperationException($"{RequestHeaderSettings.ConfigMapNamespace}/{RequestHeaderSettings.ConfigMapName} does not exist", e);
            }

            settings = RequestHeaderSettings.FromConfigMap(configMap);
            readAt = time.GetUtcNow();
            return settings;
        }
        finally
        {
            reading.Release();
        }
    }
}
