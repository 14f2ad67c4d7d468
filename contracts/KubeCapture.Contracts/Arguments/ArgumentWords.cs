namespace KubeCapture.Contracts.Arguments;

/// <summary>
/// How the agent and the plugin take one command-line word apart, the way tcpdump and kubectl users
/// type options: <c>--name value</c> or <c>--name=value</c>; a short option with its value attached
/// (<c>-c500</c>, <c>-nprod</c>) is the option and the value; <c>-nn</c> stays a word of its own.
/// A short option's attached value is returned as typed: <c>-n=prod</c> gives "=prod", which kubectl
/// reads as "prod" (<see cref="KubectlValue"/>) and tcpdump as "=prod" (so <c>-c=500</c> is no count).
/// </summary>
public static class ArgumentWords
{
    /// <summary>The option's name and, when the word carries it, its value.</summary>
    public static (string Name, string? Value) Split(string arg)
    {
        if (arg.StartsWith("--", StringComparison.Ordinal))
        {
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            return eq < 0 ? (arg, null) : (arg[..eq], arg[(eq + 1)..]);
        }

        return arg.Length > 2 && arg != "-nn" ? (arg[..2], arg[2..]) : (arg, null);
    }

    /// <summary>An attached value as kubectl reads it: <c>-n=prod</c> is namespace "prod".</summary>
    public static string? KubectlValue(string name, string? value) =>
        name.StartsWith("--", StringComparison.Ordinal) ? value : value?.TrimStart('=');

    /// <summary>Whether <paramref name="arg"/> is an option (not a word such as a filter or a pod, nor "-", which is a word).</summary>
    public static bool IsOption(string arg) => arg.StartsWith('-') && arg != "-";
}
