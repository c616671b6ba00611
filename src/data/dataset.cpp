#include "kiln/data/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <set>

#include "data/data_util.hpp"
#include "internal/text.hpp"
#include "kiln/core/rng.hpp"

namespace kiln::data {
namespace {

std::vector<std::string> names_of(const Batch& tensors) {
  std::vector<std::string> names;
  names.reserve(tensors.size());
  for (const auto& [name, t] : tensors) names.push_back(name);
  return names;
}

// Bytes of one row of a contiguous tensor.
std::size_t row_bytes(const Tensor& t) {
  return t.shape()[0] == 0 ? 0 : t.nbytes() / static_cast<std::size_t>(t.shape()[0]);
}

}  // namespace

Dataset::Dataset(Batch tensors, DatasetInfo info) : info_(std::move(info)) {
  if (tensors.empty()) throw ValueError("Dataset: no tensors");
  std::set<std::string, std::less<>> seen;
  for (auto& [name, t] : tensors) {
    if (name.empty()) throw ValueError("Dataset: a tensor has an empty name");
    if (!seen.insert(name).second) throw ValueError("Dataset: tensor '" + name + "' given twice");
    if (!t.defined()) throw ValueError("Dataset: tensor '" + name + "' is undefined");
    if (t.rank() == 0)
      throw ValueError("Dataset: tensor '" + name + "' is rank 0; rows are its first dimension");
    t = t.contiguous();
  }
  const auto& [first_name, first] = tensors.front();
  for (const auto& [name, t] : tensors)
    if (t.dim(0) != first.dim(0))
      throw ValueError("Dataset: tensor '" + name + "' has " + std::to_string(t.dim(0)) +
                       " rows but '" + first_name + "' has " + std::to_string(first.dim(0)));
  rows_ = first.dim(0);
  tensors_ = std::move(tensors);
}

bool Dataset::contains(std::string_view name) const {
  return std::any_of(tensors_.begin(), tensors_.end(),
                     [&](const auto& entry) { return entry.first == name; });
}

const Tensor& Dataset::operator[](std::string_view name) const {
  for (const auto& [n, t] : tensors_)
    if (n == name) return t;
  throw NameError("Dataset: no tensor '" + std::string(name) + "' (it has " +
                  internal::quoted_list(names_of(tensors_)) + ")");
}

Batch Dataset::gather(std::span<const std::int64_t> rows) const {
  for (std::int64_t r : rows)
    if (r < 0 || r >= rows_)
      throw ValueError("Dataset::gather: row " + std::to_string(r) + " outside [0, " +
                       std::to_string(rows_) + ")");
  Batch out;
  out.reserve(tensors_.size());
  for (const auto& [name, t] : tensors_) {
    std::vector<std::int64_t> dims = t.shape().dims();
    dims[0] = static_cast<std::int64_t>(rows.size());
    Tensor g = Tensor::empty(Shape(std::move(dims)), t.dtype());
    const std::size_t bytes = row_bytes(t);
    const auto* src = static_cast<const unsigned char*>(t.raw());
    auto* dst = static_cast<unsigned char*>(g.raw());
    if (bytes > 0)
      for (std::size_t i = 0; i < rows.size(); ++i)
        std::memcpy(dst + i * bytes, src + static_cast<std::size_t>(rows[i]) * bytes, bytes);
    out.emplace_back(name, std::move(g));
  }
  return out;
}

Dataset Dataset::subset(std::span<const std::int64_t> rows) const {
  if (tensors_.empty()) throw ValueError("Dataset::subset: the dataset has no tensors");
  return Dataset(gather(rows), info_);
}

Dataset Dataset::rows(std::int64_t begin, std::int64_t end) const {
  if (begin < 0 || end < begin || end > rows_)
    throw ValueError("Dataset::rows: [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") outside [0, " + std::to_string(rows_) + ")");
  Batch views;
  for (const auto& [name, t] : tensors_) views.emplace_back(name, t.rows(begin, end));
  return Dataset(std::move(views), info_);
}

Dataset Dataset::select(const std::vector<std::string>& names) const {
  Batch views;
  for (const auto& name : names) views.emplace_back(name, (*this)[name]);
  DatasetInfo info = info_;
  if (std::find(names.begin(), names.end(), info.features) == names.end()) info.features.clear();
  if (std::find(names.begin(), names.end(), info.target) == names.end()) info.target.clear();
  return Dataset(std::move(views), std::move(info));
}

std::pair<Dataset, Dataset> split(const Dataset& dataset, const SplitOptions& options) {
  if (!(options.test_fraction > 0.0 && options.test_fraction < 1.0))
    throw ValueError("split: test_fraction " + std::to_string(options.test_fraction) +
                     " is outside (0, 1)");
  const std::int64_t n = dataset.size();
  const auto n_test = static_cast<std::int64_t>(std::llround(options.test_fraction * n));
  if (n_test < 1 || n_test > n - 1)
    throw ValueError("split: " + std::to_string(n) + " rows with test_fraction " +
                     std::to_string(options.test_fraction) + " leave a part empty");
  Rng rng(options.seed);
  std::vector<std::int64_t> train;
  std::vector<std::int64_t> test;
  if (!options.stratify) {
    std::vector<std::int64_t> perm = seeded_permutation(n, rng);
    test.assign(perm.begin(), perm.begin() + n_test);
    train.assign(perm.begin() + n_test, perm.end());
  } else {
    const std::string& target = dataset.info().target;
    if (target.empty()) throw ValueError("split: stratify needs a target (info().target is empty)");
    const std::vector<std::int64_t> labels =
        class_labels(dataset[target], "split: target '" + target + "'");
    std::map<std::int64_t, std::vector<std::int64_t>> by_class;
    for (std::int64_t i = 0; i < n; ++i) by_class[labels[static_cast<std::size_t>(i)]].push_back(i);
    if (by_class.size() < 2)
      throw DataError(
          "split: cannot stratify" +
          (dataset.info().source.empty() ? std::string() : " '" + dataset.info().source + "'") +
          ": target '" + target + "' has one class (" + std::to_string(by_class.begin()->first) +
          ")");
    // Each class gets floor(share) test rows; the rows left over go to the classes with
    // the largest remainders (ties: the smaller class value), so the total is n_test.
    std::vector<std::pair<std::int64_t, std::vector<std::int64_t>>> classes(by_class.begin(),
                                                                            by_class.end());
    std::vector<std::int64_t> quota(classes.size());
    std::vector<std::pair<double, std::size_t>> remainders;
    std::int64_t given = 0;
    for (std::size_t c = 0; c < classes.size(); ++c) {
      const double exact = static_cast<double>(n_test) *
                           static_cast<double>(classes[c].second.size()) / static_cast<double>(n);
      quota[c] = static_cast<std::int64_t>(std::floor(exact));
      given += quota[c];
      remainders.emplace_back(exact - static_cast<double>(quota[c]), c);
    }
    std::stable_sort(remainders.begin(), remainders.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (std::size_t i = 0; given < n_test && i < remainders.size(); ++i, ++given)
      ++quota[remainders[i].second];
    for (std::size_t c = 0; c < classes.size(); ++c) {
      auto& rows = classes[c].second;
      const std::vector<std::int64_t> perm =
          seeded_permutation(static_cast<std::int64_t>(rows.size()), rng);
      for (std::size_t i = 0; i < perm.size(); ++i)
        (static_cast<std::int64_t>(i) < quota[c] ? test : train)
            .push_back(rows[static_cast<std::size_t>(perm[i])]);
    }
  }
  // Both parts keep the dataset's row order.
  std::sort(train.begin(), train.end());
  std::sort(test.begin(), test.end());
  return {dataset.subset(train), dataset.subset(test)};
}

}  // namespace kiln::data
