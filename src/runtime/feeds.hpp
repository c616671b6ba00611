// One check of the tensors fed to a run, shared by Executable, infer::Model and (through
// infer::Model) the C API: the same checks with the same messages everywhere.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/runtime/executable.hpp"

namespace kiln::internal {

/// What a run expects of one input: its name, shape (kiln::batch dims are free) and dtype.
struct FeedSpec {
  std::string_view name;
  const Shape* shape;
  DType dtype;
};

/// Matches `feeds` to `inputs` and returns, for each input, the index of its feed.
/// Messages start with `where` ("run", "model 'digits': run"). Throws
///   NameError   for a name that is no input (unless `ignorable(name)`: such feeds are
///               skipped), a name fed twice, or a missing input;
///   ValueError  for an undefined tensor;
///   DTypeError  for a dtype other than the input's;
///   ShapeError  for a rank or static dim other than the input's, and for feeds whose batch
///               dims (kiln::batch in the inputs' shapes) differ, naming both feeds.
/// With `check_finite`, a NaN or infinite element of a floating-point feed is a ValueError
/// naming the input and the element.
std::vector<std::size_t> match_feeds(std::span<const FeedSpec> inputs, const Feeds& feeds,
                                     std::string_view where, bool check_finite = false,
                                     const std::function<bool(const std::string&)>& ignorable = {});

}  // namespace kiln::internal
