using System.Globalization;

namespace KubeCapture.Bench;

/// <summary>The CPU seconds (user + system) other processes have used so far, from /proc/PID/stat.</summary>
public sealed class ProcessCpu(string pids)
{
    /// <summary>/proc counts in USER_HZ, which Linux fixes at 100 for user space whatever the kernel's HZ.</summary>
    private const double TicksPerSecond = 100;

    /// <summary>The processes, comma-separated.</summary>
    public string Pids { get; } = pids;

    public double Seconds() => Pids.Split(',').Sum(pid => Seconds(int.Parse(pid, CultureInfo.InvariantCulture)));

    private static double Seconds(int pid)
    {
        // The fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[14 - 3], CultureInfo.InvariantCulture) + long.Parse(fields[15 - 3], CultureInfo.InvariantCulture)) / TicksPerSecond;
    }
}
