namespace Sio.Quantization;

/// <summary>One linear's weight rounded to block codes, with the bias that corrects its mean output shift.</summary>
sealed record RoundedLinear(BlockQuantizer.Packed Packed, float[]? Bias, float ClipMean);

/// <summary>
/// How one linear's (scaled) weight becomes block codes. RTN: each block to its nearest codes. AWQ, with calibration
/// rows: per-block clip search, then error-compensating rounding along the inverse Hessian (or nearest), refinement of
/// single codes and block scales against the layer's output error, and a bias for the mean output shift. The
/// Hessian-derived matrices are built once per input (the linears of a group share rows and scale) and let go after
/// the group's last linear.
/// </summary>
sealed class LinearRounding(QuantizationConfig config, LinearGraph graph)
{
    readonly Dictionary<string, (float[]? Factor, float[]? Refine)> _hessians = new();
    readonly Dictionary<string, int> _pending = graph.Linears.GroupBy(l => l.Input).ToDictionary(g => g.Key, g => g.Count());

    /// <summary>Rounds <paramref name="w"/> (N, K); <paramref name="rows"/> are the calibration inputs as it sees them (null: RTN).</summary>
    public RoundedLinear Round(LinearLayer l, float[] w, List<float[]>? rows, BlockQuantizer bq, Func<float[]> inputMean)
    {
        if (config.Method != "awq" || rows is null) return new(Bf16(bq.Quantize(w, l.N, l.K)), null, 1f);
        var hessian = Hessian(l, rows);
        var (toPack, grid) = config.Rounding == "compensate"
            ? ErrorCompensatingRounding.Apply(w, l.N, l.K, rows, bq, hessian.Factor)
            : (w, AwqSearch.SearchBlocks(w, l.N, l.K, rows, bq));
        if (config.Refine)
        {
            if (ReferenceEquals(toPack, w)) toPack = BlockQuantizer.Dequantize(bq.Quantize(w, l.N, l.K, grid.Choice(bq)));
            RoundingRefinement.Apply(w, toPack, l.N, l.K, hessian.Refine!, grid, bq);
        }
        var packed = Bf16(bq.Quantize(toPack, l.N, l.K, grid.Choice(bq)));
        var bias = config.BiasCorrection ? BiasCorrection.For(w, BlockQuantizer.Dequantize(packed), l.N, l.K, inputMean()) : null;
        return new(packed, bias, grid.Clip.Average());
    }

    BlockQuantizer.Packed Bf16(BlockQuantizer.Packed packed)
    {
        if (config.Bf16Scales) Native.Bf16.Round(packed.Scales);
        return packed;
    }

    /// <summary>GPTQ's inverse-Hessian factor, and the matrix the refinement descends on (the scatter about the mean when a bias corrects the mean).</summary>
    (float[]? Factor, float[]? Refine) Hessian(LinearLayer l, List<float[]> rows)
    {
        if (!_hessians.TryGetValue(l.Input, out var h))
        {
            var gram = config.Rounding == "compensate" || (config.Refine && !config.BiasCorrection) ? RoundingRefinement.Gram(rows, l.K) : null;
            var factor = config.Rounding == "compensate" ? ErrorCompensatingRounding.InverseHessianFactor(gram!, l.K) : null;
            var refine = !config.Refine ? null : config.BiasCorrection ? RoundingRefinement.Centered(rows, l.K) : gram;
            _hessians[l.Input] = h = (factor, refine);
        }
        if (--_pending[l.Input] == 0) _hessians.Remove(l.Input); // the group's last linear: let it go
        return h;
    }
}
