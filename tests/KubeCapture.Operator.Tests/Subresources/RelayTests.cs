using System.Buffers.Binary;
using System.Text;
using KubeCapture.Contracts;
using KubeCapture.Operator.Ingest;
using KubeCapture.Operator.Subresources;

namespace KubeCapture.Operator.Tests.Subresources;

/// <summary>The pieces of the replica-to-replica relay: the credential, and passing on only whole records.</summary>
public sealed class RelayTests
{
    private static readonly CaptureIdentity Target = new("uid-1", "shop", "slow-checkout", "api-0");

    [Fact]
    public void The_relay_credential_holds_only_for_its_target_follower_and_replica_under_the_shared_key_or_the_previous_one_after_a_rotation()
    {
        var keys = IngestTokenKeys.Of(Encoding.UTF8.GetBytes("the replicas' key"), "test");
        var credential = new RelayCredential(keys);
        var presented = credential.For(Target, "alice", "replica-b");

        Assert.True(credential.Verifies(presented, Target, "alice", "replica-b"));
        Assert.False(credential.Verifies(presented, Target with { Pod = "api-1" }, "alice", "replica-b"));
        Assert.False(credential.Verifies(presented, Target, "mallory", "replica-b"));
        Assert.False(credential.Verifies(presented, Target, "alice", "replica-x"));
        Assert.False(credential.Verifies(null, Target, "alice", "replica-b"));
        Assert.False(credential.Verifies("KubeCaptureRelay not-base64!", Target, "alice", "replica-b"));
        Assert.False(new RelayCredential(IngestTokenKeys.Of(Encoding.UTF8.GetBytes("another key"), "test")).Verifies(presented, Target, "alice", "replica-b"));

        keys.Use(Encoding.UTF8.GetBytes("the rotated key"), Encoding.UTF8.GetBytes("the replicas' key"), "rotated");
        Assert.True(credential.Verifies(presented, Target, "alice", "replica-b"));
    }

    [Fact]
    public void A_follows_relay_credential_cannot_ask_for_a_snapshot_nor_a_snapshots_serve_a_follow()
    {
        var credential = new RelayCredential(IngestTokenKeys.Of(Encoding.UTF8.GetBytes("the replicas' key"), "test"));
        var follow = credential.For(Target, "alice", "replica-b");
        var snapshot = credential.For(Target, "alice", "replica-b", RelayPurpose.Snapshot);

        Assert.NotEqual(follow, snapshot);
        Assert.True(credential.Verifies(snapshot, Target, "alice", "replica-b", RelayPurpose.Snapshot));
        Assert.False(credential.Verifies(follow, Target, "alice", "replica-b", RelayPurpose.Snapshot));
        Assert.False(credential.Verifies(snapshot, Target, "alice", "replica-b"));
        Assert.False(credential.Verifies(snapshot, Target, "mallory", "replica-b", RelayPurpose.Snapshot));
    }

    [Theory]
    [InlineData("https://10.1.2.3:8443", "https://10.1.2.3:8443")]
    [InlineData("https://[fd00::5]:9443", "https://[fd00::5]:9443")]
    [InlineData("https://0.0.0.0:8443", null)] // no POD_IP (as outside a pod): no address another replica can dial
    public void The_relay_URL_in_the_upload_Leases_is_the_extension_APIs_listener_at_an_address_another_pod_dials(string listener, string? relay)
    {
        Assert.Null(Environment.GetEnvironmentVariable("POD_IP"));
        Assert.Equal(relay, SubresourcesRegistration.RelayUrlOf(listener));
    }

    [Fact]
    public async Task A_relayed_stream_that_breaks_mid_record_leaves_the_follower_the_header_and_the_whole_records_before_it()
    {
        var pcap = Pcap(bigEndian: false, 100, 70_000, 3);
        var wholeTwo = 24 + 16 + 100 + 16 + 70_000;
        var output = new MemoryStream();
        var copy = new WholeRecordCopy();

        await Assert.ThrowsAsync<IOException>(() => copy.CopyAsync(new BreakingStream(pcap, breakAt: wholeTwo + 10, readSize: 777), output, CancellationToken.None));

        Assert.Equal(pcap[..wholeTwo], output.ToArray());
        Assert.Equal(wholeTwo, copy.Written);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_relayed_stream_that_ends_passes_every_byte_on_in_either_byte_order(bool bigEndian)
    {
        var pcap = Pcap(bigEndian, 60, 1500, 0, 65_535);
        var output = new MemoryStream();

        Assert.True(await new WholeRecordCopy().CopyAsync(new BreakingStream(pcap, breakAt: pcap.Length, readSize: 1000), output, CancellationToken.None));
        Assert.Equal(pcap, output.ToArray());
    }

    [Fact]
    public async Task A_relayed_stream_that_is_not_a_pcap_is_refused()
    {
        var text = Encoding.ASCII.GetBytes("{\"kind\":\"Status\",\"status\":\"Failure\",\"code\":500}");
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => new WholeRecordCopy().CopyAsync(new MemoryStream(text), new MemoryStream(), CancellationToken.None));
        Assert.Contains("not a pcap", error.Message, StringComparison.Ordinal);
    }

    private static byte[] Pcap(bool bigEndian, params int[] lengths)
    {
        var output = new MemoryStream();
        var header = new byte[24];
        Write(header, 0, 0xa1b2c3d4, bigEndian);
        Write(header, 16, 262_144, bigEndian);
        Write(header, 20, 1, bigEndian);
        output.Write(header);
        foreach (var length in lengths)
        {
            var record = new byte[16 + length];
            Write(record, 8, (uint)length, bigEndian);
            Write(record, 12, (uint)length, bigEndian);
            record.AsSpan(16).Fill((byte)length);
            output.Write(record);
        }

        return output.ToArray();
    }

    private static void Write(byte[] buffer, int offset, uint value, bool bigEndian)
    {
        if (bigEndian)
        {
            BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(offset), value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(offset), value);
        }
    }

    /// <summary>Yields <c>readSize</c> bytes at a time, then ends at <c>breakAt</c>: with an IOException when that is short of the whole.</summary>
    private sealed class BreakingStream(byte[] data, int breakAt, int readSize) : Stream
    {
        private int position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (position >= breakAt)
            {
                return breakAt < data.Length ? throw new IOException("the holder went away") : 0;
            }

            var n = Math.Min(Math.Min(count, readSize), breakAt - position);
            data.AsSpan(position, n).CopyTo(buffer.AsSpan(offset));
            position += n;
            return n;
        }

        public override void Flush() => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
