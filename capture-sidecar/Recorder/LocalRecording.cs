using System.Runtime.InteropServices;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Cli;
using KubeCapture.Contracts.Filter;

namespace KubeCapture.Agent.Recorder;

/// <summary>
/// <c>kubecapture-agent record</c>: checks everything that can be wrong before recording (filter,
/// trigger filter, interface, snapshot directory, privilege), then runs the capture loop into the
/// <see cref="FlightRecorder"/> until the duration, the count, --max-snapshots or SIGTERM/SIGINT.
/// SIGUSR1 takes a snapshot by hand.
/// </summary>
public static class LocalRecording
{
    /// <summary>SIGUSR1 on Linux: the snapshot-by-hand signal (a raw signal number: PosixSignal has no name for it).</summary>
    internal const int SigUsr1 = 10;

    public static int Run(RecorderOptions options, TextWriter stdout, TextWriter stderr)
    {
        CaptureSession? live = null;
        FlightRecorder? recorder = null;
        var signalled = 0;
        string? pendingManual = null;
        using var stopOnSigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var stopOnSigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var snapshotOnSigusr1 = PosixSignalRegistration.Create((PosixSignal)SigUsr1, context =>
        {
            context.Cancel = true;
            if (Volatile.Read(ref recorder) is { } r)
            {
                r.RequestSnapshot("SIGUSR1");
            }
            else
            {
                Volatile.Write(ref pendingManual, "SIGUSR1");
            }
        });
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            Volatile.Write(ref signalled, 1);
            Volatile.Read(ref live)?.RequestStop(StopReason.Signal);
        }

        var capture = options.Capture;
        CheckBeforeRecording(options);

        var directory = options.SnapshotDirectory ?? throw new UsageException("record needs --snapshot-dir DIR: the directory snapshots are written to");
        CheckDirectory(directory);
        var files = new SnapshotFiles(directory, DateTime.UtcNow, stdout, stderr);
        if (Directory.EnumerateFiles(directory, Path.GetFileName(files.Prefix) + "-*").Any())
        {
            throw new CaptureSetupException($"snapshots named {files.Prefix}-N.pcap already exist in {directory}: another recording started this second; start again");
        }

        using var session = CaptureSession.Open(capture);
        using var flight = new FlightRecorder(options, session.LinkType, files, stderr, LocalAddresses.OfThisHost())
        {
            Statistics = session.StatisticsSoFar,
            Summary = session.SummarySoFar,
            StopRecording = () => session.RequestStop(StopReason.Requested),
        };
        Volatile.Write(ref live, session);
        Volatile.Write(ref recorder, flight);
        if (Volatile.Read(ref signalled) == 1)
        {
            session.RequestStop(StopReason.Signal);
        }

        if (Interlocked.Exchange(ref pendingManual, null) is { } by)
        {
            flight.RequestSnapshot(by);
        }

        var snaplen = CaptureSession.EffectiveSnaplen(capture.Snaplen);
        stderr.WriteLine(
            $"kubecapture-agent: recording on {capture.Interface}, link-type {InterfaceCatalog.DltName(session.LinkType)}, snapshot length {snaplen} bytes: " +
            $"listening on {capture.Interface}; the last {Quantities.FormatDuration(options.Window)} in a ring of at most {Quantities.FormatBytes(capture.MaxBytes)} " +
            $"(the agent's memory: the ring plus about {ConstantOverheadMiB} MiB), snapshots in {options.SnapshotDirectory}; triggers: {Triggers(options)}");
        stderr.Flush();

        var outcome = session.Run(flight);
        flight.Stop();
        var ending = flight.Taken.Count >= options.MaxSnapshots ? $"--max-snapshots {options.MaxSnapshots} taken" : outcome.StopReason.Describe();
        stderr.WriteLine(
            $"kubecapture-agent: recording ended ({ending}): {flight.Packets} packets seen, {outcome.PacketsDroppedByKernel} dropped by the kernel, " +
            $"{flight.Taken.Count} snapshot{(flight.Taken.Count == 1 ? "" : "s")} taken, {flight.TriggersNotTaken} trigger{(flight.TriggersNotTaken == 1 ? "" : "s")} not taken, " +
            $"the ring wrapped {flight.Ring.Wraps} times");
        if (outcome.StopReason == StopReason.Error)
        {
            stderr.WriteLine($"kubecapture-agent: {outcome.Error}");
            return 1;
        }

        return flight.Taken.Any(s => s.Error is not null) ? 1 : 0;
    }

    /// <summary>What the agent holds besides the ring, measured (bench/recorder-bench.sh): the runtime, libpcap, the summary's tables.</summary>
    public const int ConstantOverheadMiB = 32;

    private static string Triggers(RecorderOptions options)
    {
        var triggers = new List<string> { "SIGUSR1" };
        if (options.FilterTrigger is { } filter)
        {
            triggers.Add(filter.ToString());
        }

        triggers.AddRange(options.FindingTriggers.Select(f => $"finding {f}"));
        return string.Join(", ", triggers);
    }

    /// <summary>What libpcap can tell before recording, in local and cluster mode: the interface, the filter, the trigger filter.</summary>
    internal static void CheckBeforeRecording(RecorderOptions options)
    {
        InterfaceCatalog.Find(options.Capture.Interface).Dispose();
        LocalCapture.CheckFilter(options.Capture);
        if (options.FilterTrigger is { } trigger)
        {
            FilterTrigger.Check(trigger.Expression, FilterCheck.ExpectedLinkType(options.Capture.Interface));
        }
    }

    private static void CheckDirectory(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new CaptureSetupException($"--snapshot-dir '{directory}' does not exist: create it first");
        }

        var probe = Path.Combine(directory, $".kubecapture-probe-{Environment.ProcessId}");
        try
        {
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CaptureSetupException($"cannot write snapshots to --snapshot-dir '{directory}': {e.Message}");
        }
    }
}
