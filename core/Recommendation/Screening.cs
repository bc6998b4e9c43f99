namespace Sio.Recommendation;

/// <summary>
/// The cheap stage's decisions (pure): which screened candidates go on to be measured under load, and how long that
/// would take.
/// </summary>
public static class Screening
{
    /// <summary>
    /// Drops every candidate that another beats at batch 1 on both quality (mean KL divergence) and speed (output tokens/s),
    /// then keeps the best <paramref name="finalists"/> of the rest for the target (lowest TTFT for ttft, most tokens/s
    /// otherwise); each dropped one is added to <paramref name="discarded"/> with the reason.
    /// </summary>
    public static List<(Candidate C, CandidateMeasurement M)> Prune(IReadOnlyList<(Candidate C, CandidateMeasurement M)> screened,
        IReadOnlyDictionary<string, QualityScore> quality, string target, int finalists, List<Discarded> discarded)
    {
        double Kld(Candidate c) => quality[c.ModelName].MeanKld;
        double Tps(CandidateMeasurement m) => m.Levels[0].OutputTokensPerSecond;
        var front = new List<(Candidate C, CandidateMeasurement M)>();
        foreach (var s in screened)
        {
            var by = screened.Where(o => o.C != s.C && Kld(o.C) <= Kld(s.C) && Tps(o.M) >= Tps(s.M) && (Kld(o.C) < Kld(s.C) || Tps(o.M) > Tps(s.M)))
                .OrderByDescending(o => Tps(o.M)).FirstOrDefault(); // named: the fastest of those that beat it
            if (by.C is null) front.Add(s);
            else discarded.Add(new Discarded(s.C.Name, "screen",
                $"beaten at concurrency 1 by {by.C.Name}: KL divergence {Kld(by.C):G3} ≤ {Kld(s.C):G3} and {Tps(by.M):0.#} ≥ {Tps(s.M):0.#} tok/s"));
        }
        var ordered = (target == "ttft" ? front.OrderBy(s => s.M.Levels[0].TtftP50Ms) : front.OrderByDescending(s => Tps(s.M))).ToList();
        foreach (var s in ordered.Skip(finalists))
            discarded.Add(new Discarded(s.C.Name, "screen", $"not among the {finalists} best at concurrency 1 for {target} ({(target == "ttft" ? $"TTFT {s.M.Levels[0].TtftP50Ms:0.#} ms" : $"{Tps(s.M):0.#} tok/s")})"));
        return ordered.Take(finalists).ToList();
    }

    /// <summary>An upper bound of the time to build the self-distilled datastore drafter (<see cref="Pipeline.BenchmarkVariant"/>'s:
    /// three openings of each calibration record continued greedily for up to 256 tokens) at the speed the model screened at.</summary>
    public static double DatastoreSeconds(Pipeline.StagedDataset dataset, LoadLevel screen) =>
        screen.OutputTokensPerSecond > 0 ? (dataset.Records + 1) / 2 * 3 * 256 / screen.OutputTokensPerSecond : double.PositiveInfinity;

    /// <summary>An upper bound of the load stage's time for a candidate: a closed-loop level of c clients takes at most as
    /// long as its requests one after another (batching only shortens it), from the screen's end-to-end latency, plus the
    /// exactness check of a speculative candidate.</summary>
    public static double EstimateSeconds(LoadLevel screen, Workload load, bool speculative = false) =>
        screen.E2eP50Ms / 1000 * (load.Runs * load.Concurrency.Length * load.Requests + (speculative ? 16 : 0));
}
