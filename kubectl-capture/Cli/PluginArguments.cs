
using KubeCapture.Contracts.Arguments;

namespace KubeCapture.KubectlPlugin.Cli;

/// <summary>Where to reach the cluster, as kubectl is told: <c>--kubeconfig</c>, <c>--context</c>, <c>-n/--namespace</c>, else <c>KUBECONFIG</c>.</summary>
public sealed record ClusterSelection(string? Kubeconfig, string? Context, string? Namespace);

/// <summary>A command line taken apart: the command word, its options, its other words, and the cluster to use.</summary>
public sealed record PluginArguments(string Command, IReadOnlyDictionary<string, string> Options, IReadOnlySet<string> Flags, IReadOnlyList<string> Words, ClusterSelection Cluster)
{
    public const string Create = "create";

    /// <summary>The command words; anything else first is the pod of a new capture (a pod named like one: pod/NAME).</summary>
    public static readonly string[] Commands = ["list", "status", "stop", "snapshot", "download", "follow", "verify", "help", "version"];

    public string? Option(string name) => Options.TryGetValue(name, out var value) ? value : null;

    public bool Flag(string name) => Flags.Contains(name);

    /// <summary>
    /// Parses kubectl's way: options before, between or after the words, <c>--name value</c>,
    /// <c>--name=value</c>, <c>-n value</c> or <c>-nvalue</c>; <c>--</c> ends the options (a filter
    /// word that starts with '-'). Unknown options and missing values are <see cref="UsageException"/>.
    /// </summary>
    public static PluginArguments Parse(IReadOnlyList<string> args)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        var flags = new HashSet<string>(StringComparer.Ordinal);
        var words = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                words.AddRange(args.Skip(i + 1));
                break;
            }

            if (!ArgumentWords.IsOption(arg))
            {
                words.Add(arg);
                continue;
            }

            var (name, typed) = ArgumentWords.Split(arg);
            var inline = ArgumentWords.KubectlValue(name, typed);
            if (name == "-nn")
            {
                throw new UsageException(DoubleN);
            }

            if (!OptionNames.TryGetValue(name, out var canonical))
            {
                throw new UsageException($"unknown option '{arg}' (see kubectl capture --help)");
            }

            if (FlagNames.Contains(canonical))
            {
                if (inline is not null)
                {
                    throw new UsageException($"option {name} takes no value");
                }

                flags.Add(canonical);
                continue;
            }

            var value = inline ?? (i + 1 < args.Count ? args[++i] : throw new UsageException($"option {name} needs a value"));
            if (string.IsNullOrWhiteSpace(value))
            {
                throw new UsageException($"option {name} needs a non-empty value");
            }

            if (!options.TryAdd(canonical, value))
            {
                throw new UsageException($"option {name} is given twice");
            }
        }

        string command;
        if (flags.Contains("--help"))
        {
            command = "help";
        }
        else if (words.Count == 0 && options.ContainsKey("--selector"))
        {
            command = Create;
        }
        else if (words.Count == 0)
        {
            throw new UsageException("nothing to do: kubectl capture POD --reason \"...\" ['BPF FILTER'], or list, status, stop, snapshot, download, follow, verify (see kubectl capture --help)");
        }
        else if (Commands.Contains(words[0]))
        {
            command = words[0];
            words.RemoveAt(0);
        }
        else
        {
            command = Create;
        }

        var cluster = new ClusterSelection(options.GetValueOrDefault("--kubeconfig"), options.GetValueOrDefault("--context"), options.GetValueOrDefault("--namespace"));
        return new PluginArguments(command, options, flags, words, cluster);
    }

    /// <summary>Refuses an option that the command does not take, naming both.</summary>
    public void Allow(params string[] names)
    {
        foreach (var given in Options.Keys.Concat(Flags))
        {
            if (!names.Contains(given) && !GlobalOptions.Contains(given))
            {
                throw new UsageException($"{Command} does not take {given} (see kubectl capture --help)");
            }
        }
    }

    /// <summary>tcpdump's -nn, typed out of habit: kubectl's reading of it would capture in the wrong namespace.</summary>
    internal const string DoubleN = "-nn is not an option of kubectl capture: kubectl reads it as -n n, the namespace \"n\". " +
        "tcpdump's -nn is not needed: captures never resolve names (tcpdump -r shows addresses and ports as captured). " +
        "To name namespace n, write -n n";

    private static readonly string[] GlobalOptions = ["--kubeconfig", "--context", "--namespace", "--help"];

    private static readonly HashSet<string> FlagNames = ["--wait", "--help"];

    private static readonly Dictionary<string, string> OptionNames = new(StringComparer.Ordinal)
    {
        ["--kubeconfig"] = "--kubeconfig",
        ["--context"] = "--context",
        ["-n"] = "--namespace",
        ["--namespace"] = "--namespace",
        ["-i"] = "--interface",
        ["--interface"] = "--interface",
        ["-s"] = "--snaplen",
        ["--snaplen"] = "--snaplen",
        ["-c"] = "--count",
        ["--count"] = "--count",
        ["--duration"] = "--duration",
        ["--max-bytes"] = "--max-bytes",
        ["--reason"] = "--reason",
        ["-l"] = "--selector",
        ["--selector"] = "--selector",
        ["--name"] = "--name",
        ["--wait"] = "--wait",
        ["--pod"] = "--pod",
        ["--snapshot"] = "--snapshot",
        ["-o"] = "--output",
        ["--output"] = "--output",
        ["--public-key"] = "--public-key",
        ["-h"] = "--help",
        ["--help"] = "--help",
    };
}
