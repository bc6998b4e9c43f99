using System.Reflection;
using Microsoft.AspNetCore.Http;

namespace Sio.Hosting;

/// <summary>The web console: three static files embedded in the hosting assembly, served from the API's origin at /.</summary>
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
                ".html" => "text/html; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                _ => "application/octet-stream",
            });
        }
        return files;
    }

    public static RequestDelegate Serve(string file) => ctx =>
    {
        if (!Files.TryGetValue(file, out var f)) { ctx.Response.StatusCode = 404; return Task.CompletedTask; }
        ctx.Response.ContentType = f.Type;
        ctx.Response.ContentLength = f.Bytes.Length;
        return HttpMethods.IsHead(ctx.Request.Method) ? Task.CompletedTask : ctx.Response.Body.WriteAsync(f.Bytes).AsTask();
    };
}
