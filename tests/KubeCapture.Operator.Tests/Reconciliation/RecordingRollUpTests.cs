using k8s.Models;
using KubeCapture.Contracts;
using KubeCapture.Contracts.Recorder;
using KubeCapture.Contracts.Resources;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Provenance;
using KubeCapture.Operator.Reconciliation;

namespace KubeCapture.Operator.Tests.Reconciliation;

public sealed class RecordingRollUpTests
{
    [Fact]
    public async Task A_running_recording_asks_storage_nothing_until_its_agent_reports_a_snapshot_taken_then_lists_it_and_asks_no_more()
    {
        var storage = new SnapshotStorage();
        var capture = Recording(TargetState.Capturing);
        var rollUp = new RecordingRollUp(storage);

        storage.Recorder = new RecorderStatus { Armed = true, SnapshotsTaken = 0 };
        var idle = await RollUpAsync(rollUp, capture);
        var askedIdle = storage.Asked.Count;
        storage.Recorder = new RecorderStatus { Armed = true, SnapshotsTaken = 1 };
        var beforeStored = await RollUpAsync(rollUp, capture); // taken, its upload not stored yet: one miss
        var askedBeforeStored = storage.Asked.ToList();
        storage.Stored.Add(1);
        var listed = await RollUpAsync(rollUp, capture);
        capture.Status = listed;
        var afterListed = await RollUpAsync(rollUp, capture);

        Assert.Null(idle.Snapshots);
        Assert.Null(beforeStored.Snapshots);
        Assert.Equal(0, askedIdle); // nothing asked while none was taken
        Assert.Equal([1], askedBeforeStored);
        Assert.Equal(1, Assert.Single(listed.Snapshots!).Index);
        Assert.Equal("manual", listed.Snapshots![0].TriggerKind);
        Assert.Equal([1, 1, 2], storage.Asked); // found and listed, the next index missed once, then nothing more asked
        Assert.Equal(1, Assert.Single(afterListed.Snapshots!).Index);
    }

    [Fact]
    public async Task An_ended_target_is_looked_up_in_storage_whatever_its_agent_last_reported()
    {
        var storage = new SnapshotStorage { Recorder = new RecorderStatus { SnapshotsTaken = 0 } };
        storage.Stored.Add(1);
        storage.Stored.Add(2);
        var capture = Recording(TargetState.Succeeded);
        capture.Status!.Targets[0].Recorder = new RecorderStatus { SnapshotsTaken = 1 }; // its last report came before the second

        var status = await RollUpAsync(new RecordingRollUp(storage), capture);

        Assert.Equal([1, 2], status.Snapshots!.Select(s => s.Index));
        Assert.Equal([1, 2, 3], storage.Asked);
    }

    private static async Task<PacketCaptureStatus> RollUpAsync(RecordingRollUp rollUp, PacketCapture capture)
    {
        var draft = new StatusDraft(capture, DateTime.UtcNow);
        await rollUp.ApplyAsync(draft, CancellationToken.None);
        return draft.Status;
    }

    private static PacketCapture Recording(string state) => new()
    {
        Metadata = new V1ObjectMeta { Name = "recorder", NamespaceProperty = "payments", Uid = "uid-rec" },
        Spec = new PacketCaptureSpec { Reason = "r", Duration = "1h", Recorder = new RecorderSpec { Window = "1m", MaxSnapshots = 3 } },
        Status = new PacketCaptureStatus { Targets = [new CaptureTargetStatus { Pod = "api-0", State = state }] },
    };

    /// <summary>The ingest as the roll-up reads it: the holder's recorder state, and the snapshots in storage (none stored by this replica).</summary>
    private sealed class SnapshotStorage : IIngestStatus
    {
        public event Action<TargetUpload>? Changed
        {
            add { }
            remove { }
        }

        public RecorderStatus? Recorder { get; set; }

        public HashSet<int> Stored { get; } = [];

        /// <summary>Each snapshot index storage was asked for, in order.</summary>
        public List<int> Asked { get; } = [];

        public Task<TargetUpload?> GetAsync(CaptureIdentity target, CancellationToken cancellationToken) =>
            Task.FromResult<TargetUpload?>(new TargetUpload { Target = target, Phase = UploadPhase.Streaming, Recorder = Recorder });

        public Task<TargetUpload?> StoredSnapshotAsync(CaptureIdentity snapshot, CancellationToken cancellationToken)
        {
            Asked.Add(snapshot.Snapshot);
            return Task.FromResult(Stored.Contains(snapshot.Snapshot) ? new TargetUpload
            {
                Target = snapshot,
                Phase = UploadPhase.Finished,
                Snapshot = Manifest(snapshot.Snapshot),
                Artifact = new StoredArtifact($"s3://captures/payments/recorder/api-0_snapshot-{snapshot.Snapshot}.pcap", 1024, new string('a', 64), null),
            } : null);
        }

        public void RequestStop(string captureUid)
        {
        }

        public void MarkContested(CaptureIdentity target, string message)
        {
        }

        private static SnapshotManifest Manifest(int index) => new()
        {
            Snapshot = index,
            File = $"api-0_snapshot-{index}.pcap",
            Sha256 = new string('a', 64),
            Bytes = 1024,
            Packets = 7,
            Trigger = new SnapshotTrigger { Kind = "manual", Detail = "kubectl capture snapshot", Time = "2026-12-06T19:00:00.000000Z", EventStart = "2026-12-06T19:00:00.000000Z" },
            WindowStart = "2026-12-06T18:59:00.000000Z",
            WindowEnd = "2026-12-06T19:00:10.000000Z",
            WindowCutByMaxBytes = false,
            PacketsDroppedByKernel = 0,
            Ended = "after",
            Recording = new SnapshotRecording { AgentVersion = "test", Interface = "eth0", Filter = "", LinkType = "EN10MB", LinkTypeValue = 1, Snaplen = 128, Window = "1m", After = "10s", MaxBytes = 64 << 20, RingWraps = 0 },
        };
    }
}
