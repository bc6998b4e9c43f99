using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Sio.Cli.Hosting;

/// <summary>The web console: three static files embedded in the sio binary, served from the API's origin at /.</summary>
public static class WebConsole
{
    static readonly Dictionary<string, (byte[] Bytes, string Type)> Files = Load();

    static Dictionary<string, (byte[], string)> Load()
    {
        var asm = Assembly.GetExecutingAssembly();
        var files = new Dictionary<string, (byte[], string)>();
        foreach (var name in asm.GetManifestResourceNames().Where(n => n.StartsWith("console/")))
        {
            using var s = asm.GetManifestResourceStream(name)!;
            using var m = new MemoryStream();
            s.CopyTo(m);
            var file = name["console/".Length..];
            files[file] = (m.ToArray(), Path.GetExtension(file) switch
            {
                ".html" => "text/html; charset=utf-8", ".css" => "text/css; charset=utf-8", ".js" => "text/javascript; charset=utf-8", _ => "application/octet-stream",
            });
        }
        return files;
    }

    public static void Map(WebApplication app)
    {
        app.MapGet("/", () => Serve("index.html"));
        app.MapGet("/console.css", () => Serve("console.css"));
        app.MapGet("/console.js", () => Serve("console.js"));
    }

    static IResult Serve(string file) => Files.TryGetValue(file, out var f) ? Results.Bytes(f.Bytes, f.Type) : Results.NotFound();
}
