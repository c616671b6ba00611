// libFuzzer target for the model loader. Each input is decoded twice: as a whole file (so
// the envelope checks are fuzzed), and as a payload wrapped in a valid envelope (so the
// mutations reach the payload validation behind the SHA-256 check). A model that decodes
// is then compiled and run on small inputs (batch 1 and 2, zeros and ones) with the
// reference kernels, so the fuzzer also reaches what a decoded file drives: the planner,
// the passes and every kernel's checks. Only kiln::Error may escape; anything else (a
// crash, a sanitizer report, another exception) is a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/archive.hpp"
#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "kiln/runtime/executable.hpp"

namespace {

/// Elements per node above which a decoded model is not run (its inputs and intermediate
/// values would take more memory and time than a fuzz iteration should).
constexpr std::int64_t max_run_elements = std::int64_t{1} << 16;

bool small_enough(const kiln::Graph& g, std::int64_t batch) {
  for (const kiln::Node& n : g.nodes()) {
    std::int64_t numel = 1;
    for (auto d : n.shape) {
      numel *= d < 0 ? batch : d;
      if (numel > max_run_elements) return false;
    }
  }
  return true;
}

kiln::Tensor feed_for(const kiln::TensorSpec& spec, std::int64_t batch, double value) {
  std::vector<std::int64_t> dims;
  for (auto d : spec.shape) dims.push_back(d < 0 ? batch : d);
  return kiln::Tensor::full(kiln::Shape(dims), value, spec.dtype);
}

void compile_and_run(kiln::internal::ModelData& m) {
  std::vector<kiln::Value> outputs;
  for (auto id : m.output_ids) outputs.push_back(m.graph->value(id));
  kiln::Executable exe(*m.graph, outputs, {.backend = "reference"});
  for (std::int64_t batch : {1, 2}) {
    if (!small_enough(*m.graph, batch)) return;
    for (double value : {0.0, 1.0}) {
      kiln::Feeds feeds;
      for (const auto& spec : m.inputs) feeds.emplace_back(spec.name, feed_for(spec, batch, value));
      (void)exe.run(feeds);
    }
  }
}

void decode_and_run(std::span<const std::uint8_t> bytes, const char* source) {
  try {
    kiln::internal::ModelData m = kiln::internal::decode_model(bytes, source);
    compile_and_run(m);
  } catch (const kiln::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  decode_and_run(bytes, "fuzz.kiln");
  // Inputs shaped like a model file keep their header's version; the rest is the payload.
  const std::size_t skip =
      size >= kiln::internal::envelope_size ? kiln::internal::envelope_size : 0;
  std::uint32_t version = kiln::model_format_version;
  if (skip) {
    const std::uint32_t v = data[4] | (std::uint32_t{data[5]} << 8) |
                            (std::uint32_t{data[6]} << 16) | (std::uint32_t{data[7]} << 24);
    if (v >= 1 && v <= kiln::model_format_version) version = v;
  }
  const auto wrapped =
      kiln::internal::wrap_envelope(kiln::internal::model_magic, version, bytes.subspan(skip));
  decode_and_run(wrapped, "fuzz-payload.kiln");
  return 0;
}
