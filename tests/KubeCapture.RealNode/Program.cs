using System.Runtime.InteropServices;
using KubeCapture.Testing.RealNode;

namespace KubeCapture.RealNode;

/// <summary>
/// kubecapture-node run --state DIR [--image ARCHIVE[=NAME]]... [--stdin-lifeline]: starts a one-node
/// cluster (<see cref="NodeCluster"/>), writes DIR/state.json once it is Ready, and runs until SIGTERM
/// or SIGINT (or, with --stdin-lifeline, until its standard input closes: the process that started
/// it is gone), then stops it and undoes every host change. Exit codes: 0 stopped and the host
/// restored; 1 failed (or something could not be undone: listed); 2 bad usage; 3 another node of
/// ours runs on this machine.
/// </summary>
public static class Program
{
    public const string Usage = "usage: kubecapture-node run --state DIR [--image ARCHIVE[=NAME]]... [--stdin-lifeline] [--keep-state]";

    public static async Task<int> Main(string[] args)
    {
        if (args is not ["run", .. var rest])
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }

        string? state = null;
        var images = new List<string>();
        var lifeline = false;
        var keep = false;
        for (var i = 0; i < rest.Length; i++)
        {
            switch (rest[i])
            {
                case "--state" when i + 1 < rest.Length:
                    state = rest[++i];
                    break;
                case "--image" when i + 1 < rest.Length:
                    images.Add(rest[++i]);
                    break;
                case "--stdin-lifeline":
                    lifeline = true;
                    break;
                case "--keep-state":
                    keep = true;
                    break;
                default:
                    Console.Error.WriteLine($"kubecapture-node: unknown argument '{rest[i]}'\n{Usage}");
                    return 2;
            }
        }

        if (state is null)
        {
            Console.Error.WriteLine($"kubecapture-node: --state DIR is required\n{Usage}");
            return 2;
        }

        using var stop = new CancellationTokenSource();
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => { context.Cancel = true; stop.Cancel(); });
        if (lifeline)
        {
            _ = Task.Run(async () =>
            {
                await Console.OpenStandardInput().CopyToAsync(Stream.Null);
                await stop.CancelAsync();
            });
        }

        static void Say(string line) => Console.WriteLine($"kubecapture-node: {line}");
        NodeCluster node;
        try
        {
            node = await NodeCluster.StartAsync(state, images, Say, stop.Token);
        }
        catch (NodeBusyException e)
        {
            Console.Error.WriteLine($"kubecapture-node: {e.Message}");
            return 3;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or OperationCanceledException or IOException)
        {
            Console.Error.WriteLine($"kubecapture-node: the node did not start: {e.Message}");
            return 1;
        }

        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException)
        {
        }

        Say("stopping");
        var leftovers = await node.StopAsync();
        if (leftovers.Count > 0)
        {
            Console.Error.WriteLine($"kubecapture-node: the node left on the host ({leftovers.Count}):\n  {string.Join("\n  ", leftovers)}");
            return 1;
        }

        Say("stopped; the host is as it was");
        if (!keep)
        {
            Directory.Delete(state, recursive: true);
        }

        return 0;
    }
}
