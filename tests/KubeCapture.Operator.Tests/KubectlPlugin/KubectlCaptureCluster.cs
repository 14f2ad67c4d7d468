using System.Diagnostics;
using System.Reflection;
using k8s;
using KubeCapture.Operator.Custody;
using KubeCapture.Operator.Tests.Subresources;
using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Processes;
using KubeCapture.Testing.S3;
using Minio;
using Minio.DataModel.Args;

namespace KubeCapture.Operator.Tests.KubectlPlugin;

/// <summary>
/// The built <c>kubectl-capture</c> run as a process against the run's <see cref="SubresourcesCluster"/>,
/// as a user of a namespace: "edit" there is the chart's ClusterRoles that aggregate into edit
/// (RELEASE-kubecapture-edit and -download; no controller-manager runs here to aggregate them into
/// the built-in role), "view" the one that aggregates into view.
/// </summary>
public static class KubectlCaptureCluster
{
    public const string EditRole = $"{KubeCaptureInstall.Release}-kubecapture-edit";
    public const string DownloadRole = $"{KubeCaptureInstall.Release}-kubecapture-download";
    public const string ViewRole = $"{KubeCaptureInstall.Release}-kubecapture-view";

    /// <summary>kubectl-capture/bin/CONFIGURATION/net10.0/kubectl-capture (the test project builds it first).</summary>
    public static string Binary { get; } = Path.Combine(Tools.RepositoryRoot, "kubectl-capture", "bin",
        typeof(KubectlCaptureCluster).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug", "net10.0", "kubectl-capture");

    /// <summary>Gives <paramref name="user"/> what the built-in edit role holds of KubeCapture in <paramref name="ns"/>.</summary>
    public static async Task GrantEditAsync(this SubresourcesCluster cluster, string ns, string user)
    {
        await cluster.BindAsync(ns, user, EditRole);
        await cluster.BindAsync(ns, user, DownloadRole);
    }

    /// <summary>A kubeconfig of <paramref name="user"/> (a static token user of the server).</summary>
    public static string KubeconfigOf(this SubresourcesCluster cluster, string user) =>
        cluster.Install.Server.WriteKubeconfig(KubeApiServer.UserToken(user), $"plugin-{user}-{Guid.NewGuid().ToString("N")[..6]}");

    /// <summary>Runs <c>kubectl-capture --kubeconfig K -n NS ARGS</c> in the work directory.</summary>
    public static Task<CommandResult> PluginAsync(this SubresourcesCluster cluster, string kubeconfig, string ns, params string[] args)
    {
        var start = new ProcessStartInfo(Binary) { WorkingDirectory = cluster.WorkDirectory };
        foreach (var arg in new[] { "--kubeconfig", kubeconfig, "-n", ns }.Concat(args))
        {
            start.ArgumentList.Add(arg);
        }

        return HostCommand.RunAsync(start, TimeSpan.FromSeconds(120));
    }

    /// <summary>Starts <c>kubectl-capture follow NAME | tcpdump -nn -l -r -</c>, tcpdump's lines going to a file as they come.</summary>
    public static (Process Process, string Lines) StartFollowIntoTcpdump(this SubresourcesCluster cluster, string kubeconfig, string ns, string name)
    {
        var lines = Path.Combine(cluster.WorkDirectory, Guid.NewGuid().ToString("N") + ".tcpdump");
        var start = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in new[] { "-c", "set -o pipefail; \"$0\" --kubeconfig \"$1\" -n \"$2\" follow \"$3\" | tcpdump -nn -l -r - > \"$4\"", Binary, kubeconfig, ns, name, lines })
        {
            start.ArgumentList.Add(a);
        }

        File.WriteAllText(lines, "");
        return (Process.Start(start)!, lines);
    }

    /// <summary>The operator's public manifest-signing key (its ConfigMap), in a PEM file: what a user is given to verify with.</summary>
    public static async Task<string> PublicKeyFileAsync(this SubresourcesCluster cluster)
    {
        var published = await cluster.Admin.CoreV1.ReadNamespacedConfigMapAsync(SecretSigningKey.Name, KubeCaptureInstall.Namespace);
        var path = Path.Combine(cluster.WorkDirectory, $"operator-{Guid.NewGuid().ToString("N")[..6]}.pub");
        await File.WriteAllTextAsync(path, published.Data[SecretSigningKey.PublicKeyEntry]);
        return path;
    }

    /// <summary>Replaces a stored object (an s3:// URI) in the bucket with <paramref name="content"/>: evidence tampered with behind the operator's back.</summary>
    public static async Task OverwriteStoredAsync(this SubresourcesCluster cluster, string uri, byte[] content)
    {
        var prefix = $"s3://{cluster.S3.Bucket}/";
        using var client = new MinioClient()
            .WithEndpoint("127.0.0.1", cluster.S3.Port)
            .WithCredentials(S3rverFixture.AccessKey, S3rverFixture.SecretKey)
            .WithSSL(false)
            .Build();
        using var stream = new MemoryStream(content);
        await client.PutObjectAsync(new PutObjectArgs()
            .WithBucket(cluster.S3.Bucket)
            .WithObject(uri[prefix.Length..])
            .WithStreamData(stream)
            .WithObjectSize(content.Length)
            .WithContentType("application/vnd.tcpdump.pcap"));
    }
}
