using KubeCapture.Operator.Ingest;

namespace KubeCapture.Operator.Tests.Storage;

public sealed class CaptureTokenIssuerTests
{
    private static readonly CaptureIdentity Target = new("uid-1", "payments", "partner-timeouts", "api-7d9f");

    [Fact]
    public void TokenVerifiesForItsOwnTargetOnly()
    {
        var issuer = new CaptureTokenIssuer("secret-1");
        var token = issuer.Issue(Target);

        Assert.True(issuer.Verify(Target, token));
        Assert.False(issuer.Verify(Target with { Pod = "api-other" }, token));
        Assert.False(issuer.Verify(Target with { CaptureUid = "uid-2" }, token));
        Assert.False(issuer.Verify(Target with { Namespace = "other" }, token));
        Assert.False(issuer.Verify(Target with { CaptureName = "other" }, token));
        Assert.False(issuer.Verify(Target, token[..^1]));
        Assert.False(issuer.Verify(Target, ""));
    }

    [Fact]
    public void AnotherSecretIssuesAnotherTokenAndTheSameSecretTheSameOne()
    {
        Assert.Equal(new CaptureTokenIssuer("secret-1").Issue(Target), new CaptureTokenIssuer("secret-1").Issue(Target));
        Assert.NotEqual(new CaptureTokenIssuer("secret-1").Issue(Target), new CaptureTokenIssuer("secret-2").Issue(Target));
    }

    [Fact]
    public void FieldsCannotBeShiftedBetweenEachOtherToForgeAToken()
    {
        var issuer = new CaptureTokenIssuer("secret-1");
        var a = new CaptureIdentity("uid", "ns", "a-b", "c");
        var b = new CaptureIdentity("uid", "ns", "a", "b-c");
        Assert.NotEqual(issuer.Issue(a), issuer.Issue(b));
    }
}
