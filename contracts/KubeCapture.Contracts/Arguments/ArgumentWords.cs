namespace KubeCapture.Contracts.Arguments;

/// <summary>
/// How the agent and the plugin take one command-line word apart, the way tcpdump and kubectl users
/// type options: <c>--name value</c> or <c>--name=value</c>; a short option with its value attached
/// (<c>-c500</c>, <c>-nprod</c>, <c>-n=prod</c>) is the option and the value; <c>-nn</c> stays a flag.
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

        return arg.Length > 2 && arg != "-nn" ? (arg[..2], arg[2..].TrimStart('=')) : (arg, null);
    }

    /// <summary>Whether <paramref name="arg"/> is an option (not a word such as a filter or a pod, nor "-", which is a word).</summary>
    public static bool IsOption(string arg) => arg.StartsWith('-') && arg != "-";
}
