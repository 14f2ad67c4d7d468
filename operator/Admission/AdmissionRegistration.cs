using System.Text.Json;
using System.Text.Json.Nodes;
using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Configuration;

namespace KubeCapture.Operator.Admission;

/// <summary>
/// builder.AddAdmission(): the admission webhooks on their own HTTPS endpoint (Admission:Url) with
/// the serving certificate (ServingCertificate section); app.MapAdmission(): POST
/// <see cref="StampPath"/> (mutating) and <see cref="GuardPath"/> (validating), on that port only.
/// kube-apiserver calls them without a client certificate. Their only side effect is the guard's
/// audit line when it lets someone break glass (not on a dry run): any other caller gets only an answer.
/// </summary>
public static class AdmissionRegistration
{
    public const string StampPath = "/admission/stamp";
    public const string GuardPath = "/admission/guard";

    public static WebApplicationBuilder AddAdmission(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(AdmissionOptions.Section).Get<AdmissionOptions>() ?? new AdmissionOptions();
        builder.AddHttpsEndpoint(AdmissionOptions.Section, options.Url, "the webhook's Service", requestClientCertificates: false);
        builder.Services.AddOptions<AdmissionOptions>().Bind(builder.Configuration.GetSection(AdmissionOptions.Section));
        builder.Services.AddSingleton<OperatorIdentity>();
        return builder;
    }

    public static WebApplication MapAdmission(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<AdmissionOptions>>().Value;
        var port = HttpsEndpoints.ParseUrl(options.Url, "Admission:Url").Port;
        var identity = app.Services.GetRequiredService<OperatorIdentity>();
        var audit = app.Services.GetService<Audit.AuditTrail>();
        Func<JsonNode?, CancellationToken, Task<JsonObject>> stamp = (review, _) => Task.FromResult(AdmissionReviews.Stamp(review));
        Func<JsonNode?, CancellationToken, Task<JsonObject>> guard = (review, cancellationToken) => GuardAsync(review, identity, audit, cancellationToken);
        app.MapPost(StampPath, context => AnswerAsync(context, port, stamp));
        app.MapPost(GuardPath, context => AnswerAsync(context, port, guard));
        return app;
    }

    /// <summary>The guard's answer; a removal of the finalizer allowed by the break-glass annotation is audited first.</summary>
    private static async Task<JsonObject> GuardAsync(JsonNode? review, OperatorIdentity identity, Audit.AuditTrail? audit, CancellationToken cancellationToken)
    {
        var answer = AdmissionReviews.Guard(review, await identity.UsernameAsync(cancellationToken), out var brokenGlass);
        if (brokenGlass is not null && audit is not null)
        {
            await audit.RecordBreakGlassAsync(brokenGlass, cancellationToken);
        }

        return answer;
    }

    private static async Task AnswerAsync(HttpContext context, int port, Func<JsonNode?, CancellationToken, Task<JsonObject>> webhook)
    {
        if (context.Connection.LocalPort != port)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        JsonObject answer;
        try
        {
            answer = await webhook(await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted), context.RequestAborted);
        }
        catch (Exception e) when (e is JsonException or AdmissionReviewException or InvalidOperationException)
        {
            // kube-apiserver reports a failed call; failurePolicy Fail refuses the request.
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            context.Response.ContentType = "text/plain; charset=utf-8";
            await context.Response.WriteAsync($"not an AdmissionReview {AdmissionReviews.ApiVersion} request: {e.Message}\n", context.RequestAborted);
            return;
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(answer.ToJsonString(), context.RequestAborted);
    }
}
