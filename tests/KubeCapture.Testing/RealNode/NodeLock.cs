using System.Globalization;

namespace KubeCapture.Testing.RealNode;

/// <summary>
/// One node of ours per machine: the kubelet, containerd and the CNI plugins use fixed host paths
/// (<see cref="NodeLayout.FixedHostPaths"/>), and the node IP, bridge and iptables chains are fixed
/// too. The node process holds an exclusive lock (flock, released by the kernel when the process
/// dies, so a crashed node never blocks the next) for as long as it runs; who holds it, and the
/// state directory of the last node, are written beside it.
/// </summary>
public sealed class NodeLock : IDisposable
{
    private static readonly string LockDirectory = Directory.Exists("/run/lock") ? "/run/lock" : Path.GetTempPath();
    private readonly FileStream stream;

    private NodeLock(FileStream stream) => this.stream = stream;

    public static string LockPath => Path.Combine(LockDirectory, "kubecapture-node.lock");

    /// <summary>Who holds (or last held) the lock: "pid state-directory start-time".</summary>
    public static string OwnerPath => Path.Combine(LockDirectory, "kubecapture-node.owner");

    /// <summary>Takes the lock, or throws <see cref="NodeBusyException"/> naming the node that holds it.</summary>
    public static NodeLock Acquire()
    {
        try
        {
            return new NodeLock(new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        }
        catch (IOException)
        {
            throw new NodeBusyException($"another KubeCapture node runs on this machine ({DescribeOwner()}): one node per machine, since the kubelet, containerd and CNI use fixed host paths; wait for it to end, or stop it (SIGTERM to its kubecapture-node process)");
        }
    }

    /// <summary>The state directory of the node that held the lock before this one (null if none): a node that died leaves it for <see cref="NodeTeardown"/>.</summary>
    public static string? PreviousStateDirectory()
    {
        var owner = ReadOwner();
        return owner is { Length: >= 2 } && Directory.Exists(owner[1]) ? owner[1] : null;
    }

    /// <summary>Records this process as the owner, with its state directory.</summary>
    public void Record(string stateDirectory) =>
        File.WriteAllText(OwnerPath, string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId} {stateDirectory} {DateTime.UtcNow:O}\n"));

    /// <summary>The node ended and cleaned up: the owner file no longer names its directory.</summary>
    public void Release()
    {
        File.WriteAllText(OwnerPath, string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId} - {DateTime.UtcNow:O}\n"));
    }

    public void Dispose() => stream.Dispose();

    private static string[]? ReadOwner()
    {
        try
        {
            return File.Exists(OwnerPath) ? File.ReadAllText(OwnerPath).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string DescribeOwner() => ReadOwner() is { Length: >= 3 } owner
        ? $"pid {owner[0]}, state {owner[1]}, started {owner[2]}"
        : $"lock {LockPath}";
}

/// <summary>A node of ours already runs on this machine.</summary>
public sealed class NodeBusyException(string message) : Exception(message);
