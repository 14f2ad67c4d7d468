using KubeCapture.KubectlPlugin.Cluster;

namespace KubeCapture.KubectlPlugin.Tests.Cluster;

/// <summary>Refusals in kubectl's words, from the Status object kube-apiserver (or the extension API) sends.</summary>
public sealed class ServerErrorsTests
{
    [Fact]
    public void A_Status_is_said_with_its_reason_and_message_as_kubectl_says_it()
    {
        const string status = """{"kind":"Status","apiVersion":"v1","status":"Failure","message":"capture c is still capturing pod api (state Capturing); use follow","reason":"Conflict","code":409}""";

        Assert.Equal("Error from server (Conflict): capture c is still capturing pod api (state Capturing); use follow", ServerErrors.Describe(409, status));
    }

    [Theory]
    [InlineData(502, "<html>bad gateway</html>", "Error from server (HTTP 502): <html>bad gateway</html>")]
    [InlineData(403, "", "Error from server (Forbidden): HTTP 403")]
    [InlineData(404, """{"kind":"Status","code":404}""", "Error from server (NotFound): HTTP 404")]
    public void Anything_else_is_said_with_the_HTTP_code_and_what_came(int code, string body, string message)
    {
        Assert.Equal(message, ServerErrors.Describe(code, body));
    }
}
