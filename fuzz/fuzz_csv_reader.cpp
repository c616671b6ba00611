// libFuzzer target for the CSV reader. The first byte of an input picks the options (a
// target or none, forced kinds, encodings, tasks, delimiters); the rest is the file, read
// from memory through the same scanner and column stores as a file. Image paths resolve
// against a folder that does not exist. A file that reads is then read again with its own
// fitted schema (after a JSON round trip): that must succeed and give the same tensors. Only
// kiln::Error may escape; a crash, a sanitizer report, another exception or a mismatch is a
// finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "data/csv_internal.hpp"
#include "kiln/core/error.hpp"

namespace {

using namespace kiln::data;

CsvOptions options_for(std::uint8_t selector) {
  switch (selector % 8) {
    case 0:
      return {};
    case 1:
      return {.target = "y"};
    case 2:
      return {.target = "y", .task = CsvTask::classification, .encoding = CategoryEncoding::index};
    case 3:
      return {.target = "y", .task = CsvTask::regression, .delimiter = ';'};
    case 4:
      return {.target = "y",
              .features = {"a", "b"},
              .kinds = {{"a", ColumnKind::categorical}, {"b", ColumnKind::numeric}},
              .max_categories = 16};
    case 5:
      return {.target = "y", .ignore = {"a"}, .kinds = {{"y", ColumnKind::categorical}}};
    case 6:
      return {.target = "a", .task = CsvTask::classification, .delimiter = '\t'};
    default:
      return {.target = "y", .kinds = {{"a", ColumnKind::image}}, .image_channels = 1};
  }
}

bool same_bytes(const kiln::Tensor& a, const kiln::Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const OpenSource open = [&] { return std::make_unique<MemorySource>(bytes); };
  const std::string base = "/nonexistent-kiln-fuzz-folder";
  CsvData fitted;
  try {
    fitted = read_csv_source(open, "fuzz.csv", base, options_for(data[0]));
  } catch (const kiln::Error&) {
    return 0;
  }
  const CsvSchema schema = CsvSchema::from_json(fitted.schema.to_json());
  if (!(schema == fitted.schema)) std::abort();
  const Dataset again =
      read_csv_source_with_schema(open, "fuzz.csv", base, schema, TargetColumn::required);
  if (again.tensors().size() != fitted.dataset.tensors().size()) std::abort();
  for (std::size_t i = 0; i < again.tensors().size(); ++i)
    if (!same_bytes(again.tensors()[i].second, fitted.dataset.tensors()[i].second)) std::abort();
  if (!(again.info() == fitted.dataset.info())) std::abort();
  return 0;
}
