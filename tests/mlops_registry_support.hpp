// Model files for the registry tests: a small dense classifier whose weights come from a seed
// (different seeds, different content hashes), with chosen metrics and a spec section.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "kiln/io/model_file.hpp"
#include "kiln/kiln.hpp"

namespace kiln_test {

inline const char* registry_test_spec =
    R"({"name": "tiny", "layers": [{"type": "dense", "units": 3}],)"
    R"( "training": {"optimizer": {"name": "adam", "lr": 0.003}, "epochs": 30, "seed": 42}})";

struct TinyModel {
  std::uint64_t seed = 1;
  std::vector<std::pair<std::string, double>> metrics = {};
  std::string spec = registry_test_spec;
  std::string creation_time = "2026-01-01T00:00:00Z";
};

/// Saves the tiny model `m` to `path`.
inline void save_tiny_model(const std::filesystem::path& path, const TinyModel& m) {
  kiln::Graph g;
  kiln::Value x = g.input("x", {kiln::batch, 4});
  kiln::Value logits = kiln::nn::dense(g, x, 3, {.name = "fc", .seed = m.seed});
  kiln::Value probs = kiln::softmax(logits, -1, "probs");
  kiln::SaveOptions options{.inputs = {x}, .outputs = {probs}};
  options.metadata.name = "tiny";
  options.metadata.metrics = m.metrics;
  if (!m.spec.empty())
    options.sections["kiln.spec"] = std::vector<std::uint8_t>(m.spec.begin(), m.spec.end());
  options.creation_time = m.creation_time;
  kiln::save_model(path.string(), g, options);
}

}  // namespace kiln_test
