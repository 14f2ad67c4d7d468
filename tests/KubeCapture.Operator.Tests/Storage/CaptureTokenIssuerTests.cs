using KubeCapture.Contracts;
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

    [Fact]
    public void A_rotated_key_still_verifies_the_tokens_of_the_previous_key_but_not_of_the_one_before_and_signs_with_the_new_one()
    {
        byte[] first = [.. Enumerable.Repeat((byte)1, 32)], second = [.. Enumerable.Repeat((byte)2, 32)], third = [.. Enumerable.Repeat((byte)3, 32)];
        var keys = IngestTokenKeys.Of(first, "test");
        var issuer = new CaptureTokenIssuer(keys);
        var old = issuer.Issue(Target);

        keys.Use(second, first, "test");
        var current = issuer.Issue(Target);
        var stillAccepted = issuer.Verify(Target, old);
        keys.Use(third, second, "test");

        Assert.NotEqual(old, current);
        Assert.True(stillAccepted);
        Assert.True(issuer.Verify(Target, current));
        Assert.False(issuer.Verify(Target, old)); // two rotations back
        Assert.Equal(new CaptureTokenIssuer(IngestTokenKeys.Of(third, "test")).Issue(Target), issuer.Issue(Target));
    }

    [Fact]
    public void Until_its_key_is_read_the_issuer_has_no_key_verifies_nothing_and_issues_nothing()
    {
        var issuer = new CaptureTokenIssuer(new IngestTokenKeys());

        Assert.False(issuer.HasKey);
        Assert.False(issuer.Verify(Target, new CaptureTokenIssuer("secret-1").Issue(Target)));
        Assert.Throws<InvalidOperationException>(() => issuer.Issue(Target));
    }
}
