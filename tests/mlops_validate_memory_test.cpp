// validate_csv's memory grows with the columns, not with the rows: this program counts the
// bytes live through operator new and compares the peak while validating files of 200k and
// 800k rows in which every row has anomalies (counted, a few kept as examples).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "kiln/mlops/validate.hpp"
#include "kiln/train/from_spec.hpp"
#include "kiln/train/spec.hpp"
#include "tests/support/counting_new.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

class ValidateMemory : public kiln_test::TempDirTest {
 protected:
  ValidateMemory() : TempDirTest("kiln_mlops_validate_memory_test_") {}
};

void write_rows(const std::filesystem::path& p, int rows) {
  std::ofstream out(p, std::ios::binary);
  out << "x,color,y\n";
  const char* values[4] = {"12.5,purple,a\n", "oops,red,c\n", ",,b\n", "3,green,a\n"};
  for (int i = 0; i < rows; ++i) out << values[i % 4];
}

TEST_F(ValidateMemory, PeakDoesNotGrowWithTheRows) {
  std::ofstream(path("train.csv")) << "x,color,y\n0,red,a\n9,green,b\n4,blue,a\n5,red,b\n";
  const auto spec = kiln::train::ModelSpec::from_json(R"({
    "inputs": [{"name": "features", "shape": ["auto"]}],
    "layers": [{"type": "dense", "units": "auto"}],
    "task": {"type": "classification", "target": "y"},
    "training": {"epochs": 1, "batch_size": 4, "test_split": 0}})",
                                                      "spec.json");
  const std::string model = path("m.kiln").string();
  kiln::train::train_from_spec(spec, path("train.csv").string(),
                               {.progress = kiln::train::Progress::none})
      .save(model);
  write_rows(path("small.csv"), 200000);
  write_rows(path("large.csv"), 800000);

  kiln::mlops::ValidationReport small, large;
  const std::size_t small_peak = kiln_test::peak_of(
      [&] { small = kiln::mlops::validate_csv(model, path("small.csv").string()); });
  const std::size_t large_peak = kiln_test::peak_of(
      [&] { large = kiln::mlops::validate_csv(model, path("large.csv").string()); });
  // Every anomaly on every fourth row, counted in full.
  ASSERT_EQ(large.rows, 800000);
  ASSERT_EQ(large.anomalies.size(), 6u);
  for (const auto& a : large.anomalies) EXPECT_EQ(a.count, 200000u) << a.kind << " " << a.column;
  EXPECT_EQ(large.errors, small.errors);
  // Both files are larger than the scanner's 1 MiB block; the large one is 4x larger
  // (7.8 MB): the peak (the model, the read buffer, per-column counters and examples) stays
  // the same within 64 KiB.
  const auto file_size = std::filesystem::file_size(path("large.csv"));
  EXPECT_GT(file_size, 7'000'000u);
  EXPECT_LT(large_peak, small_peak + 65536) << "small " << small_peak << ", large " << large_peak;
  EXPECT_LT(large_peak, file_size / 2) << large_peak;
}

}  // namespace
