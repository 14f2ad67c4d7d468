using System.Runtime.InteropServices;
using KubeCapture.Agent.Capture;
using KubeCapture.Contracts.Filter;

namespace KubeCapture.Agent.Cli;

/// <summary>
/// Local mode: checks everything that can be wrong before the capture starts (filter, interface,
/// output, privilege), captures to a file, writes the manifest beside it and reports.
/// </summary>
public static class LocalCapture
{
    public static int Run(CaptureRequest request, TextWriter stdout, TextWriter stderr)
    {
        var options = request.Options;

        // Signals are taken over before the output file exists: a SIGTERM at any moment of the
        // start-up still ends in a valid (perhaps empty) pcap and its manifest, never an empty file.
        CaptureSession? live = null;
        var signalled = 0;
        using var stopOnSigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var stopOnSigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            Volatile.Write(ref signalled, 1);
            Volatile.Read(ref live)?.RequestStop(StopReason.Signal);
        }

        InterfaceCatalog.Find(options.Interface).Dispose();
        CheckFilter(options);
        using var file = OpenOutput(request);
        CaptureSession session;
        try
        {
            session = CaptureSession.Open(options);
        }
        catch
        {
            file.Dispose();
            File.Delete(request.OutputPath); // nothing was captured into it
            throw;
        }

        using (session)
        {
            Volatile.Write(ref live, session);
            if (Volatile.Read(ref signalled) == 1)
            {
                session.RequestStop(StopReason.Signal);
            }

            stderr.WriteLine(
                $"kubecapture-agent: listening on {options.Interface}, link-type {InterfaceCatalog.DltName(session.LinkType)}, " +
                $"snapshot length {CaptureSession.EffectiveSnaplen(options.Snaplen)} bytes");
            stderr.Flush();

            using var writer = new PcapWriter(file, (uint)session.LinkType, CaptureSession.EffectiveSnaplen(options.Snaplen), options.MaxBytes);
            var outcome = session.Run(writer, () => file.Flush());
            string sha256;
            try
            {
                sha256 = writer.Finish();
            }
            catch (IOException e)
            {
                stderr.WriteLine($"kubecapture-agent: finishing {request.OutputPath} failed: {e.Message}");
                return 1;
            }

            var manifest = Manifests.Build(options, session.LinkType, outcome, writer, sha256, Path.GetFullPath(request.OutputPath));
            var manifestWritten = TryWriteManifest(request.OutputPath + ".json", manifest, stderr);
            if (request.Json || !manifestWritten)
            {
                stdout.WriteLine(manifest.ToJson());
            }

            if (!request.Json)
            {
                HumanReport.Write(stdout, manifest);
            }

            if (outcome.StopReason == StopReason.Error)
            {
                stderr.WriteLine($"kubecapture-agent: {outcome.Error}; the {manifest.PacketsWritten} packets captured before are in {request.OutputPath}");
                return 1;
            }

            return manifestWritten ? 0 : 1;
        }
    }

    /// <summary>
    /// Writes the manifest beside the pcap. On failure (disk full) no torn manifest is left behind,
    /// and the caller prints it on stdout instead so it is not lost.
    /// </summary>
    private static bool TryWriteManifest(string path, CaptureManifest manifest, TextWriter stderr)
    {
        try
        {
            File.WriteAllText(path, manifest.ToJson());
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try
            {
                File.Delete(path);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
                // nothing more to do: the error below says what happened
            }

            stderr.WriteLine($"kubecapture-agent: writing the manifest {path} failed: {e.Message}; it is printed on stdout instead");
            return false;
        }
    }

    /// <summary>Compiles the filter with libpcap for the interface's link type, without a device (<see cref="FilterCheck"/>).</summary>
    public static void CheckFilter(CaptureOptions options)
    {
        if (FilterCheck.Problem(options.Interface, options.Filter) is { } problem)
        {
            throw new CaptureSetupException(problem);
        }
    }

    private static FileStream OpenOutput(CaptureRequest request)
    {
        if (!request.Overwrite && File.Exists(request.OutputPath + ".json"))
        {
            throw new CaptureSetupException($"manifest file '{request.OutputPath}.json' already exists: choose another -w or add --overwrite");
        }

        try
        {
            return new FileStream(request.OutputPath, request.Overwrite ? FileMode.Create : FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 0);
        }
        catch (IOException) when (!request.Overwrite && File.Exists(request.OutputPath))
        {
            throw new CaptureSetupException($"output file '{request.OutputPath}' already exists: choose another -w or add --overwrite");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CaptureSetupException($"cannot write '{request.OutputPath}': {e.Message}");
        }
    }
}
