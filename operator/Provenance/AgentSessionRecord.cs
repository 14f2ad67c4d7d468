namespace KubeCapture.Operator.Provenance;

/// <summary>
/// The agent process that opened a target's upload: the SHA-256 of its Open.session_id (a random
/// value only that process knows, never written anywhere; the hash alone cannot open the upload), the
/// address it connected from, and when. Recorded in the upload's checkpoint and its stored manifest.
/// </summary>
public sealed record AgentSessionRecord(string Sha256, string? Address, DateTimeOffset OpenedAt)
{
    /// <summary>The record of a session opening now, from <paramref name="address"/> (as the ingest normalizes peer addresses).</summary>
    public static AgentSessionRecord Of(string sessionId, string? address, DateTimeOffset now) => new(HashOf(sessionId), address, now);

    public static string HashOf(string sessionId) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("kubecapture/v1 agent session\n" + sessionId)));

    public override string ToString() => $"session {Sha256[..12]}, opened{(Address is null ? "" : " from " + Address)} at {OpenedAt.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}";
}

/// <summary>Why a stored pcap did not come from its capture agent, as the reconciler found it.</summary>
public sealed record ContestRecord(DateTimeOffset At, string Message);
