using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using Sio.Functions;
using Sio.Hosting;

namespace Sio.Tests;

/// <summary>
/// infra/ as an Azure engineer would deploy it, checked without Azure: infra/main.bicep compiled by the Bicep CLI (a
/// NuGet tool) and its ARM JSON read for the properties a deployment depends on, what-if style; the container's
/// Dockerfile and build context; host.json.
/// </summary>
[Trait("Category", "e2e")]
public class InfraTests
{
    static readonly Lazy<JsonObject> Arm = new(Compile);

    static JsonObject Compile()
    {
        var cli = typeof(InfraTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "BicepCli").Value!;
        if (!File.Exists(cli)) throw new FileNotFoundException($"the Bicep CLI is missing at {cli}: restore the test project", cli);
        var exe = Path.Combine(TestPaths.TempDir("bicep"), "bicep"); // a copy we may mark executable (the package's may not be)
        File.Copy(cli, exe);
        if (!OperatingSystem.IsLinux()) throw new PlatformNotSupportedException("the Bicep CLI package referenced here is linux-x64");
        File.SetUnixFileMode(exe, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var p = Process.Start(new ProcessStartInfo(exe, ["build", Path.Combine(TestPaths.RepoRoot, "infra", "main.bicep"), "--stdout"])
        { RedirectStandardOutput = true, RedirectStandardError = true, Environment = { ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" } })!;
        var json = p.StandardOutput.ReadToEndAsync();
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, err);
        Assert.DoesNotContain(": Error ", err);
        return JsonNode.Parse(json.Result)!.AsObject();
    }

    static IEnumerable<JsonNode> Resources(string type) => Arm.Value["resources"]!.AsArray().Where(r => r!["type"]!.GetValue<string>() == type)!;
    static JsonNode Resource(string type, string nameContains) => Resources(type).Single(r => r["name"]!.GetValue<string>().Contains(nameContains));

    [Fact]
    public void EventsReachBothAppsWithoutAKeyInSettings()
    {
        var uploads = Resource("Microsoft.EventGrid/systemTopics/eventSubscriptions", "uploads-to-optimizer");
        // the blob extension's webhook, with its system key read at deployment time
        Assert.Contains("listKeys(", uploads["properties"]!["destination"]!["properties"]!["endpointUrl"]!.GetValue<string>());
        Assert.Contains("blobs_extension", uploads["properties"]!["destination"]!["properties"]!["endpointUrl"]!.GetValue<string>());
        // deployments: into the queue the inference app's trigger reads, delivered with the topic's own identity
        var deployments = Resource("Microsoft.EventGrid/systemTopics/eventSubscriptions", "deployments-to-inference");
        var delivery = deployments["properties"]!["deliveryWithResourceIdentity"]!;
        Assert.Equal("SystemAssigned", delivery["identity"]!["type"]!.GetValue<string>());
        Assert.Equal("StorageQueue", delivery["destination"]!["endpointType"]!.GetValue<string>());
        Assert.Equal("[variables('deploymentQueue')]", delivery["destination"]!["properties"]!["queueName"]!.GetValue<string>());
        Assert.Equal(InferenceFunctions.DeploymentQueue, Arm.Value["variables"]!["deploymentQueue"]!.GetValue<string>());
        Assert.Contains(Resources("Microsoft.Authorization/roleAssignments"), r => r["properties"]!["roleDefinitionId"]!.ToJsonString().Contains("storageQueueDataMessageSender")
            && r["properties"]!["principalId"]!.GetValue<string>().Contains("systemTopics"));
    }

    [Fact]
    public void TheApiKeyLivesInTheVaultOnly()
    {
        var arm = Text(Arm.Value);
        // the key parameter is used once: as the vault secret's value
        Assert.Equal(1, CountOf(arm, "parameters('apiKey')"));
        Assert.Contains("parameters('apiKey')", Resource("Microsoft.KeyVault/vaults/secrets", "sio-api-key")["properties"]!["value"]!.GetValue<string>());
        Assert.Equal("securestring", Arm.Value["parameters"]!["apiKey"]!["type"]!.GetValue<string>());
        var settings = Resource("Microsoft.Web/sites", "optimizer")["properties"]!["siteConfig"]!["appSettings"]!.AsArray();
        Assert.Contains("@Microsoft.KeyVault(SecretUri=", settings.Single(s => s!["name"]!.GetValue<string>() == "SIO_API_KEY")!["value"]!.GetValue<string>());
        Assert.DoesNotContain(settings, s => s!["value"]!.GetValue<string>().Contains("AccountKey") || s["value"]!.GetValue<string>().Contains("listKeys"));
        var app = Resource("Microsoft.App/containerApps", "inference");
        var secret = app["properties"]!["configuration"]!["secrets"]!.AsArray().Single()!;
        Assert.Null(secret["value"]);
        Assert.NotNull(secret["keyVaultUrl"]);
        Assert.Equal("sio-api-key", app["properties"]!["template"]!["containers"]![0]!["env"]!.AsArray().Single(e => e!["name"]!.GetValue<string>() == "SIO_API_KEY")!["secretRef"]!.GetValue<string>());
    }

    [Fact]
    public void TheGpuAppPullsPrivateImagesAndScalesToZero()
    {
        var app = Resource("Microsoft.App/containerApps", "inference");
        Assert.Equal("UserAssigned", app["identity"]!["type"]!.GetValue<string>()); // exists, with its roles, before the first revision
        Assert.Contains("parameters('registryName')", Text(app["properties"]!["configuration"]!["registries"]!));
        Assert.Contains(Resources("Microsoft.Authorization/roleAssignments"), r => r["properties"]!["roleDefinitionId"]!.ToJsonString().Contains("acrPull"));
        var scale = app["properties"]!["template"]!["scale"]!;
        Assert.Equal("[parameters('inferenceMinReplicas')]", scale["minReplicas"]!.GetValue<string>());
        Assert.Equal(0, Arm.Value["parameters"]!["inferenceMinReplicas"]!["defaultValue"]!.GetValue<int>());
        Assert.Contains(scale["rules"]!.AsArray(), r => r!["azureQueue"] is not null); // a deployment event wakes a replica
        // the probe is a public route of the table, on the port the image listens on
        var probe = app["properties"]!["template"]!["containers"]![0]!["probes"]![0]!["httpGet"]!;
        Assert.Contains(probe["path"]!.GetValue<string>(), ApiRoutes.PublicPaths);
        var dockerfile = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "infra", "Dockerfile.inference"));
        Assert.Contains($"EXPOSE {probe["port"]!.GetValue<int>()}", dockerfile);
        Assert.Equal(probe["port"]!.GetValue<int>(), app["properties"]!["configuration"]!["ingress"]!["targetPort"]!.GetValue<int>());
    }

    [Fact]
    public void TheContainerRunsUnprivilegedFromASmallContext()
    {
        var dockerfile = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "infra", "Dockerfile.inference"));
        var user = dockerfile.Last(l => l.StartsWith("USER "));
        Assert.DoesNotContain(user["USER ".Length..].Trim(), new[] { "root", "0" });
        Assert.True(Array.IndexOf(dockerfile, user) > Array.FindLastIndex(dockerfile, l => l.StartsWith("FROM ")), "USER is set in the final stage");
        var ignored = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, ".dockerignore"));
        foreach (var heavy in new[] { ".azurite/", "**/bin/", "**/obj/", ".git/", "tests/" }) Assert.Contains(heavy, ignored);
        var host = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "host.json")))!;
        Assert.True(TimeSpan.TryParse(host["functionTimeout"]!.GetValue<string>(), out var timeout) && timeout >= TimeSpan.FromHours(1), "functionTimeout");
    }

    /// <summary>A node as JSON text with ARM's quotes unescaped, to search for expressions.</summary>
    static string Text(JsonNode node) => node.ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    static int CountOf(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
