using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace Sio.Pipeline;

/// <summary>
/// Makes "start this run" atomic across processes that share a Durable Task hub in Azure Storage, whose own duplicate
/// check is a read followed by a write: every starter first creates a claim blob named after the run and the state it
/// saw (no run yet, or a failed run created at a given time) with If-None-Match: *, and only the one whose create
/// succeeds schedules the run. A claim whose run never appeared (its starter died in between, or the hub was reset)
/// is released after <see cref="StaleAfter"/>.
/// </summary>
public sealed class RunClaims(BlobContainerClient container)
{
    public static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(60);
    bool _created;

    /// <summary>The claims of a task hub, kept in its own storage account.</summary>
    public static RunClaims ForTaskHub(string connectionString, string taskHub) =>
        new(new BlobServiceClient(connectionString).GetBlobContainerClient($"{taskHub.ToLowerInvariant()}-run-starts"));

    /// <summary>True when this caller may start run <paramref name="id"/> from the state <paramref name="observed"/>.</summary>
    /// <param name="runAppeared">Whether another starter's run exists by now (a claim without one, once stale, is released).</param>
    public async Task<bool> TryClaimAsync(string id, string observed, Func<Task<bool>> runAppeared, CancellationToken ct = default)
    {
        if (!_created) { await container.CreateIfNotExistsAsync(cancellationToken: ct); _created = true; }
        var blob = container.GetBlobClient($"{id}/{observed}");
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                await blob.UploadAsync(BinaryData.FromString(DateTimeOffset.UtcNow.ToString("O")),
                    new BlobUploadOptions { Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All } }, ct);
                return true;
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412 && attempt == 0)
            {
                var claim = (await blob.GetPropertiesAsync(cancellationToken: ct)).Value;
                if (DateTimeOffset.UtcNow - claim.CreatedOn < StaleAfter || await runAppeared()) return false;
                try { await blob.DeleteAsync(conditions: new BlobRequestConditions { IfMatch = claim.ETag }, cancellationToken: ct); }
                catch (RequestFailedException) { return false; } // another starter released it first
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412) { return false; }
        }
    }
}
