using Sio.Quantization;
using Sio.Speculative;

namespace Sio.Pipeline;

/// <summary>
/// One step of a recipe: a technique's pass with its one typed config (Olive's pass + config). <see cref="Spec"/> is
/// the recipe text it was parsed from, which names the variant it makes. Every host's runs, `sio optimize` and the
/// orchestrator read these records; the string form exists only in front of <see cref="Recipe.Parse"/>.
/// </summary>
public abstract record PassConfig(string Spec);

/// <summary>The quantize pass (<see cref="QuantizeModel"/>, <see cref="Quantizer"/>) with its whole config.</summary>
public sealed record QuantizePass(string Spec, QuantizationConfig Config) : PassConfig(Spec);

/// <summary>The compile pass (<see cref="CompileModel"/>) for a target execution provider: cpu, cuda or tensorrt.</summary>
public sealed record CompilePass(string Spec, string Target) : PassConfig(Spec);

/// <summary>Speculative decoding: a serving setting of the final model, measured as its own variant.</summary>
public sealed record SpeculativePass(string Spec, DrafterSpec Drafter) : PassConfig(Spec);
