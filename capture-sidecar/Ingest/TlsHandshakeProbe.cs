using System.Net.Sockets;

namespace KubeCapture.Agent.Ingest;

/// <summary>
/// The connection to a TLS ingest, watched for what the server says first: a TLS server's first
/// byte opens a handshake (0x16) or alert (0x15) record; anything else (an h2c server's HTTP/2
/// frame, an HTTP/1.1 status line) means the server speaks plain text, and the agent refuses it.
/// </summary>
public sealed class TlsHandshakeProbe(Stream inner) : Stream
{
    private const int Unread = -1;
    private int _firstByte = Unread;

    /// <summary>Whether the server's first byte was not a TLS record (null until it sent one).</summary>
    public bool? AnsweredInPlainText => _firstByte == Unread ? null : _firstByte is not (0x16 or 0x15);

    /// <summary>Connects to the ingest as SocketsHttpHandler would, and watches the connection.</summary>
    public static async ValueTask<TlsHandshakeProbe> ConnectAsync(System.Net.DnsEndPoint endpoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken);
            return new TlsHandshakeProbe(new NetworkStream(socket, ownsSocket: true));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public override bool CanRead => inner.CanRead;

    public override bool CanSeek => false;

    public override bool CanWrite => inner.CanWrite;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer) => Seen(buffer, inner.Read(buffer));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var count = await inner.ReadAsync(buffer, cancellationToken);
        return Seen(buffer.Span, count);
    }

    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

    public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync();
        await base.DisposeAsync();
    }

    private int Seen(ReadOnlySpan<byte> buffer, int count)
    {
        if (count > 0 && _firstByte == Unread)
        {
            _firstByte = buffer[0];
        }

        return count;
    }
}
