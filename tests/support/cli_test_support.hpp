// The kiln command run as a user would, for the cli_* tests: the built binary (KILN_CLI, a
// compile definition of those tests) run by the shell in the test's own temporary folder
// (tests/support/temp_dir.hpp), its stdout and stderr captured; and the file helpers the
// tests check its output with.
//
//   class CliInspect : public kiln_test::CliTest {
//    protected:
//     CliInspect() : CliTest("kiln_cli_inspect_test_") {}
//   };
//   TEST_F(CliInspect, Json) {
//     const kiln_test::CliResult r = kiln("inspect m.kiln --json");  // in dir_
//     EXPECT_EQ(r.rc, 0) << r.err;
//   }
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.hpp"

namespace kiln_test {

/// The exit code (-1 if the command did not exit normally) and the captured output.
struct CliResult {
  int rc = -1;
  std::string out;
  std::string err;
};

/// The whole file ("" if it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

/// The non-empty lines of `text`.
inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

class CliTest : public TempDirTest {
 protected:
  using TempDirTest::TempDirTest;

  /// Runs `kiln <args>` in the test's folder (so that whatever it writes by default, such
  /// as the runs/ folder of `kiln train`, lands there); stdout and stderr captured.
  CliResult kiln(const std::string& args) const {
    const std::filesystem::path out = path("stdout.txt"), err = path("stderr.txt");
    const std::string cmd = "cd '" + dir_.string() + "' && " + std::string(KILN_CLI) + " " + args +
                            " >'" + out.string() + "' 2>'" + err.string() + "'";
    const int status = std::system(cmd.c_str());
    CliResult r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  /// kiln(args)'s stdout parsed as JSON; a failure if it does not exit with 0.
  nlohmann::json kiln_json(const std::string& args) const {
    const CliResult r = kiln(args);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return nlohmann::json::parse(r.out);
  }
};

}  // namespace kiln_test
