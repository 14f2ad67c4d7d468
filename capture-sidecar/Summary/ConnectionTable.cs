namespace KubeCapture.Agent.Summary;

/// <summary>
/// The connections the summary tracks, by their 4-tuple: an open-addressing table (linear probing,
/// a power-of-two size kept at most half full), each slot holding a connection and its key's hash;
/// the key itself is the connection's. One probe per segment in the usual case, no entry objects and
/// no modulo, which is what every TCP segment pays for (a <c>Dictionary</c> cost twice as much).
/// </summary>
internal sealed class ConnectionTable
{
    private TcpConnection?[] _slots = new TcpConnection?[64];
    private int[] _hashes = new int[64];

    public int Count { get; private set; }

    public IEnumerable<TcpConnection> Values => _slots.OfType<TcpConnection>();

    /// <summary>The connection of <paramref name="key"/>, or null.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public TcpConnection? Find(in FlowKey key, int hash)
    {
        var mask = _slots.Length - 1;
        for (var i = hash & mask; ; i = (i + 1) & mask)
        {
            var slot = _slots[i];
            if (slot is null)
            {
                return null;
            }

            if (_hashes[i] == hash && slot.Key.Is(key))
            {
                return slot;
            }
        }
    }

    /// <summary>
    /// The slot of <paramref name="key"/>: its connection (<paramref name="exists"/>), or a free slot
    /// now counted as taken, which the caller fills (a ref to it, valid until the next call).
    /// </summary>
    public ref TcpConnection? Slot(in FlowKey key, int hash, out bool exists)
    {
        if ((Count + 1) * 2 > _slots.Length)
        {
            Grow();
        }

        var mask = _slots.Length - 1;
        for (var i = hash & mask; ; i = (i + 1) & mask)
        {
            ref var slot = ref _slots[i];
            if (slot is null)
            {
                exists = false;
                _hashes[i] = hash;
                Count++;
                return ref slot;
            }

            if (_hashes[i] == hash && slot.Key.Is(key))
            {
                exists = true;
                return ref slot;
            }
        }
    }

    /// <summary>Takes out every connection <paramref name="remove"/> says, handing each to <paramref name="removed"/> first.</summary>
    public void RemoveWhere(Func<TcpConnection, bool> remove, Action<TcpConnection> removed)
    {
        var kept = new List<TcpConnection>(Count);
        foreach (var connection in Values.OrderBy(c => c.FirstFrame)) // in the order they came, not by hash
        {
            if (remove(connection))
            {
                removed(connection);
            }
            else
            {
                kept.Add(connection);
            }
        }

        Rebuild(_slots.Length, kept);
    }

    private void Grow() => Rebuild(_slots.Length * 2, [.. Values]);

    private void Rebuild(int size, List<TcpConnection> connections)
    {
        (_slots, _hashes, Count) = (new TcpConnection?[size], new int[size], 0);
        foreach (var connection in connections)
        {
            var key = connection.Key;
            Slot(key, key.GetHashCode(), out _) = connection;
        }
    }
}
