using System.Net.Http.Headers;
using k8s;
using k8s.Exceptions;
using k8s.KubeConfigModels;
using KubeCapture.KubectlPlugin.Cli;

namespace KubeCapture.KubectlPlugin.Cluster;

/// <summary>Something the cluster or the kubeconfig refused; one line for people, exit 1.</summary>
public sealed class ClusterException(string message) : Exception(message);

/// <summary>
/// The cluster as kubectl finds it: <c>--kubeconfig FILE</c>, else the files of <c>KUBECONFIG</c>
/// (merged, ':'-separated), else ~/.kube/config; <c>--context</c> or the current context; the
/// namespace from <c>-n</c>, else the context's, else "default". Credentials are whatever the
/// kubeconfig holds (token, client certificate, exec plugin), through KubernetesClient.
/// </summary>
public sealed class ClusterConnection : IDisposable
{
    private readonly Kubernetes client;

    private ClusterConnection(Kubernetes client, string ns)
    {
        this.client = client;
        Namespace = ns;
    }

    public IKubernetes Client => client;

    public string Namespace { get; }

    public static ClusterConnection Open(ClusterSelection selection, Func<string, string?> environment)
    {
        KubernetesClientConfiguration config;
        try
        {
            config = KubernetesClientConfiguration.BuildConfigFromConfigObject(LoadKubeconfig(selection, environment), selection.Context);
        }
        catch (KubeConfigException e)
        {
            throw new ClusterException($"kubeconfig: {e.Message}");
        }

        // Downloads and follows stream for as long as the capture runs: no client-side timeout on them.
        config.HttpClientTimeout = Timeout.InfiniteTimeSpan;
        var ns = selection.Namespace ?? (string.IsNullOrEmpty(config.Namespace) ? "default" : config.Namespace);
        return new ClusterConnection(new Kubernetes(config), ns);
    }

    private static K8SConfiguration LoadKubeconfig(ClusterSelection selection, Func<string, string?> environment)
    {
        FileInfo[] files;
        if (selection.Kubeconfig is { } explicitFile)
        {
            files = [new FileInfo(explicitFile)];
            if (!files[0].Exists)
            {
                throw new ClusterException($"--kubeconfig '{explicitFile}': no such file");
            }
        }
        else if (environment("KUBECONFIG") is { Length: > 0 } list)
        {
            files = list.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).Select(f => new FileInfo(f)).Where(f => f.Exists).ToArray();
            if (files.Length == 0)
            {
                throw new ClusterException($"KUBECONFIG='{list}': none of these files exists");
            }
        }
        else
        {
            var home = environment("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            files = [new FileInfo(Path.Combine(home, ".kube", "config"))];
            if (!files[0].Exists)
            {
                throw new ClusterException($"no kubeconfig: {files[0].FullName} does not exist; give --kubeconfig FILE or set KUBECONFIG");
            }
        }

        try
        {
            return Merge(files.Select(f => KubernetesClientConfiguration.LoadKubeConfig(f, useRelativePaths: true)).ToList());
        }
        catch (Exception e) when (e is KubeConfigException or IOException or YamlDotNet.Core.YamlException)
        {
            throw new ClusterException($"kubeconfig {string.Join(':', files.Select(f => f.FullName))}: {e.Message}");
        }
    }

    /// <summary>kubectl's merge of the KUBECONFIG files: the first to name a cluster, user or context, or to set current-context, wins.</summary>
    private static K8SConfiguration Merge(IReadOnlyList<K8SConfiguration> configs)
    {
        var merged = configs[0];
        foreach (var next in configs.Skip(1))
        {
            merged.CurrentContext = string.IsNullOrEmpty(merged.CurrentContext) ? next.CurrentContext : merged.CurrentContext;
            merged.Clusters = (merged.Clusters ?? []).Concat(next.Clusters ?? []).DistinctBy(c => c.Name).ToList();
            merged.Users = (merged.Users ?? []).Concat(next.Users ?? []).DistinctBy(u => u.Name).ToList();
            merged.Contexts = (merged.Contexts ?? []).Concat(next.Contexts ?? []).DistinctBy(c => c.Name).ToList();
        }

        return merged;
    }

    /// <summary>
    /// GET of a path of the Kubernetes API with the kubeconfig's credentials, the response read as
    /// it comes (headers first). A refusal is a <see cref="ClusterException"/> with the server's
    /// Status message, as kubectl prints it.
    /// </summary>
    public Task<HttpResponseMessage> GetStreamAsync(string pathAndQuery, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Get, pathAndQuery, cancellationToken);

    /// <summary>POST (no body) to a path of the Kubernetes API, as <see cref="GetStreamAsync"/>: a snapshot by hand.</summary>
    public Task<HttpResponseMessage> PostAsync(string pathAndQuery, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, pathAndQuery, cancellationToken);

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string pathAndQuery, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(method, new Uri(client.BaseUri, pathAndQuery.TrimStart('/')));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("*/*"));
        if (client.Credentials is { } credentials)
        {
            await credentials.ProcessHttpRequestAsync(request, cancellationToken);
        }

        HttpResponseMessage response;
        try
        {
            response = await client.HttpClient.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new ClusterException($"cannot reach the Kubernetes API at {client.BaseUri}: {e.Message}");
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            throw new ClusterException(ServerErrors.Describe((int)response.StatusCode, body));
        }
    }

    public void Dispose() => client.Dispose();
}
