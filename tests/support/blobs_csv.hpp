// A small seeded classification data set for the continuous-training tests: three Gaussian
// blobs, as CSV text "x0,x1,label".
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace kiln_test {

/// Three blobs (classes a, b, c at (0,0), (4,0), (0,4), unit noise), `rows` rows in class
/// order a, b, c, a, ...; `shift` is added to both features; `shuffle_labels` draws the labels
/// at random instead. The same `seed` gives the same text.
inline std::string blobs_csv(int rows, std::uint64_t seed, double shift = 0,
                             bool shuffle_labels = false) {
  std::uint64_t s = seed * 2654435761u + 12345;
  auto uniform = [&] {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (static_cast<double>(s >> 11) + 0.5) / 9007199254740992.0;
  };
  auto normal = [&] {
    return std::sqrt(-2 * std::log(uniform())) * std::cos(6.283185307179586 * uniform());
  };
  const double cx[3] = {0, 4, 0}, cy[3] = {0, 0, 4};
  const char* names[3] = {"a", "b", "c"};
  std::string csv = "x0,x1,label\n";
  for (int i = 0; i < rows; ++i) {
    const int c = i % 3;
    const int label = shuffle_labels ? static_cast<int>(uniform() * 3) % 3 : c;
    char line[96];
    std::snprintf(line, sizeof line, "%.4f,%.4f,%s\n", cx[c] + normal() + shift,
                  cy[c] + normal() + shift, names[label]);
    csv += line;
  }
  return csv;
}

}  // namespace kiln_test
