using System.Runtime.InteropServices;

namespace KubeCapture.Agent.Ingest;

/// <summary>
/// In cluster mode the agent holds two secrets: the upload token (in its environment) and its
/// session (in its memory), which together let it write the target's evidence. Other processes of
/// the pod may share its user and, with <c>shareProcessNamespace</c>, see it; a dumpable process's
/// <c>/proc/PID/environ</c> and memory are readable by any process of the same user. The agent makes
/// itself non-dumpable (<c>prctl(PR_SET_DUMPABLE, 0)</c>) before it reads the token: then only a
/// process with CAP_SYS_PTRACE (no container runtime grants it by default) can read either.
/// </summary>
public static partial class ProcessSecrecy
{
    private const int SetDumpable = 4; // PR_SET_DUMPABLE

    /// <summary>Makes this process non-dumpable; false (and the reason) where the kernel refuses.</summary>
    public static bool Seal(out string? error)
    {
        error = null;
        if (!OperatingSystem.IsLinux())
        {
            return true; // the agent captures on Linux only
        }

        if (Prctl(SetDumpable, 0, 0, 0, 0) == 0)
        {
            return true;
        }

        error = $"prctl(PR_SET_DUMPABLE, 0) failed with errno {Marshal.GetLastPInvokeError()}";
        return false;
    }

    [LibraryImport("libc.so.6", EntryPoint = "prctl", SetLastError = true)]
    private static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
