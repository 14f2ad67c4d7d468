using System.Buffers.Binary;
using KubeCapture.Agent.Capture;

namespace KubeCapture.Agent.Recorder;

/// <summary>
/// The flight recorder's memory: the last packets as pcap records (the 16-byte record header, then the
/// captured bytes), laid end to end in one buffer allocated once. A record never straddles the end of
/// the buffer: when the next one does not fit before the end, writing wraps to the start and the
/// records from there on are evicted, oldest first, until it fits. Records older than the retention
/// (by packet time) are evicted too. Only whole records are ever kept or evicted, and nothing is
/// allocated per packet: the records themselves are the index (each header holds its time and length).
/// </summary>
public sealed class PacketRing
{
    /// <summary>The largest ring: it lives in the agent's memory, and ephemeral containers cannot have resource limits.</summary>
    public const long MaxCapacity = KubeCapture.Contracts.Recorder.RecorderLimits.MaxRingBytes;

    private readonly byte[] _buffer;
    private int _head; // where the next record goes
    private int _tail; // the oldest record
    private int _wrapEnd; // while wrapped: where the records before the wrap end
    private bool _wrapped; // records run from _tail to _wrapEnd, then from 0 to _head

    public PacketRing(long capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, PcapWriter.RecordHeaderLength + 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, MaxCapacity);

        // Not touched until written: the pages count in the RSS as the ring fills, never past the capacity.
        _buffer = GC.AllocateUninitializedArray<byte>((int)capacity);
    }

    public long Capacity => _buffer.Length;

    /// <summary>Records held now.</summary>
    public long Count { get; private set; }

    /// <summary>Bytes of the records held now (headers included).</summary>
    public long Bytes { get; private set; }

    /// <summary>How many times writing went back to the start of the buffer.</summary>
    public long Wraps { get; private set; }

    /// <summary>Records evicted to make room while still within the retention: the ring was too small for it.</summary>
    public long EvictedForSpace { get; private set; }

    /// <summary>The packet time (microseconds since the epoch) of the newest record evicted for room; <see cref="long.MinValue"/> if none.</summary>
    public long NewestEvictedForSpace { get; private set; } = long.MinValue;

    /// <summary>The time of the oldest record held (microseconds since the epoch), or null when empty.</summary>
    public long? Oldest => Count > 0 ? TimeAt(_tail) : null;

    /// <summary>Whether a packet of <paramref name="capturedLength"/> bytes fits at all.</summary>
    public bool Holds(int capturedLength) => PcapWriter.RecordHeaderLength + (long)capturedLength <= _buffer.Length;

    /// <summary>
    /// Adds a packet as the newest record, evicting the oldest ones as needed for room, then every
    /// record older than <paramref name="retainFrom"/> (microseconds since the epoch).
    /// </summary>
    public void Append(uint seconds, uint microseconds, ReadOnlySpan<byte> data, uint originalLength, long retainFrom)
    {
        var length = PcapWriter.RecordHeaderLength + data.Length;
        if (length > _buffer.Length)
        {
            throw new ArgumentException($"a record of {length} bytes cannot fit a ring of {_buffer.Length}", nameof(data));
        }

        MakeRoom(length);
        var record = _buffer.AsSpan(_head, length);
        BinaryPrimitives.WriteUInt32LittleEndian(record, seconds);
        BinaryPrimitives.WriteUInt32LittleEndian(record[4..], microseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(record[8..], (uint)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(record[12..], originalLength);
        data.CopyTo(record[PcapWriter.RecordHeaderLength..]);
        _head += length;
        Count++;
        Bytes += length;

        while (Count > 0 && TimeAt(_tail) < retainFrom)
        {
            EvictOldest();
        }
    }

    /// <summary>The records held, oldest first (each the record header, then the captured bytes).</summary>
    public Enumerator GetEnumerator() => new(this);

    /// <summary>The time of a record (its header's seconds and microseconds) in microseconds since the epoch.</summary>
    public static long TimeOf(ReadOnlySpan<byte> record) =>
        (BinaryPrimitives.ReadUInt32LittleEndian(record) * 1_000_000L) + BinaryPrimitives.ReadUInt32LittleEndian(record[4..]);

    private void MakeRoom(int length)
    {
        while (true)
        {
            if (!_wrapped)
            {
                // Held: [_tail, _head). Free: [_head, end) and [0, _tail).
                if (_head + length <= _buffer.Length)
                {
                    return;
                }

                if (Count == 0)
                {
                    _head = _tail = 0;
                    continue;
                }

                _wrapEnd = _head;
                _head = 0;
                _wrapped = true;
                Wraps++;
            }
            else
            {
                // Held: [_tail, _wrapEnd) and [0, _head). Free: [_head, _tail).
                if (_head + length <= _tail)
                {
                    return;
                }

                NewestEvictedForSpace = Math.Max(NewestEvictedForSpace, TimeAt(_tail));
                EvictedForSpace++;
                EvictOldest();
            }
        }
    }

    private void EvictOldest()
    {
        var length = RecordLength(_tail);
        _tail += length;
        Count--;
        Bytes -= length;
        if (_wrapped && _tail >= _wrapEnd)
        {
            _tail = 0;
            _wrapped = false;
        }

        if (Count == 0 && !_wrapped)
        {
            _tail = _head;
        }
    }

    private long TimeAt(int offset) => TimeOf(_buffer.AsSpan(offset, PcapWriter.RecordHeaderLength));

    private int RecordLength(int offset) =>
        PcapWriter.RecordHeaderLength + (int)BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(offset + 8, 4));

    /// <summary>Walks the records oldest first without allocating.</summary>
    public ref struct Enumerator
    {
        private readonly PacketRing _ring;
        private long _remaining;
        private int _offset;
        private int _length;
        private bool _inUpperPart;

        internal Enumerator(PacketRing ring)
        {
            _ring = ring;
            _remaining = ring.Count;
            _offset = ring._tail;
            _length = 0;
            _inUpperPart = ring._wrapped;
        }

        public readonly ReadOnlySpan<byte> Current => _ring._buffer.AsSpan(_offset, _length);

        public bool MoveNext()
        {
            if (_remaining == 0)
            {
                return false;
            }

            _offset += _length;
            if (_inUpperPart && _offset >= _ring._wrapEnd)
            {
                _offset = 0;
                _inUpperPart = false;
            }

            _length = _ring.RecordLength(_offset);
            _remaining--;
            return true;
        }
    }
}
