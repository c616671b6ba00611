// A GoogleTest fixture with a temporary folder of its own per test:
// TEMP/<prefix><test name>, emptied before the test and removed after it unless the test
// failed (then kept, to look at).
//
//   class Explain : public kiln_test::TempDirTest {
//    protected:
//     Explain() : TempDirTest("kiln_explain_test_") {}
//   };
//   TEST_F(Explain, Writes) { write_thing(path("a.html")); EXPECT_TRUE(exists(dir_ / "a.html")); }
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <utility>

namespace kiln_test {

class TempDirTest : public ::testing::Test {
 protected:
  /// `prefix` keeps the folders of different test programs apart.
  explicit TempDirTest(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           (prefix_ + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  /// The file `name` inside the test's folder.
  std::filesystem::path path(const std::string& name) const { return dir_ / name; }

  std::filesystem::path dir_;

 private:
  std::string prefix_;
};

}  // namespace kiln_test
