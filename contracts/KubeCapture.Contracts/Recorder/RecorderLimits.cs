namespace KubeCapture.Contracts.Recorder;

/// <summary>The recorder's fixed bounds and defaults, the same for the agent and the operator that checks a spec before any agent runs.</summary>
public static class RecorderLimits
{
    /// <summary>The ring is one buffer in the agent's memory: never more than this.</summary>
    public const long MaxRingBytes = 1L << 30;

    /// <summary>The ring's size when none is given, as the resource spells it.</summary>
    public const string DefaultRingBytesText = "64Mi";

    public const int DefaultMaxSnapshots = 3;

    public const int MaxMaxSnapshots = 100;

    public static readonly TimeSpan DefaultAfter = TimeSpan.FromSeconds(10);

    /// <summary>A pcap record's header, before the captured bytes: the ring holds whole records.</summary>
    public const int RecordHeaderLength = 16;

    /// <summary>The bytes one packet takes in the ring at <paramref name="effectiveSnaplen"/>, its record header included.</summary>
    public static long OneRecord(int effectiveSnaplen) => RecordHeaderLength + (long)effectiveSnaplen;

    /// <summary>A pcap file's header, before its first record.</summary>
    public const int FileHeaderLength = 24;

    /// <summary>
    /// The most bytes one snapshot's pcap may have with a ring of <paramref name="ringBytes"/>: the
    /// window before the trigger, at most the ring, and the packets after it, cut at the ring's size
    /// again (the agent ends the snapshot there; the ingest stores no byte beyond it).
    /// </summary>
    public static long SnapshotMaxBytes(long ringBytes) => FileHeaderLength + (2 * ringBytes);
}
