using System.Text.Json;
using System.Text.Json.Nodes;
using KubeCapture.Operator.Certificates;

namespace KubeCapture.Operator.Admission;

/// <summary>
/// builder.AddAdmission(): the admission webhooks on their own HTTPS endpoint (Admission:Url) with
/// the serving certificate (ServingCertificate section); app.MapAdmission(): POST
/// <see cref="StampPath"/> (mutating) and <see cref="GuardPath"/> (validating), on that port only.
/// kube-apiserver calls them without a client certificate; they have no side effects, so any caller
/// gets only an answer.
/// </summary>
public static class AdmissionRegistration
{
    public const string StampPath = "/admission/stamp";
    public const string GuardPath = "/admission/guard";

    public static WebApplicationBuilder AddAdmission(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(AdmissionOptions.Section).Get<AdmissionOptions>() ?? new AdmissionOptions();
        if (!builder.Configuration.GetSection(ServingCertificateOptions.Section).Exists())
        {
            throw new OperatorConfigurationException("Admission:Enabled needs a ServingCertificate section (Managed: DnsNames of the webhook's Service; or Mounted files)");
        }

        HttpsEndpoints.ParseUrl(options.Url, "Admission:Url"); // a bad URL fails the start, named
        builder.Services.AddOptions<AdmissionOptions>().Bind(builder.Configuration.GetSection(AdmissionOptions.Section));
        builder.Services.AddServingCertificate(builder.Configuration);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenHttps(options.Url, "Admission:Url", requestClientCertificates: false));
        return builder;
    }

    public static WebApplication MapAdmission(this WebApplication app)
    {
        var options = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<AdmissionOptions>>().Value;
        var port = HttpsEndpoints.ParseUrl(options.Url, "Admission:Url").Port;
        app.MapPost(StampPath, context => AnswerAsync(context, port, AdmissionReviews.Stamp));
        app.MapPost(GuardPath, context => AnswerAsync(context, port, AdmissionReviews.Guard));
        return app;
    }

    private static async Task AnswerAsync(HttpContext context, int port, Func<JsonNode?, JsonObject> webhook)
    {
        if (context.Connection.LocalPort != port)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        JsonObject answer;
        try
        {
            answer = webhook(await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted));
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
