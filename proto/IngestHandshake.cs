using Grpc.Core;

namespace KubeCapture.Proto.V1;

/// <summary>
/// The agent's side of the ingest's handshake, written once for the agent's uploader, the tests'
/// agent and the ingest benchmark: the first message is Open (the target, its upload token, the
/// agent's session), and the ingest answers Accepted (the part size, the byte to resume at) or ends
/// the stream with the reason it refused.
/// </summary>
public static class IngestHandshake
{
    /// <summary>Opens the upload on <paramref name="call"/>; the ingest's Accepted, or RpcException (Unavailable when the stream ended without one).</summary>
    public static async Task<Accepted> OpenAsync(AsyncDuplexStreamingCall<AgentMessage, IngestMessage> call, Open open, CancellationToken cancellationToken)
    {
        await call.RequestStream.WriteAsync(new AgentMessage { Open = open }, cancellationToken);
        if (!await call.ResponseStream.MoveNext(cancellationToken) || call.ResponseStream.Current.BodyCase != IngestMessage.BodyOneofCase.Accepted)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "the ingest did not accept the upload"));
        }

        return call.ResponseStream.Current.Accepted;
    }

    /// <summary>The Open message for one capture target (<paramref name="retentionTtlSeconds"/> 0: the capture's default; <paramref name="snapshotIndex"/> N &gt; 0: snapshot N of its recording).</summary>
    public static Open Open(string captureUid, string ns, string captureName, string pod, string token, string sessionId, long retentionTtlSeconds = 0, string agentVersion = "", int snapshotIndex = 0) =>
        new()
        {
            CaptureUid = captureUid,
            Namespace = ns,
            CaptureName = captureName,
            Pod = pod,
            Token = token,
            SessionId = sessionId,
            RetentionTtlSeconds = retentionTtlSeconds,
            AgentVersion = agentVersion,
            SnapshotIndex = snapshotIndex,
        };
}
