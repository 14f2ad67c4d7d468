namespace KubeCapture.Contracts.Arguments;

/// <summary>
/// The exit codes the agent and the plugin share (verify adds <see cref="Custody.VerifyCommand.NotVerified"/>
/// and the codes after it), and the one way both say that their input was bad.
/// </summary>
public static class ExitCodes
{
    /// <summary>Done (captured, stored, verified).</summary>
    public const int Done = 0;

    /// <summary>Failed while working (what was captured is kept); the reason on stderr.</summary>
    public const int Failed = 1;

    /// <summary>Bad input, refused before anything was done; one line on stderr names the problem.</summary>
    public const int BadInput = 2;

    /// <summary>
    /// Writes "<paramref name="program"/>: message" for input the program cannot run with (a
    /// <see cref="UsageException"/>, a capture that cannot start as asked) or, for a missing libpcap,
    /// <paramref name="libpcapAdvice"/> and the loader's message; returns <see cref="BadInput"/>.
    /// </summary>
    public static int RefuseInput(Exception problem, string program, string libpcapAdvice, TextWriter stderr)
    {
        stderr.WriteLine(problem is DllNotFoundException ? $"{program}: {libpcapAdvice}: {problem.Message}" : $"{program}: {problem.Message}");
        return BadInput;
    }
}
