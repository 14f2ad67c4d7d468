using System.Text;

namespace KubeCapture.Operator.Storage;

/// <summary>
/// s3rver answers ListObjects with the XML namespace <c>http://doc.s3.amazonaws.com/2006-03-01/</c>
/// instead of S3's <c>http://s3.amazonaws.com/doc/2006-03-01/</c>, and the Minio client then lists
/// nothing. This handler rewrites the namespace in bucket listings; against real S3 or MinIO it
/// finds nothing to rewrite.
/// </summary>
public sealed class ListObjectsNamespaceFix : DelegatingHandler
{
    private const string Wrong = "http://doc.s3.amazonaws.com/2006-03-01/";
    private const string Right = "http://s3.amazonaws.com/doc/2006-03-01/";

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        var query = request.RequestUri?.Query ?? "";
        var isListing = request.Method == HttpMethod.Get && (query.Contains("list-type=", StringComparison.Ordinal) || query.Contains("prefix=", StringComparison.Ordinal) || query.Contains("delimiter=", StringComparison.Ordinal));
        if (!isListing || !response.IsSuccessStatusCode || response.Content is null)
        {
            return response;
        }

        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!body.Contains(Wrong, StringComparison.Ordinal))
        {
            response.Content = CopyHeaders(response.Content, new StringContent(body, Encoding.UTF8));
            return response;
        }

        response.Content = CopyHeaders(response.Content, new StringContent(body.Replace(Wrong, Right, StringComparison.Ordinal), Encoding.UTF8));
        return response;
    }

    private static HttpContent CopyHeaders(HttpContent from, HttpContent to)
    {
        to.Headers.Clear();
        foreach (var header in from.Headers)
        {
            if (!header.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                to.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }
        }

        return to;
    }
}
