// libFuzzer target for the model loader. Each input is decoded twice: as a whole file (so
// the envelope checks are fuzzed), and as a payload wrapped in a valid envelope (so the
// mutations reach the payload validation behind the SHA-256 check). Only kiln::Error may
// escape decode_model; anything else (a crash, a sanitizer report, another exception) is a
// finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/archive.hpp"
#include "io/model_data.hpp"
#include "kiln/core/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  try {
    (void)kiln::internal::decode_model(bytes, "fuzz.kiln");
  } catch (const kiln::Error&) {
  }
  // Inputs shaped like a model file keep their header's version; the rest is the payload.
  const std::size_t skip =
      size >= kiln::internal::envelope_size ? kiln::internal::envelope_size : 0;
  const auto wrapped = kiln::internal::wrap_envelope(
      kiln::internal::model_magic, kiln::model_format_version, bytes.subspan(skip));
  try {
    (void)kiln::internal::decode_model(wrapped, "fuzz-payload.kiln");
  } catch (const kiln::Error&) {
  }
  return 0;
}
