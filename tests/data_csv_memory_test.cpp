// The CSV reader's memory grows with the data it keeps, not with the file: this program
// counts the bytes live through operator new (the reader's column stores, buffers and
// dictionaries; tensors use aligned_alloc and are the data kept) and compares the peak while
// reading 2 of 20 columns with the file size and with reading all 20.
#include <gtest/gtest.h>

#include <random>

#include "data_test_util.hpp"
#include "kiln/data/csv.hpp"
#include "tests/support/counting_new.hpp"

namespace kiln::data {
namespace {

TEST(CsvMemoryTest, PeakFollowsTheColumnsKept) {
  testing::TempDir dir;
  constexpr int rows = 100000;
  std::string csv;
  for (int c = 0; c < 20; ++c) csv += (c ? ",c" : "c") + std::to_string(c);
  csv += "\n";
  std::mt19937 gen(5);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < 20; ++c) {
      csv += std::to_string(static_cast<double>(gen() % 1000000) / 997.0);
      csv += c < 19 ? ',' : '\n';
    }
  const std::string path = dir.write("wide.csv", csv);
  const std::size_t file = csv.size();
  csv = std::string();

  const std::size_t two = kiln_test::peak_of([&] {
    const auto d =
        read_csv(path, {.target = "c19", .features = {"c3"}, .task = CsvTask::regression});
    EXPECT_EQ(d.dataset.size(), rows);
  });
  const std::size_t all = kiln_test::peak_of([&] {
    const auto d = read_csv(path, {.target = "c19", .task = CsvTask::regression});
    EXPECT_EQ(d.dataset["features"].shape(), Shape({rows, 19}));
  });
  const std::size_t kept_two = 2 * rows * sizeof(float);
  const std::size_t kept_all = 20 * rows * sizeof(float);
  // Two stores of ~N floats (reserved from an estimate), a 1 MiB read block and its
  // unescape buffer; nothing grows with the 18 columns skipped or with the file.
  EXPECT_LT(two, kept_two * 5 / 4 + (3u << 20)) << "file " << file;
  EXPECT_LT(two, file / 4);
  EXPECT_GT(all, kept_all);
  EXPECT_LT(all, kept_all * 5 / 4 + (3u << 20));
  std::printf("file %zu bytes; peak while reading 2 columns %zu, 20 columns %zu\n", file, two, all);
}

}  // namespace
}  // namespace kiln::data
