// Small models for the serving tests (codec, batcher, metrics), built in memory:
//   classifier()  the digits MLP of monitor_test_support.hpp ("pixels" f32 [batch, 64] ->
//                 "probabilities" [batch, 10]) with class names "c0".."c9"
//   two_inputs()  "x" f32 [batch, 2, 3] and "k" i64 [batch] -> "total" = sum of x per row
//                 [batch] and "onehot" = one_hot(k, 4) [batch, 4]; no class names
#pragma once

#include <string>
#include <vector>

#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/kiln.hpp"
#include "tests/support/monitor_test_support.hpp"

namespace kiln_test {

inline kiln::infer::Model serve_classifier(kiln::infer::LoadOptions options = {}) {
  DigitsMlp m = digits_mlp();
  m.save.metadata.labels = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"};
  return kiln::infer::Model::load(kiln::serialize_model(m.graph, m.save), "classifier", options);
}

inline kiln::infer::Model serve_two_inputs() {
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 2, 3});
  auto k = g.input("k", {kiln::batch}, kiln::DType::i64);
  auto total = kiln::sum(x, {1, 2});
  auto onehot = kiln::one_hot(k, 4);
  kiln::SaveOptions save{.inputs = {x, k}, .outputs = {total, onehot}};
  save.output_names = {"total", "onehot"};
  save.metadata.name = "two-inputs";
  save.creation_time = "2026-01-01T00:00:00Z";
  return kiln::infer::Model::load(kiln::serialize_model(g, save), "two-inputs");
}

}  // namespace kiln_test
