using KubeCapture.Agent.Capture;
using KubeCapture.Agent.Cli;
using KubeCapture.Agent.Summary;
using PacketDotNet;

namespace KubeCapture.Agent.Recorder;

/// <summary>
/// The flight recorder: what the capture loop writes to in <c>record</c> mode. Every packet goes into
/// the <see cref="PacketRing"/> (the last window, never more than --max-bytes) and past the filter
/// trigger; once a second the finding triggers read the live summary, a snapshot by hand is taken if
/// one was asked for, and a snapshot whose window has ended is finished. A snapshot is opened by the
/// first trigger that fires while none is being written, fewer than --max-snapshots were taken, and,
/// for automatic triggers, the cooldown after the last one has passed (packet time). Each finished
/// snapshot goes to the <see cref="ISnapshotOutlet"/> (a file and a JSON line on stdout, or its own
/// upload to the ingest). Called on the capture thread only, but for <see cref="RequestSnapshot"/>
/// and <see cref="State"/>.
/// </summary>
public sealed class FlightRecorder : IRecordSink, IDisposable
{
    /// <summary>After a window's end, packets the kernel still holds may come for this long (its ring blocks are handed over at the read timeout, 100 ms).</summary>
    private static readonly long DrainMicroseconds = 500_000;

    private readonly RecorderOptions _options;
    private readonly LinkLayers _link;
    private readonly int _snaplen;
    private readonly PacketRing _ring;
    private readonly FilterTrigger? _filter;
    private readonly FindingTrigger[] _findings;
    private readonly IReadOnlyList<string> _localAddresses;
    private readonly ISnapshotOutlet _outlet;
    private readonly TextWriter _stderr;
    private readonly long _windowMicroseconds;
    private readonly long _afterMicroseconds;
    private readonly long _cooldownMicroseconds;
    private readonly long _retentionMicroseconds;
    private readonly (long Time, long Dropped)[] _dropSamples = new (long, long)[64];
    private int _dropSampleNewest = -1;
    private int _dropSampleCount;
    private Snapshot? _open;
    private int _takenCount;
    private SnapshotTrigger? _openTrigger;
    private long _openDroppedBefore;
    private long _openWraps;
    private bool _openCut;
    private long _cooldownUntil = long.MinValue;
    private long _newest = long.MinValue;
    private long _packetsAtLastFlush;
    private ManualRequest? _manualRequest;
    private volatile string? _lastTrigger;
    private readonly List<SnapshotManifest> _taken = [];

    public FlightRecorder(RecorderOptions options, LinkLayers link, ISnapshotOutlet outlet, TextWriter stderr, IReadOnlyList<string> localAddresses)
    {
        _options = options;
        _link = link;
        _snaplen = CaptureSession.EffectiveSnaplen(options.Capture.Snaplen);
        _ring = new PacketRing(options.Capture.MaxBytes);
        _filter = options.FilterTrigger is { } spec ? FilterTrigger.Create(spec, link) : null;
        _findings = [.. options.FindingTriggers.Select(f => new FindingTrigger(f))];
        _localAddresses = localAddresses;
        _outlet = outlet;
        _stderr = stderr;
        _windowMicroseconds = Microseconds(options.Window);
        _afterMicroseconds = Microseconds(options.After);
        _cooldownMicroseconds = Microseconds(options.Cooldown);
        _retentionMicroseconds = Microseconds(options.Retention);
    }

    /// <summary>libpcap's counters (received, dropped by the kernel, by the interface), read on the capture thread.</summary>
    public Func<(long Received, long Dropped, long InterfaceDropped)>? Statistics { get; set; }

    /// <summary>The live summary, read on the capture thread for the finding triggers.</summary>
    public Func<TcpSummaryReport?>? Summary { get; set; }

    /// <summary>Asks the capture to stop (called when the last snapshot allowed is finished).</summary>
    public Action? StopRecording { get; set; }

    public long Packets { get; private set; }

    public long BytesWritten { get; private set; }

    public PacketRing Ring => _ring;

    /// <summary>Snapshots finished so far.</summary>
    public IReadOnlyList<SnapshotManifest> Taken => _taken;

    /// <summary>Triggers that fired while a snapshot was being written, the cooldown ran, or no snapshot was left.</summary>
    public long TriggersNotTaken { get; private set; }

    /// <summary>
    /// Asks for a snapshot by hand: SIGUSR1, or the operator's Snapshot message on the ingest stream
    /// (<paramref name="requester"/>: who asked it). Safe from any thread; taken within a second.
    /// </summary>
    public void RequestSnapshot(string by, string? requester = null, string kind = ManualKind) => Interlocked.CompareExchange(ref _manualRequest, new ManualRequest(by, requester, kind), null);

    /// <summary>The trigger kind of a snapshot by hand (SIGUSR1, kubectl capture snapshot).</summary>
    public const string ManualKind = "manual";

    /// <summary>The trigger kind of a snapshot an Alertmanager alert asked for through the operator; like one by hand, it skips the cooldown.</summary>
    public const string AlertKind = "alert";

    /// <summary>The recorder's state for the operator's status (read from the upload's thread; a snapshot of counters, not a transaction).</summary>
    public RecorderState State => new(
        Armed: Volatile.Read(ref _open) is null && Volatile.Read(ref _takenCount) < _options.MaxSnapshots,
        RingBytes: _ring.Bytes,
        RingCapacity: _ring.Capacity,
        SnapshotsTaken: Volatile.Read(ref _takenCount),
        TriggersNotTaken: TriggersNotTaken,
        LastTrigger: _lastTrigger,
        RingWraps: _ring.Wraps);

    public bool TryWrite(uint seconds, uint microseconds, ReadOnlySpan<byte> data, uint originalLength)
    {
        var time = (seconds * 1_000_000L) + microseconds;
        _newest = Math.Max(_newest, time);
        Packets++;
        BytesWritten += PcapWriter.RecordHeaderLength + data.Length;
        _ring.Append(seconds, microseconds, data, originalLength, _newest - _retentionMicroseconds);
        if (_open is { } open)
        {
            if (time > open.End)
            {
                Finish("after");
            }
            else
            {
                open.Write(time, seconds, microseconds, data, originalLength);
                if (open.Full)
                {
                    Finish("max-bytes");
                }
            }
        }

        if (_filter is { } filter && filter.Observe(data, originalLength, time, out var eventStart))
        {
            Fire("filter", filter.Spec.ToString(), time, eventStart);
        }

        return true;
    }

    /// <summary>Once a second: a snapshot by hand, the finding triggers, the end of an open snapshot, the kernel's drop counter.</summary>
    public void Flush()
    {
        var now = WallMicroseconds();
        SampleDrops(now);
        if (Interlocked.Exchange(ref _manualRequest, null) is { } manual)
        {
            Fire(manual.Kind, manual.Detail, now, now, manual.Requester);
        }

        if (_findings.Length > 0 && _newest != long.MinValue && Summary?.Invoke() is { } report)
        {
            foreach (var trigger in _findings)
            {
                if (trigger.Evaluate(report, _newest))
                {
                    Fire("finding", trigger.Spec.ToString(), _newest, _newest);
                }
            }
        }

        // A snapshot ends at the first packet past its window (TryWrite); when none comes, here, once the
        // window is over by the clock and no packet came since the last call (a second or more): the loop
        // is not behind, so no packet of the window is still in the kernel's buffer.
        var idle = Packets == _packetsAtLastFlush;
        _packetsAtLastFlush = Packets;
        if (_open is { } open)
        {
            if (idle && now > open.End + DrainMicroseconds)
            {
                Finish("after");
            }
            else
            {
                open.Flush();
            }
        }
    }

    /// <summary>The recording ended: a snapshot still open is finished with what it has.</summary>
    public void Stop()
    {
        if (_open is not null)
        {
            Finish("stopped");
        }
    }

    private void Fire(string kind, string detail, long time, long eventStart, string? requester = null)
    {
        var why = _open is not null ? "a snapshot is being written"
            : _taken.Count >= _options.MaxSnapshots ? $"--max-snapshots {_options.MaxSnapshots} were taken"
            : kind is not (ManualKind or AlertKind) && time < _cooldownUntil ? $"in the cooldown until {Timestamp(_cooldownUntil)}"
            : null;
        var trigger = new SnapshotTrigger { Kind = kind, Detail = detail, Requester = requester, Time = Timestamp(time), EventStart = Timestamp(eventStart) };
        _lastTrigger = $"{kind} ({detail}) at {trigger.Time}: {(why is null ? $"snapshot {_taken.Count + 1}" : $"not taken, {why}")}";
        if (why is not null)
        {
            TriggersNotTaken++;
            _stderr.WriteLine($"kubecapture-agent: trigger {kind} ({detail}) at {trigger.Time} not taken: {why}");
            return;
        }

        var number = _taken.Count + 1;
        var start = eventStart - _windowMicroseconds;
        var end = time + _afterMicroseconds;
        Snapshot snapshot;
        try
        {
            snapshot = new Snapshot(number, _outlet.Open(number), (uint)_link, _snaplen, new TcpSummary(_link, _localAddresses), start, end, RecorderLimits.SnapshotMaxBytes(_ring.Capacity));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TriggersNotTaken++;
            _lastTrigger = $"{kind} ({detail}) at {trigger.Time}: not taken, cannot write its snapshot: {e.Message}";
            _stderr.WriteLine($"kubecapture-agent: trigger {kind} ({detail}) at {trigger.Time}: cannot write its snapshot: {e.Message}");
            return;
        }

        Volatile.Write(ref _open, snapshot);
        _openTrigger = trigger;
        _openCut = _ring.NewestEvictedForSpace >= start;
        _openWraps = _ring.Wraps;
        _openDroppedBefore = DroppedAt(start);
        _cooldownUntil = end + _cooldownMicroseconds;
        foreach (var record in _ring)
        {
            snapshot.WriteRecord(record);
        }

        _stderr.WriteLine($"kubecapture-agent: trigger {kind} ({detail}) at {trigger.Time}: snapshot {number} from {Timestamp(start)} to {Timestamp(end)}");
    }

    private void Finish(string ended)
    {
        var snapshot = _open!;
        Volatile.Write(ref _open, null);
        var (sha256, bytes, summary) = snapshot.Finish();
        var dropped = Statistics is { } statistics ? Math.Max(0, statistics().Dropped - _openDroppedBefore) : 0;
        var manifest = new SnapshotManifest
        {
            Snapshot = snapshot.Number,
            File = snapshot.Output.Name,
            Sha256 = sha256,
            Bytes = bytes,
            Packets = snapshot.Packets,
            Trigger = _openTrigger!,
            WindowStart = Timestamp(snapshot.Start),
            WindowEnd = Timestamp(snapshot.End),
            FirstPacket = snapshot.FirstPacket is { } first ? Timestamp(first) : null,
            LastPacket = snapshot.LastPacket is { } last ? Timestamp(last) : null,
            WindowCutByMaxBytes = _openCut,
            PacketsDroppedByKernel = dropped,
            Ended = snapshot.Error is null ? ended : "error",
            Error = snapshot.Error,
            Recording = new SnapshotRecording
            {
                AgentVersion = Manifests.AgentVersion,
                Interface = _options.Capture.Interface,
                Filter = _options.Capture.Filter,
                LinkType = InterfaceCatalog.DltName(_link),
                LinkTypeValue = (uint)_link,
                Snaplen = _snaplen,
                Window = Quantities.FormatDuration(_options.Window),
                After = Quantities.FormatDuration(_options.After),
                MaxBytes = _options.Capture.MaxBytes,
                RingWraps = _openWraps,
            },
            Findings = summary.Findings,
        };
        snapshot.Dispose();
        _taken.Add(manifest);
        Volatile.Write(ref _takenCount, _taken.Count);
        _outlet.Publish(snapshot.Output, manifest);
        if (_taken.Count >= _options.MaxSnapshots)
        {
            StopRecording?.Invoke();
        }
    }

    /// <summary>The kernel's drop counter before <paramref name="time"/>: the newest sample at or before it, else the oldest kept (an upper bound on the window's drops).</summary>
    private long DroppedAt(long time)
    {
        long oldest = 0;
        for (var i = 0; i < _dropSampleCount; i++)
        {
            var sample = _dropSamples[(_dropSampleNewest - i + _dropSamples.Length) % _dropSamples.Length];
            if (sample.Time <= time)
            {
                return sample.Dropped;
            }

            oldest = sample.Dropped;
        }

        return _dropSampleCount == _dropSamples.Length ? oldest : 0;
    }

    /// <summary>Samples the drop counter at most every 32nd of the retention: 64 samples reach back past a window.</summary>
    private void SampleDrops(long now)
    {
        if (Statistics is not { } statistics ||
            (_dropSampleCount > 0 && now - _dropSamples[_dropSampleNewest].Time < _retentionMicroseconds / 32))
        {
            return;
        }

        _dropSampleNewest = (_dropSampleNewest + 1) % _dropSamples.Length;
        _dropSamples[_dropSampleNewest] = (now, statistics().Dropped);
        _dropSampleCount = Math.Min(_dropSampleCount + 1, _dropSamples.Length);
    }

    private static long Microseconds(TimeSpan span) => span.Ticks / TimeSpan.TicksPerMicrosecond;

    private static long WallMicroseconds() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerMicrosecond;

    public static string Timestamp(long microseconds) =>
        CaptureManifest.FormatTimestamp(DateTime.UnixEpoch.AddTicks(microseconds * TimeSpan.TicksPerMicrosecond));

    public void Dispose()
    {
        _open?.Dispose();
        _filter?.Dispose();
    }

    private sealed record ManualRequest(string Detail, string? Requester, string Kind);
}

/// <summary>What the operator shows of a recording in status.recorder.</summary>
public sealed record RecorderState(bool Armed, long RingBytes, long RingCapacity, int SnapshotsTaken, long TriggersNotTaken, string? LastTrigger, long RingWraps);
