// Golden files under tests/data: lines of a tag word and values, '#' comments, blank
// lines; one reader for all of them.
#pragma once

#include <fstream>
#include <istream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln_test {

/// Calls on_line(tag, values) for every line of tests/data/<name> that is neither blank nor
/// a '#' comment: tag is the line's first word, values a stream over the rest. on_line
/// returns false for a tag it does not know, which throws std::runtime_error naming the
/// file and the line, as does a file that cannot be opened.
template <class OnLine>
void read_golden(const std::string& name, OnLine&& on_line) {
  const std::string path = std::string(KILN_TEST_DATA_DIR) + "/" + name;
  std::ifstream file(path);
  if (!file) throw std::runtime_error("cannot open " + path);
  for (std::string line; std::getline(file, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream values(line);
    std::string tag;
    values >> tag;
    if (!on_line(tag, values)) throw std::runtime_error(path + ": bad line: " + line);
  }
}

/// The numbers left on a line ("nan" and "inf" too).
inline std::vector<double> numbers_of(std::istream& in) {
  std::vector<double> v;
  for (std::string token; in >> token;) v.push_back(std::stod(token));
  return v;
}

}  // namespace kiln_test
