using System.Runtime.InteropServices;
using System.Text.Json;
using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;

namespace KubeCapture.Agent.Ingest;

/// <summary>
/// Cluster mode: the same checks and the same capture engine as local mode, but the pcap is
/// streamed to the operator's ingest instead of a file (the pod holds no storage credentials).
/// Exit 0 once the ingest has stored the pcap whole and verified; 1 when the upload failed.
/// </summary>
public static class ClusterCapture
{
    public static int Run(CaptureRequest request, IngestTarget target, TextWriter stdout, TextWriter stderr)
    {
        // First: the token in the environment and the session about to be drawn are this process's alone.
        if (!ProcessSecrecy.Seal(out var notSealed))
        {
            stderr.WriteLine($"kubecapture-agent: warning: other processes of this user may read the upload token: {notSealed}");
        }

        var options = request.Options;
        InterfaceCatalog.Find(options.Interface).Dispose();
        LocalCapture.CheckFilter(options);
        // The agent's own upload is never part of the capture (the manifest keeps the user's filter).
        var capturing = options with { Filter = OwnUploadFilter.Combine(options.Filter, OwnUploadFilter.Resolve(target.Url, stderr), target.Url.Port) };
        using var session = CaptureSession.Open(capturing);
        using var buffer = new UploadBuffer(target.BufferBytes);
        using var uploader = new IngestUploader(target, buffer, reason =>
        {
            stderr.WriteLine($"kubecapture-agent: the operator asked to stop ({reason}); finishing the pcap");
            session.RequestStop(StopReason.Requested);
        }, stderr);
        using var stopUploading = new CancellationTokenSource();
        var upload = Task.Run(() => uploader.RunAsync(stopUploading.Token));
        _ = upload.ContinueWith(_ => session.RequestStop(StopReason.Error), TaskContinuationOptions.OnlyOnFaulted);

        using var stopOnSigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var stopOnSigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            session.RequestStop(StopReason.Signal);
        }

        var snaplen = CaptureSession.EffectiveSnaplen(options.Snaplen);
        stderr.WriteLine(
            $"kubecapture-agent: listening on {options.Interface}, link-type {InterfaceCatalog.DltName(session.LinkType)}, " +
            $"snapshot length {snaplen} bytes; streaming to {target.Url}");
        stderr.Flush();

        using var writer = new PcapWriter(buffer, (uint)session.LinkType, snaplen, options.MaxBytes);
        var outcome = session.Run(writer, () =>
        {
            var (_, dropped, interfaceDropped) = session.StatisticsSoFar();
            var summary = session.SummarySoFar();
            uploader.Report(writer.Packets, writer.BytesWritten, dropped, interfaceDropped,
                summary is null ? null : JsonSerializer.Serialize(summary, SummaryJsonContext.Default.TcpSummaryReport));
        });

        string sha256;
        try
        {
            sha256 = writer.Finish();
        }
        catch (IOException e)
        {
            return Failed(stderr, upload, e.Message);
        }

        var manifest = Manifests.Build(options, session.LinkType, outcome, writer, sha256, target.Url.ToString());
        uploader.Report(manifest.PacketsWritten, manifest.BytesWritten, manifest.PacketsDroppedByKernel, manifest.PacketsDroppedByInterface,
            manifest.Summary is null ? null : JsonSerializer.Serialize(manifest.Summary, SummaryJsonContext.Default.TcpSummaryReport));
        uploader.Finish(sha256, manifest.ToJson());
        StoredPcap stored;
        try
        {
            stored = upload.GetAwaiter().GetResult();
        }
        catch (IngestFailedException e)
        {
            return Failed(stderr, upload, e.Message);
        }

        var published = manifest with { Output = stored.Uri };
        if (request.Json)
        {
            stdout.WriteLine(published.ToJson());
        }
        else
        {
            HumanReport.Write(stdout, published);
        }

        stderr.WriteLine($"kubecapture-agent: stored {stored.Uri} ({stored.Size} bytes, sha256 {stored.Sha256}" +
            (stored.ExpiresAt is null ? ")" : $", kept until {stored.ExpiresAt})"));
        if (outcome.StopReason == StopReason.Error && outcome.Error is not null)
        {
            stderr.WriteLine($"kubecapture-agent: {outcome.Error}; the {manifest.PacketsWritten} packets captured before were stored");
            return 1;
        }

        return 0;
    }

    private static int Failed(TextWriter stderr, Task<StoredPcap> upload, string fallback)
    {
        var reason = upload.IsFaulted ? upload.Exception!.GetBaseException().Message : fallback;
        stderr.WriteLine($"kubecapture-agent: the capture was not stored: {reason}");
        return 1;
    }
}
