// The CSV reader's column stores turned into tensors, a DatasetInfo and a fitted schema.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "data/csv_columns.hpp"
#include "internal/text.hpp"

namespace kiln::data {
namespace {

// Codes in order of the sorted names (a schema's categories are sorted by their bytes).
void sort_categories(Column& c) {
  std::vector<std::int32_t> order(c.names.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
    return c.names[static_cast<std::size_t>(a)] < c.names[static_cast<std::size_t>(b)];
  });
  std::vector<std::int32_t> new_code(order.size());
  std::vector<std::string> sorted;
  sorted.reserve(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    new_code[static_cast<std::size_t>(order[i])] = static_cast<std::int32_t>(i);
    sorted.push_back(std::move(c.names[static_cast<std::size_t>(order[i])]));
  }
  for (std::int32_t& code : c.codes) code = new_code[static_cast<std::size_t>(code)];
  c.names = std::move(sorted);
  c.codes_by_name.clear();
}

std::int64_t count_seen(const std::vector<bool>& seen) {
  return static_cast<std::int64_t>(std::count(seen.begin(), seen.end(), true));
}

Tensor class_tensor(const Column& c, std::int64_t rows) {
  Tensor y = Tensor::empty({rows}, DType::i32);
  std::int32_t* dst = y.data<std::int32_t>();
  if (c.kind == ColumnKind::categorical)
    std::copy(c.codes.begin(), c.codes.end(), dst);
  else
    for (std::size_t i = 0; i < c.values.size(); ++i)
      dst[i] = static_cast<std::int32_t>(c.values[i]);
  return y;
}

Tensor regression_tensor(const Column& c, std::int64_t rows) {
  return Tensor::from(c.values, {rows, 1});
}

}  // namespace

void CsvReader::check_finite(const Column& c) const {
  if (c.kind == ColumnKind::numeric && c.nonfinite_row > 0)
    throw DataError(where(c.nonfinite_row, c.name) + ": " + show(c.nonfinite_value) +
                    " is not a finite f32 number");
}

Tensor CsvReader::encode_features(std::int64_t rows, CategoryEncoding encoding) const {
  std::vector<const Column*> features;
  for (const Column& c : columns_)
    if (!c.is_target) features.push_back(&c);
  if (features.size() == 1 && features[0]->kind == ColumnKind::image) {
    const ImageShape& s = features[0]->image_shape;
    return Tensor::from(features[0]->values, {rows, s[0], s[1], s[2]});
  }
  std::int64_t width = 0;
  for (const Column* c : features)
    width += c->kind == ColumnKind::categorical && encoding == CategoryEncoding::one_hot
                 ? static_cast<std::int64_t>(c->names.size())
                 : 1;
  const bool one_hot = std::any_of(features.begin(), features.end(), [&](const Column* c) {
    return c->kind == ColumnKind::categorical && encoding == CategoryEncoding::one_hot;
  });
  Tensor x =
      one_hot ? Tensor::zeros({rows, width}, DType::f32) : Tensor::empty({rows, width}, DType::f32);
  float* dst = x.data<float>();
  const auto n = static_cast<std::size_t>(rows);
  // Numeric and index-coded columns are copied row by row (each row written once, in
  // order); one-hot columns set one element per row.
  std::vector<const float*> numeric(static_cast<std::size_t>(width), nullptr);
  std::vector<const std::int32_t*> indexed(static_cast<std::size_t>(width), nullptr);
  std::size_t offset = 0;
  for (const Column* c : features) {
    if (c->kind == ColumnKind::numeric) {
      numeric[offset++] = c->values.data();
    } else if (encoding == CategoryEncoding::index) {
      indexed[offset++] = c->codes.data();
    } else {
      for (std::size_t i = 0; i < n; ++i)
        dst[i * static_cast<std::size_t>(width) + offset + static_cast<std::size_t>(c->codes[i])] =
            1.0f;
      offset += c->names.size();
    }
  }
  std::vector<std::pair<std::size_t, const float*>> numeric_at;
  std::vector<std::pair<std::size_t, const std::int32_t*>> indexed_at;
  for (std::size_t k = 0; k < numeric.size(); ++k) {
    if (numeric[k]) numeric_at.emplace_back(k, numeric[k]);
    if (indexed[k]) indexed_at.emplace_back(k, indexed[k]);
  }
  // In tiles of rows, so the rows written stay in cache while each column is copied.
  constexpr std::size_t tile = 128;
  const auto stride = static_cast<std::size_t>(width);
  for (std::size_t i0 = 0; i0 < n; i0 += tile) {
    const std::size_t i1 = std::min(n, i0 + tile);
    for (const auto& [k, src] : numeric_at)
      for (std::size_t i = i0; i < i1; ++i) dst[i * stride + k] = src[i];
    for (const auto& [k, src] : indexed_at)
      for (std::size_t i = i0; i < i1; ++i) dst[i * stride + k] = static_cast<float>(src[i]);
  }
  return x;
}

CsvData CsvReader::encode_fit(std::int64_t rows, const CsvOptions& options) {
  CsvSchema schema;
  schema.encoding = options.encoding;
  schema.delimiter = delimiter_;
  Column* target = nullptr;
  for (Column& c : columns_) {
    if (c.is_target) {
      target = &c;
      continue;
    }
    check_finite(c);
    if (c.kind == ColumnKind::categorical) {
      sort_categories(c);
      if (options.encoding == CategoryEncoding::one_hot &&
          static_cast<std::int64_t>(c.names.size()) > options.max_categories)
        throw DataError(name_ + ": column '" + c.name + "' has " + std::to_string(c.names.size()) +
                        " categories, more than max_categories (" +
                        std::to_string(options.max_categories) +
                        ") for one-hot encoding; use index encoding or leave the column out");
    }
    if (c.kind == ColumnKind::image) schema.image_shape = c.image_shape;
    schema.features.push_back({c.name, c.kind, c.names});
  }
  Batch tensors;
  tensors.emplace_back("features", encode_features(rows, options.encoding));
  for (Column& c : columns_)
    if (!c.is_target) std::vector<float>().swap(c.values);  // no longer needed
  if (target) {
    Column& t = *target;
    schema.target.name = t.name;
    schema.target.kind = t.kind;
    if (t.kind == ColumnKind::categorical) {
      sort_categories(t);
      schema.task = CsvTask::classification;
      schema.target.categories = t.names;
      schema.labels = t.names;
    } else {
      const auto classes = count_seen(t.class_seen);
      const auto largest = static_cast<std::int64_t>(t.class_seen.size()) - 1;
      schema.task = task_;
      if (task_ == CsvTask::automatic)
        schema.task = t.bad_class_row == 0 && classes <= 50 && largest <= 1000
                          ? CsvTask::classification
                          : CsvTask::regression;
      if (schema.task == CsvTask::classification) {
        if (t.bad_class_row > 0)
          throw DataError(where(t.bad_class_row, t.name) + ": " + show(t.bad_class_value) + " " +
                          t.bad_class_problem +
                          " (classification needs class indices 0, 1, ... or class names)");
        for (std::int64_t k = 0; k <= largest; ++k) schema.labels.push_back(std::to_string(k));
      } else {
        check_finite(t);
      }
    }
    if (schema.task == CsvTask::classification) {
      const std::int64_t classes = t.kind == ColumnKind::categorical
                                       ? static_cast<std::int64_t>(t.names.size())
                                       : count_seen(t.class_seen);
      if (classes < 2)
        throw DataError(
            name_ + ": column '" + t.name + "': every one of the " + std::to_string(rows) +
            " rows has the class " +
            show(t.kind == ColumnKind::categorical ? t.names.at(0) : schema.labels.back()) +
            "; classification needs at least two classes");
      tensors.emplace_back("target", class_tensor(t, rows));
    } else {
      tensors.emplace_back("target", regression_tensor(t, rows));
    }
  }
  DatasetInfo info;
  info.source = name_;
  info.target = target ? "target" : "";
  info.feature_names = schema.feature_names();
  info.labels = schema.labels;
  return {Dataset(std::move(tensors), std::move(info)), std::move(schema)};
}

Dataset CsvReader::encode_schema(std::int64_t rows, const CsvSchema& schema) {
  Batch tensors;
  tensors.emplace_back("features", encode_features(rows, schema.encoding));
  DatasetInfo info;
  info.source = name_;
  info.target = "";
  info.feature_names = schema.feature_names();
  info.labels = schema.labels;
  for (const Column& c : columns_) {
    if (!c.is_target) continue;
    info.target = "target";
    tensors.emplace_back("target", schema.task == CsvTask::classification
                                       ? class_tensor(c, rows)
                                       : regression_tensor(c, rows));
  }
  return Dataset(std::move(tensors), std::move(info));
}

}  // namespace kiln::data
