namespace KubeCapture.Operator.Tests.Release;

/// <summary>The release scripts write into the one dist/ of the repository: their tests run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class ReleaseDist
{
    public const string Name = "release dist";
}
