// data.json: the training data's columns, ranges and class balance.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "report/record_impl.hpp"

namespace kiln::report {
using internal::Json;

namespace {

struct Moments {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0.0, sumsq = 0.0;
  std::int64_t n = 0, missing = 0;
  void add(double v) {  // NaN and infinities count as missing
    if (!std::isfinite(v)) {
      ++missing;
      return;
    }
    min = std::min(min, v);
    max = std::max(max, v);
    sum += v;
    sumsq += v * v;
    ++n;
  }
  void write(Json& j) const {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double mean = n ? sum / static_cast<double>(n) : nan;
    const double var = n ? std::max(0.0, sumsq / static_cast<double>(n) - mean * mean) : nan;
    j["min"] = internal::number(n ? min : nan);
    j["max"] = internal::number(n ? max : nan);
    j["mean"] = internal::number(mean);
    j["std"] = internal::number(std::sqrt(var));
    j["missing"] = missing;
  }
};

}  // namespace

void RunRecorder::set_data(const data::Dataset& train, std::int64_t test_rows,
                           const std::string& file, const std::string& target_column) {
  const data::DatasetInfo& info = train.info();
  Json j;
  j["file"] = file.empty() ? info.source : file;
  j["rows"] = train.size() + test_rows;
  j["train_rows"] = train.size();
  j["test_rows"] = test_rows;
  j["target"] = target_column.empty() ? info.target : target_column;
  const bool has_target = !info.target.empty() && train.contains(info.target);
  const bool classes = has_target && (train[info.target].dtype() == DType::i32 ||
                                      train[info.target].dtype() == DType::i64);
  j["task"] = !has_target ? "unsupervised" : classes ? "classification" : "regression";

  Json columns = Json::array();
  if (!info.features.empty() && train.contains(info.features)) {
    // Read as stored (features are f32; other dtypes are converted once).
    const Tensor stored = train[info.features].contiguous();
    const Tensor x = stored.dtype() == DType::f32 ? stored : stored.to(DType::f32);
    const float* p = x.data<float>();
    const std::int64_t rows = x.rank() > 0 ? x.dim(0) : 0;
    if (x.rank() == 2) {
      const std::int64_t f = x.dim(1);
      std::vector<std::string> names = info.feature_names;
      names.resize(static_cast<std::size_t>(f));
      for (std::int64_t c = 0; c < f; ++c)
        if (names[static_cast<std::size_t>(c)].empty())
          names[static_cast<std::size_t>(c)] = "x" + std::to_string(c);
      for (std::int64_t c = 0; c < f;) {
        const std::string& name = names[static_cast<std::size_t>(c)];
        const auto eq = name.find('=');
        if (eq != std::string::npos) {
          // One-hot columns "color=red", "color=blue": one categorical column.
          const std::string base = name.substr(0, eq);
          Json col{{"name", base}, {"kind", "categorical"}};
          std::vector<std::string> cats;
          std::vector<std::int64_t> counts;
          for (; c < f && names[static_cast<std::size_t>(c)].rfind(base + "=", 0) == 0; ++c) {
            cats.push_back(names[static_cast<std::size_t>(c)].substr(eq + 1));
            std::int64_t n = 0;
            for (std::int64_t r = 0; r < rows; ++r) n += p[r * f + c] != 0.0;
            counts.push_back(n);
          }
          col["categories"] = cats;
          col["counts"] = counts;
          columns.push_back(std::move(col));
          continue;
        }
        Moments m;
        for (std::int64_t r = 0; r < rows; ++r) m.add(p[r * f + c]);
        Json col{{"name", name}, {"kind", "numeric"}};
        m.write(col);
        columns.push_back(std::move(col));
        ++c;
      }
    } else {
      Moments m;
      for (std::int64_t i = 0; i < x.numel(); ++i) m.add(p[i]);
      Json col{{"name", info.features}, {"kind", x.rank() == 4 ? "image" : "tensor"}};
      col["shape"] =
          std::vector<std::int64_t>(x.shape().dims().begin() + 1, x.shape().dims().end());
      m.write(col);
      columns.push_back(std::move(col));
    }
  }
  j["columns"] = std::move(columns);

  if (classes) {
    const Tensor y = train[info.target].contiguous().to(DType::i64);
    std::vector<std::int64_t> counts(info.labels.size(), 0);
    for (std::int64_t i = 0; i < y.numel(); ++i) {
      const std::int64_t c = y.data<std::int64_t>()[i];
      if (c < 0) continue;
      if (static_cast<std::size_t>(c) >= counts.size())
        counts.resize(static_cast<std::size_t>(c) + 1, 0);
      ++counts[static_cast<std::size_t>(c)];
    }
    Json cls = Json::array();
    for (std::size_t c = 0; c < counts.size(); ++c)
      cls.push_back({{"name", c < info.labels.size() ? info.labels[c] : std::to_string(c)},
                     {"count", counts[c]}});
    j["classes"] = std::move(cls);
  } else if (has_target) {
    const Tensor y = train[info.target].contiguous().to(DType::f64);
    Moments m;
    for (std::int64_t i = 0; i < y.numel(); ++i) m.add(y.data<double>()[i]);
    Json t;
    m.write(t);
    j["target_stats"] = std::move(t);
  }
  internal::write_json_file(impl_->options.dir + "/data.json", j);
}

}  // namespace kiln::report
