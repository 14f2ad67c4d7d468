using System.Runtime.InteropServices;
using System.Text.Json;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Ingest;

namespace KubeCapture.Agent.Recorder;

/// <summary>
/// <c>kubecapture-agent record --ingest URL</c>: the flight recorder in a pod. The recording holds one
/// stream open to the ingest (as a capture does: Progress with the recorder's state, Stop, and
/// Snapshot{requester}, taken exactly as SIGUSR1); each snapshot is uploaded on a stream of its own
/// (<see cref="SnapshotUploads"/>). The recording's own pcap holds no packet: nothing of anyone's
/// traffic is stored but the snapshots; its manifest counts what the recording saw. Exit 0 once
/// every snapshot and the recording are stored; 1 when one was not.
/// </summary>
public static class ClusterRecording
{
    public static int Run(RecorderOptions options, TextWriter stdout, TextWriter stderr)
    {
        var target = options.Ingest ?? throw new ArgumentException("a cluster recording needs its ingest", nameof(options));
        if (!ProcessSecrecy.Seal(out var notSealed))
        {
            stderr.WriteLine($"kubecapture-agent: warning: other processes of this user may read the upload token: {notSealed}");
        }

        var capture = options.Capture;
        LocalRecording.CheckBeforeRecording(options);

        // The agent's own uploads are never part of the recording (the manifests keep the user's filter).
        var capturing = capture with { Filter = OwnUploadFilter.Combine(capture.Filter, OwnUploadFilter.Resolve(target.Url, stderr), target.Url.Port) };
        using var session = CaptureSession.Open(capturing);
        FlightRecorder? recorder = null;
        void Stop(string reason)
        {
            stderr.WriteLine($"kubecapture-agent: the operator asked to stop ({reason}); ending the recording");
            session.RequestStop(StopReason.Requested);
        }

        using var buffer = new UploadBuffer(target.BufferBytes);
        using var uploader = new IngestUploader(target, buffer, Stop, stderr)
        {
            SnapshotRequested = (requester, alert) =>
            {
                stderr.WriteLine($"kubecapture-agent: the operator asked for a snapshot (by {(alert is null ? requester : $"Alertmanager alert {alert}")})");
                if (alert is null)
                {
                    Volatile.Read(ref recorder)?.RequestSnapshot($"kubectl capture snapshot by {requester}", requester);
                }
                else
                {
                    Volatile.Read(ref recorder)?.RequestSnapshot($"Alertmanager alert {alert}", requester, FlightRecorder.AlertKind);
                }
            },
        };
        var uploads = new SnapshotUploads(target, uploader, Stop, capture.MaxBytes, stdout, stderr);
        using var flight = new FlightRecorder(options, session.LinkType, uploads, stderr, LocalAddresses.OfThisHost())
        {
            Statistics = session.StatisticsSoFar,
            Summary = session.SummarySoFar,
            StopRecording = () => session.RequestStop(StopReason.Requested),
        };
        Volatile.Write(ref recorder, flight);
        using var stopping = new CancellationTokenSource();
        var upload = Task.Run(() => uploader.RunAsync(stopping.Token));
        _ = upload.ContinueWith(_ => session.RequestStop(StopReason.Error), TaskContinuationOptions.OnlyOnFaulted);
        using var stopOnSigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var stopOnSigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var snapshotOnSigusr1 = PosixSignalRegistration.Create((PosixSignal)LocalRecording.SigUsr1, context =>
        {
            context.Cancel = true;
            flight.RequestSnapshot("SIGUSR1");
        });
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            session.RequestStop(StopReason.Signal);
        }

        var snaplen = CaptureSession.EffectiveSnaplen(capture.Snaplen);
        using var writer = new PcapWriter(buffer, (uint)session.LinkType, snaplen, capture.MaxBytes);
        stderr.WriteLine(
            $"kubecapture-agent: recording on {capture.Interface}, link-type {InterfaceCatalog.DltName(session.LinkType)}, snapshot length {snaplen} bytes: " +
            $"listening on {capture.Interface}; the last {Quantities.FormatDuration(options.Window)} in a ring of at most {Quantities.FormatBytes(capture.MaxBytes)} " +
            $"(the agent's memory: the ring, each snapshot being uploaded, plus about {ConstantOverheadMiB} MiB); snapshots to {target.Url}");
        stderr.Flush();

        var outcome = session.Run(flight, () => Report(uploader, flight, session.StatisticsSoFar()));
        flight.Stop();
        var notStored = uploads.WaitForAll();
        string sha256;
        try
        {
            sha256 = writer.Finish();
        }
        catch (IOException e)
        {
            stderr.WriteLine($"kubecapture-agent: the recording was not stored: {(upload.IsFaulted ? upload.Exception!.GetBaseException().Message : e.Message)}");
            return 1;
        }

        var manifest = Manifests.Build(capture, session.LinkType, outcome, writer, sha256, target.Url.ToString()) with { Summary = null };
        Report(uploader, flight, (outcome.PacketsReceived, outcome.PacketsDroppedByKernel, outcome.PacketsDroppedByInterface));
        uploader.Finish(sha256, manifest.ToJson());
        try
        {
            upload.GetAwaiter().GetResult();
        }
        catch (IngestFailedException e)
        {
            stderr.WriteLine($"kubecapture-agent: the recording was not stored: {e.Message}");
            return 1;
        }

        var ending = flight.Taken.Count >= options.MaxSnapshots ? $"--max-snapshots {options.MaxSnapshots} taken" : outcome.StopReason.Describe();
        stderr.WriteLine(
            $"kubecapture-agent: recording ended ({ending}): {flight.Packets} packets seen, {outcome.PacketsDroppedByKernel} dropped by the kernel, " +
            $"{flight.Taken.Count} snapshot{(flight.Taken.Count == 1 ? "" : "s")} taken ({notStored} not stored), {flight.TriggersNotTaken} trigger{(flight.TriggersNotTaken == 1 ? "" : "s")} not taken");
        if (outcome.StopReason == StopReason.Error)
        {
            stderr.WriteLine($"kubecapture-agent: {outcome.Error}");
            return 1;
        }

        return notStored > 0 ? 1 : 0;
    }

    /// <summary>
    /// What the agent holds in cluster mode besides the ring and the snapshot being uploaded, measured
    /// (bench/recorder-bench.sh, record --ingest: 34.5 MiB): the local recording's constant plus the
    /// gRPC/HTTP/2 client and its buffers.
    /// </summary>
    public const int ConstantOverheadMiB = 48;

    /// <summary>The recording's Progress: no packet written (only snapshots are stored), drops, and the recorder's state with the packets seen.</summary>
    private static void Report(IngestUploader uploader, FlightRecorder flight, (long Received, long Dropped, long InterfaceDropped) statistics)
    {
        var state = flight.State;
        uploader.Report(0, PcapWriter.FileHeaderLength, statistics.Dropped, statistics.InterfaceDropped, null, new KubeCapture.Proto.V1.RecorderProgress
        {
            Armed = state.Armed,
            RingBytes = state.RingBytes,
            RingCapacity = state.RingCapacity,
            SnapshotsTaken = state.SnapshotsTaken,
            TriggersNotTaken = state.TriggersNotTaken,
            LastTrigger = state.LastTrigger ?? "",
            RingWraps = state.RingWraps,
            PacketsSeen = flight.Packets,
        });
    }
}
