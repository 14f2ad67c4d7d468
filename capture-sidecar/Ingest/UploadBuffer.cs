namespace KubeCapture.Agent.Ingest;

/// <summary>
/// The pcap on its way to the ingest: the <see cref="Capture.PcapWriter"/> writes into it like a file,
/// and it keeps every byte the ingest has not acknowledged yet (bounded: a ring of fixed capacity),
/// so after a reconnect the upload resumes from whatever offset the ingest holds durably. When the
/// ring is full the writer waits for acknowledgements (the kernel buffers meanwhile, and counts
/// what it has to drop); when the upload has failed for good, writing throws.
/// </summary>
public sealed class UploadBuffer : Stream
{
    private readonly byte[] _ring;
    private readonly object _gate = new();
    private long _acknowledged;
    private long _end;
    private bool _completed;
    private Exception? _failure;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public UploadBuffer(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1 << 16);
        _ring = GC.AllocateUninitializedArray<byte>(capacity);
    }

    public int Capacity => _ring.Length;

    /// <summary>Bytes written so far: the size of the pcap.</summary>
    public long End
    {
        get
        {
            lock (_gate)
            {
                return _end;
            }
        }
    }

    /// <summary>Bytes the ingest holds durably; everything below is forgotten here.</summary>
    public long Acknowledged
    {
        get
        {
            lock (_gate)
            {
                return _acknowledged;
            }
        }
    }

    /// <summary>True once the pcap is finished: no more bytes will come.</summary>
    public bool IsCompleted
    {
        get
        {
            lock (_gate)
            {
                return _completed;
            }
        }
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            lock (_gate)
            {
                while (_failure is null && _end - _acknowledged >= _ring.Length)
                {
                    Monitor.Wait(_gate, 1000); // full: wait for the ingest to acknowledge
                }

                if (_failure is not null)
                {
                    throw new IOException($"the upload to the ingest failed: {_failure.Message}", _failure);
                }

                if (_completed)
                {
                    throw new InvalidOperationException("the pcap is already complete");
                }

                var room = _ring.Length - (int)(_end - _acknowledged);
                var take = Math.Min(room, buffer.Length);
                var start = (int)(_end % _ring.Length);
                var first = Math.Min(take, _ring.Length - start);
                buffer[..first].CopyTo(_ring.AsSpan(start));
                buffer[first..take].CopyTo(_ring);
                _end += take;
                buffer = buffer[take..];
                Signal();
            }
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <summary>No more bytes: the uploader sends Finish once everything is sent.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            _completed = true;
            Signal();
        }
    }

    /// <summary>The upload failed for good: the writer stops with this error.</summary>
    public void Fail(Exception failure)
    {
        lock (_gate)
        {
            _failure ??= failure;
            Monitor.PulseAll(_gate);
            Signal();
        }
    }

    /// <summary>The ingest holds every byte below <paramref name="offset"/> durably.</summary>
    public void Acknowledge(long offset)
    {
        lock (_gate)
        {
            if (offset > _end)
            {
                throw new InvalidOperationException($"the ingest acknowledged byte {offset}, but only {_end} were written");
            }

            if (offset > _acknowledged)
            {
                _acknowledged = offset;
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>
    /// Copies bytes from <paramref name="offset"/> into <paramref name="destination"/>; returns how many
    /// (0 when none are written yet past it). Throws when the bytes are already forgotten.
    /// </summary>
    public int Read(long offset, Span<byte> destination)
    {
        lock (_gate)
        {
            if (offset < _acknowledged)
            {
                throw new InvalidOperationException($"bytes from {offset} were requested, but everything below {_acknowledged} was acknowledged and let go");
            }

            if (offset > _end)
            {
                throw new InvalidOperationException($"bytes from {offset} were requested, but only {_end} were written");
            }

            var count = (int)Math.Min(destination.Length, _end - offset);
            var start = (int)(offset % _ring.Length);
            var first = Math.Min(count, _ring.Length - start);
            _ring.AsSpan(start, first).CopyTo(destination);
            _ring.AsSpan(0, count - first).CopyTo(destination[first..]);
            return count;
        }
    }

    /// <summary>Completes when bytes are written, the pcap completes, or the upload fails.</summary>
    public Task ChangedAsync()
    {
        lock (_gate)
        {
            return _changed.Task;
        }
    }

    private void Signal()
    {
        var changed = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        changed.TrySetResult();
    }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => End;

    public override long Position
    {
        get => End;
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
