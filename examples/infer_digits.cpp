// Classifies UCI digits with the model train_digits_mlp saves, linking only the inference
// library (Kiln::kiln_infer): loads the .kiln file (asking it to apply the preprocessing
// the file records), prints its signatures and metadata, feeds raw rows of digits.csv,
// classifies the first 20 rows one at a time and then all rows in one batch. The last line printed
// is accuracy=<value> over all rows; with a minimum accuracy given, exits 1 below it.
//
//   infer_digits path/to/digits_mlp.kiln [path/to/digits.csv [min_accuracy]]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "common/csv.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/infer/model.hpp"

#ifndef KILN_DIGITS_CSV
#define KILN_DIGITS_CSV "data/digits.csv"
#endif

namespace {

// Rows [begin, end) of the table's first `features` columns, raw, as an input tensor of the
// signature's shape (batch first).
kiln::Tensor rows_as_input(const kiln_examples::CsvTable& table, std::int64_t begin,
                           std::int64_t end, const kiln::TensorSpec& spec) {
  std::vector<std::int64_t> dims{end - begin};
  std::int64_t features = 1;
  for (std::size_t d = 1; d < spec.shape.rank(); ++d) {
    dims.push_back(spec.shape[d]);
    features *= spec.shape[d];
  }
  if (features + 1 != table.cols())
    throw kiln::ValueError("input '" + spec.name + "' takes " + std::to_string(features) +
                           " values per row; the table has " + std::to_string(table.cols()) +
                           " columns (features and a label)");
  std::vector<float> x;
  x.reserve(static_cast<std::size_t>((end - begin) * features));
  for (std::int64_t r = begin; r < end; ++r)
    for (std::int64_t c = 0; c < features; ++c) x.push_back(static_cast<float>(table.at(r, c)));
  return kiln::Tensor::from(x, kiln::Shape(dims));
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: infer_digits model.kiln [digits.csv [min_accuracy]]\n");
    return 2;
  }
  const std::string model_path = argv[1];
  const std::string csv_path = argc > 2 ? argv[2] : KILN_DIGITS_CSV;
  const double min_accuracy = argc > 3 ? std::atof(argv[3]) : 0.0;

  // run() normalises the inputs as the file records (x - mean) / stddev.
  const kiln::infer::Model model =
      kiln::infer::Model::load(model_path, {.apply_preprocessing = true});
  const kiln::ModelMetadata& meta = model.metadata();
  std::printf("model %s %s (format %u, written by Kiln %s at %s)\n", meta.name.c_str(),
              meta.version.c_str(), model.format_version(), meta.library_version.c_str(),
              meta.created.c_str());
  for (const auto& s : model.inputs())
    std::printf("  input  %s %s %s\n", s.name.c_str(), s.shape.str().c_str(),
                std::string(kiln::to_string(s.dtype)).c_str());
  for (const auto& s : model.outputs())
    std::printf("  output %s %s %s\n", s.name.c_str(), s.shape.str().c_str(),
                std::string(kiln::to_string(s.dtype)).c_str());
  for (const auto& [name, value] : meta.metrics) std::printf("  %s=%.4f\n", name.c_str(), value);
  if (model.inputs().size() != 1 || model.outputs().size() != 1)
    throw kiln::ValueError("expected a model with one input and one output");
  const kiln::TensorSpec& input = model.inputs()[0];
  auto label_name = [&](std::int64_t c) {
    return c < static_cast<std::int64_t>(meta.labels.size())
               ? meta.labels[static_cast<std::size_t>(c)]
               : std::to_string(c);
  };

  const kiln_examples::CsvTable table = kiln_examples::read_csv(csv_path);
  const std::int64_t label_col = table.cols() - 1;

  // One image at a time (batch 1).
  for (std::int64_t r = 0; r < std::min<std::int64_t>(20, table.rows); ++r) {
    const kiln::Tensor probs =
        model.run({{input.name, rows_as_input(table, r, r + 1, input)}}).at(0);
    const auto pred = static_cast<std::int64_t>(probs.argmax(1).item());
    std::printf("row %2lld: predicted %s (p=%.3f), label %g\n", static_cast<long long>(r),
                label_name(pred).c_str(), probs.at(pred), table.at(r, label_col));
  }

  // All rows in one batch: accuracy is the mean of the argmax == label mask.
  const kiln::Tensor probs =
      model.run({{input.name, rows_as_input(table, 0, table.rows, input)}}).at(0);
  std::vector<double> labels;
  for (std::int64_t r = 0; r < table.rows; ++r) labels.push_back(table.at(r, label_col));
  const double acc = (probs.argmax(1) == kiln::Tensor::from(labels, {table.rows})).mean();
  std::printf("classified %lld rows\n", static_cast<long long>(table.rows));
  std::printf("accuracy=%.4f\n", acc);
  if (acc < min_accuracy) {
    std::fprintf(stderr, "infer_digits: accuracy %.4f is below %.4f\n", acc, min_accuracy);
    return 1;
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "infer_digits: %s\n", e.what());
  return 1;
}
