using System.Globalization;

namespace KubeCapture.Testing.Netns;

/// <summary>
/// /30 subnets for links between a pod and the node (the root namespace), unique across every test
/// process on the machine: unlike addresses inside a namespace, the node side of a link shares one
/// routing table with every other test run, and two links with the same subnet would route each
/// other's packets. Taken from 169.254.64.0/18 (4096 links) by creating a lease file exclusively;
/// a lease whose process is gone is taken over.
/// </summary>
public static class NodeLinkSubnets
{
    public const int Count = 4096;
    private static readonly string Directory = Path.Combine(Path.GetTempPath(), "kubecapture-node-links");
    private static int next = Environment.ProcessId % Count;

    /// <summary>Leases a subnet: node side .1, pod side .2 of the returned /30.</summary>
    public static NodeLinkSubnet Lease()
    {
        System.IO.Directory.CreateDirectory(Directory);
        for (var tries = 0; tries < Count; tries++)
        {
            var index = Interlocked.Increment(ref next) % Count;
            var path = Path.Combine(Directory, index.ToString(CultureInfo.InvariantCulture));
            if (TryCreate(path) || (IsStale(path) && TryTakeOver(path)))
            {
                return new NodeLinkSubnet(index, path);
            }
        }

        throw new InvalidOperationException($"all {Count} node-link subnets in {Directory} are leased by live processes");
    }

    private static bool TryCreate(string path)
    {
        // The lease appears with its pid already in it (written aside, then linked into place without
        // overwriting): another process never sees an empty lease and takes it for a dead one's.
        var written = $"{path}.{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}.{Environment.CurrentManagedThreadId.ToString(CultureInfo.InvariantCulture)}.new";
        File.WriteAllText(written, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        try
        {
            File.Move(written, path, overwrite: false);
            return true;
        }
        catch (IOException)
        {
            File.Delete(written);
            return false;
        }
    }

    private static bool IsStale(string path)
    {
        try
        {
            return !int.TryParse(File.ReadAllText(path), CultureInfo.InvariantCulture, out var pid) || !File.Exists($"/proc/{pid}/status");
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static bool TryTakeOver(string path)
    {
        // Rename the stale lease away first: of two processes taking it over, one rename wins.
        var moved = path + "." + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        try
        {
            File.Move(path, moved);
            File.Delete(moved);
        }
        catch (IOException)
        {
            return false;
        }

        return TryCreate(path);
    }
}

/// <summary>One leased /30: <see cref="NodeAddress"/> (.1) on the node, <see cref="PodAddress"/> (.2) in the pod.</summary>
public sealed class NodeLinkSubnet(int index, string leasePath) : IDisposable
{
    public int Index { get; } = index;

    public string NodeAddress { get; } = Address(index, 1);

    public string PodAddress { get; } = Address(index, 2);

    /// <summary>
    /// The same lease's node address in 198.18.0.0/15 (benchmarking, never routed on the Internet):
    /// for what Kubernetes refuses at link-local addresses (an Endpoints address behind an APIService).
    /// </summary>
    public string RoutableNodeAddress { get; } = string.Create(CultureInfo.InvariantCulture, $"198.18.{64 + (index / 64)}.{(index % 64 * 4) + 1}");

    public void Dispose() => File.Delete(leasePath);

    private static string Address(int index, int host) =>
        string.Create(CultureInfo.InvariantCulture, $"169.254.{64 + (index / 64)}.{(index % 64 * 4) + host}");
}
