using Xunit;

namespace KubeCapture.Testing.Containers;

/// <summary>
/// A test that runs the built images: skipped, with one line saying that <c>bash scripts/images.sh</c>
/// builds them, when podman or the images are missing — except under CI=true, where it runs and
/// fails (call <see cref="ContainerImages.Require"/> first).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class ImagesFactAttribute : FactAttribute
{
    public ImagesFactAttribute()
    {
        if (ContainerImages.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
