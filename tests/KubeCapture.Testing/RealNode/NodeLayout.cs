using KubeCapture.Testing.Kubernetes;
using KubeCapture.Testing.Processes;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// Where the one node of this machine lives: its addresses (fixed, since only one node of ours runs
/// per machine: <see cref="NodeLock"/>), the files of one run under its state directory, and the
/// binaries it runs. Nothing here leaves the machine: the node IP is a /32 on <c>lo</c> from the
/// benchmarking range, the pods' bridge has no default route.
/// </summary>
public sealed class NodeLayout(string directory)
{
    public const string NodeName = "kcnode";

    /// <summary>The node IP: a /32 on lo (no dummy links here; the kubelet refuses loopback and link-local node IPs).</summary>
    public const string NodeIp = "198.19.254.1";

    public const string PodCidr = "10.244.0.0/24";
    public const string PodGateway = "10.244.0.1";
    public const string ServiceCidr = "10.245.0.0/16";

    /// <summary>The <c>kubernetes</c> Service's ClusterIP (the first of <see cref="ServiceCidr"/>): in-cluster clients reach the API here.</summary>
    public const string KubernetesServiceIp = "10.245.0.1";

    public const string Bridge = "kcbr0";
    public const int ApiServerPort = 6443;
    public const string ClusterDomain = "cluster.local";

    /// <summary>The pause image every pod sandbox runs (built here from catatonit: no registry is reachable).</summary>
    public const string PauseImage = "kubecapture.local/pause:3.9";

    /// <summary>A busybox image for test pods (a web server with <c>httpd</c>, a client with <c>wget</c>).</summary>
    public const string BusyboxImage = "kubecapture.local/busybox:1.35";

    /// <summary>Static users with no rights until a test binds some (token "NAME-token", group kcnode-users).</summary>
    public static readonly IReadOnlyList<string> Users = ["alice", "bob", "mallory"];

    public string Directory { get; } = directory;

    public string StateFile => Path.Combine(Directory, "state.json");

    public string JournalFile => Path.Combine(Directory, "host-changes.json");

    public string Pki => Path.Combine(Directory, "pki");

    public string Logs => Path.Combine(Directory, "logs");

    public string Pids => Path.Combine(Directory, "pids");

    public string Etcd => Path.Combine(Directory, "etcd");

    public string ContainerdRoot => Path.Combine(Directory, "containerd", "root");

    public string ContainerdState => Path.Combine(Directory, "containerd", "state");

    public string ContainerdSocket => Path.Combine(Directory, "containerd", "containerd.sock");

    public string ContainerdConfig => Path.Combine(Directory, "containerd", "config.toml");

    public string RuncRoot => Path.Combine(Directory, "runc");

    public string CniConfDir => Path.Combine(Directory, "cni", "net.d");

    public string CniIpamDir => Path.Combine(Directory, "cni", "ipam");

    public string KubeletRoot => Path.Combine(Directory, "kubelet");

    public string DnsHostsDir => Path.Combine(Directory, "dns");

    public string Images => Path.Combine(Directory, "images");

    public string Kubeconfig(string who) => Path.Combine(Directory, $"{who}.kubeconfig");

    public string Log(string component) => Path.Combine(Logs, component + ".log");

    public static string ApiServerUrl => $"https://{NodeIp}:{ApiServerPort}";

    /// <summary>Paths the 1.28 kubelet, containerd and CNI use whatever the configuration says (README fact 10): cleaned of what a run created.</summary>
    public static readonly IReadOnlyList<string> FixedHostPaths =
    [
        "/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/run/containerd", "/var/lib/cni",
    ];
}

/// <summary>The programs a node runs, and why it cannot run here when one is missing.</summary>
public static class NodeBinaries
{
    /// <summary>kubelet, kube-proxy, kube-scheduler, kube-controller-manager: KUBECAPTURE_REALNODE_BIN, else .tools/realnode/ (scripts/setup.sh unpacks ../shared/realnode/*.xz there).</summary>
    public static string KubernetesDirectory =>
        Environment.GetEnvironmentVariable("KUBECAPTURE_REALNODE_BIN") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Tools.RepositoryRoot, ".tools", "realnode");

    public static string Kubelet => Path.Combine(KubernetesDirectory, "kubelet");

    public static string KubeProxy => Path.Combine(KubernetesDirectory, "kube-proxy");

    public static string Scheduler => Path.Combine(KubernetesDirectory, "kube-scheduler");

    public static string ControllerManager => Path.Combine(KubernetesDirectory, "kube-controller-manager");

    public static string ApiServer => KubeApiServer.BinaryPath;

    public const string Etcd = KubeApiServer.EtcdPath;
    public const string Containerd = "/usr/bin/containerd";
    public const string Ctr = "/usr/bin/ctr";
    public const string Runc = "/usr/sbin/runc";
    public const string Dnsmasq = "/usr/sbin/dnsmasq";
    public const string CniBin = "/usr/lib/cni";
    public const string Catatonit = "/usr/bin/catatonit";
    public const string Busybox = "/bin/busybox";

    /// <summary>Why a node cannot start here (one line, saying what installs it), or null.</summary>
    public static string? Missing
    {
        get
        {
            if (KubeApiServer.Missing is { } apiServer)
            {
                return apiServer;
            }

            string[] kubernetes = [Kubelet, KubeProxy, Scheduler, ControllerManager];
            if (kubernetes.FirstOrDefault(b => !File.Exists(b)) is { } absent)
            {
                return $"{absent} is missing: scripts/setup.sh unpacks it from ../shared/realnode/{Path.GetFileName(absent)}.xz (or set KUBECAPTURE_REALNODE_BIN)";
            }

            string[] debian = [Containerd, Ctr, Runc, Dnsmasq, Path.Combine(CniBin, "bridge"), Path.Combine(CniBin, "host-local"), Path.Combine(CniBin, "loopback"), Catatonit, Busybox, "/usr/sbin/conntrack"];
            return debian.FirstOrDefault(b => !File.Exists(b)) is { } package
                ? $"{package} is missing: scripts/setup.sh installs it (containerd, containernetworking-plugins, runc, dnsmasq-base, catatonit, busybox-static, conntrack)"
                : !HostCommand.IsRoot
                    ? "a node needs root (network, mounts, cgroups)"
                    : null;
        }
    }
}
