using Grpc.Core;
using Grpc.Core.Interceptors;

namespace KubeCapture.Operator.Metrics;

/// <summary>
/// Counts every call to the gRPC ingest when it ends, by the status the agent is given
/// (<c>kubecapture_ingest_streams_ended_total{code}</c>): OK, or the refusal (Unauthenticated: a wrong
/// upload token; PermissionDenied: not from the target pod's address; ...), whichever check refused it.
/// </summary>
public sealed class IngestStreamOutcomes : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation) =>
        await Counted(() => continuation(request, context));

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        Counted(() => continuation(requestStream, context));

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation) =>
        Counted(async () =>
        {
            await continuation(request, responseStream, context);
            return true;
        });

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        Counted(async () =>
        {
            await continuation(requestStream, responseStream, context);
            return true;
        });

    private static async Task<T> Counted<T>(Func<Task<T>> call)
    {
        var code = StatusCode.Unknown; // what gRPC answers an exception that is not an RpcException with
        try
        {
            var result = await call();
            code = StatusCode.OK;
            return result;
        }
        catch (RpcException e)
        {
            code = e.StatusCode;
            throw;
        }
        catch (OperationCanceledException)
        {
            code = StatusCode.Cancelled;
            throw;
        }
        finally
        {
            OperatorMetrics.IngestStreamsEnded.Add(1, new KeyValuePair<string, object?>("code", code.ToString()));
        }
    }
}
