using System.Diagnostics;

namespace KubeCapture.Testing.Processes;

/// <summary>A long-running server process (etcd, kube-apiserver, the kubelet, ...) whose output goes to a log file.</summary>
public static class LoggedProcess
{
    /// <summary>
    /// Starts <paramref name="file"/> with its standard output and error appended to <paramref name="log"/>
    /// (servers log a lot, and nobody reads a pipe) and no standard input.
    /// </summary>
    public static Process Start(string file, IEnumerable<string> arguments, string log, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        // The shell only redirects the output, then becomes the program.
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("exec \"$0\" \"$@\" >>\"$KC_LOG\" 2>&1 </dev/null");
        start.ArgumentList.Add(file);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["KC_LOG"] = log;
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        return Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
    }
}
