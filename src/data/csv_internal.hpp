// Internal: the CSV reader over any byte source (the fuzz target reads from memory).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "data/csv_scanner.hpp"
#include "kiln/data/csv.hpp"

namespace kiln::data {

/// Opens the input from its start (the reader reads it a second time when a column it took
/// for numeric turns out categorical).
using OpenSource = std::function<std::unique_ptr<ByteSource>()>;

/// read_csv and read_csv_with_schema over `open`: `name` is the file named in messages,
/// `base_dir` the folder image paths are relative to.
CsvData read_csv_source(const OpenSource& open, const std::string& name,
                        const std::string& base_dir, const CsvOptions& options);
Dataset read_csv_source_with_schema(const OpenSource& open, const std::string& name,
                                    const std::string& base_dir, const CsvSchema& schema,
                                    TargetColumn target);

}  // namespace kiln::data
