using KubeCapture.Operator.Certificates;
using KubeCapture.Operator.Configuration;
using KubeCapture.Operator.Reconciliation;
using KubeCapture.Operator.Subresources;
using Microsoft.Extensions.Options;

namespace KubeCapture.Operator.Alerts;

/// <summary>
/// builder.AddAlertReceiver(): Alertmanager's webhook receiver on the extension API's HTTPS listener
/// (Subresources:Url, its Service and serving certificate): every replica serves it, and it asks for
/// snapshots through the extension API's path to the agents (<see cref="CaptureSnapshots"/>, relayed to
/// the replica holding a recording's stream), so it needs Subresources:Enabled.
/// </summary>
public static class AlertReceiverRegistration
{
    public static WebApplicationBuilder AddAlertReceiver(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(AlertReceiverOptions.Section).Get<AlertReceiverOptions>() ?? new AlertReceiverOptions();
        if (!builder.Configuration.GetValue($"{SubresourcesOptions.Section}:Enabled", defaultValue: false))
        {
            throw new OperatorConfigurationException("AlertReceiver:Enabled needs Subresources:Enabled (chart: alertReceiver.enabled needs subresources.enabled): the receiver is served on the extension API's listener and asks for snapshots through it");
        }

        if (options.SecretName.Length == 0)
        {
            throw new OperatorConfigurationException("AlertReceiver:SecretName is empty: name the Secret with the receiver's bearer token (chart: alertReceiver.existingSecret, or the chart's own)");
        }

        options.Namespace = new[] { options.Namespace, builder.Configuration["LeaderElection:Namespace"], Environment.GetEnvironmentVariable("POD_NAMESPACE") }
            .FirstOrDefault(n => !string.IsNullOrEmpty(n)) ?? "default";
        var policy = builder.Configuration.GetSection(CapturePolicy.Section).Get<CapturePolicy>() ?? new CapturePolicy();
        var rules = AlertCaptureRule.ParseAll(options.CaptureRules, policy);
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(sp => new AlertCaptures(sp.GetRequiredService<k8s.IKubernetes>(), rules, policy, sp.GetRequiredService<Events.CaptureEvents>()));
        builder.Services.AddSingleton<AlertReceiverToken>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AlertReceiverToken>());
        builder.Services.AddSingleton<AlertSnapshotClaims>();
        builder.Services.AddSingleton<AlertReceiver>();
        return builder;
    }

    public static WebApplication MapAlertReceiver(this WebApplication app)
    {
        var port = HttpsEndpoints.ParseUrl(app.Services.GetRequiredService<IOptions<SubresourcesOptions>>().Value.Url, "Subresources:Url").Port;
        app.MapPost(AlertReceiver.Path, context => context.Connection.LocalPort == port
            ? context.RequestServices.GetRequiredService<AlertReceiver>().HandleAsync(context)
            : WrongListener(context));
        return app;
    }

    private static Task WrongListener(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }
}
