// The browser tests' own tools (tests/support): base64, the child process helper, and the
// WebDriver client against pages the test writes itself (a file:// page whose script adds
// SVG points over time, a data: URL), checked through the DOM and the screenshot's pixels.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/child_process.hpp"
#include "tests/support/png_image.hpp"
#include "tests/support/webdriver.hpp"

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string bytes_text(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }

TEST(Base64, DecodesRfc4648Vectors) {
  // RFC 4648 section 10.
  EXPECT_EQ(bytes_text(kiln_test::base64_decode("")), "");
  EXPECT_EQ(bytes_text(kiln_test::base64_decode("Zg==")), "f");
  EXPECT_EQ(bytes_text(kiln_test::base64_decode("Zm8=")), "fo");
  EXPECT_EQ(bytes_text(kiln_test::base64_decode("Zm9v")), "foo");
  EXPECT_EQ(bytes_text(kiln_test::base64_decode("Zm9vYg==")), "foob");
  EXPECT_EQ(bytes_text(kiln_test::base64_decode("Zm9vYmE=")), "fooba");
  EXPECT_EQ(bytes_text(kiln_test::base64_decode("Zm9vYmFy")), "foobar");
  // All 6-bit values: bytes 0xfb 0xff 0xbf decode from "+/+/".
  EXPECT_EQ(kiln_test::base64_decode("+/+/"), (std::vector<std::uint8_t>{0xfb, 0xff, 0xbf}));
  EXPECT_THROW(kiln_test::base64_decode("Zm9v*"), std::runtime_error);
  EXPECT_THROW(kiln_test::base64_decode("Zm9vY"), std::runtime_error);
}

TEST(ChildProcess, ReadsLinesAndIsStoppedBySignal) {
  kiln_test::ChildProcess child({"/bin/sh", "-c", "echo first; echo second; exec sleep 60"});
  EXPECT_EQ(child.read_line(seconds(10)), "first");
  EXPECT_EQ(child.read_line(seconds(10)), "second");
  EXPECT_TRUE(child.running());
  EXPECT_EQ(child.stop(), -SIGTERM);
  EXPECT_FALSE(child.running());
}

TEST(ChildProcess, ReportsExitCodeAndEndOfOutput) {
  kiln_test::ChildProcess child({"/bin/sh", "-c", "printf partial; exit 7"});
  EXPECT_THROW(child.read_line(seconds(10)), std::runtime_error);  // no newline, then EOF
  const auto deadline = std::chrono::steady_clock::now() + seconds(10);
  while (child.running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_FALSE(child.running());
  EXPECT_EQ(child.stop(), 7);
}

TEST(ChildProcess, ReadLineTimesOut) {
  kiln_test::ChildProcess child({"/bin/sh", "-c", "exec sleep 60"});
  EXPECT_THROW(child.read_line(milliseconds(200)), std::runtime_error);
  EXPECT_TRUE(child.running());  // the timeout, not an exit, ended the wait
}

class WebDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_webdriver_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

// A page whose script adds one point to an SVG polyline every 100 ms up to 5 points, on a
// white page with a red 100 x 100 square at (40, 300).
constexpr const char* growing_page = R"(<!doctype html>
<html><head><meta charset="utf-8"><title>growing</title>
<style>body{margin:0;background:#fff}</style></head>
<body>
<svg id="chart" width="400" height="200"><polyline id="line" points="0,0" data-x="0" data-y="0"
  fill="none" stroke="black"/></svg>
<div style="position:absolute;left:40px;top:300px;width:100px;height:100px;background:#ff0000"></div>
<script>
let n = 1;
const timer = setInterval(() => {
  const line = document.getElementById('line');
  line.setAttribute('points', line.getAttribute('points') + ' ' + (n * 10) + ',' + (n * n));
  line.dataset.x += ',' + n;
  line.dataset.y += ',' + n * n;
  if (++n == 5) clearInterval(timer);
}, 100);
</script></body></html>
)";

TEST_F(WebDriverTest, DrivesAFilePage) {
  KILN_REQUIRE_BROWSER();
  const fs::path page = dir_ / "growing.html";
  std::ofstream(page) << growing_page;

  kiln_test::WebDriver browser;
  browser.navigate("file://" + page.string());
  EXPECT_EQ(browser.current_url(), "file://" + page.string());
  EXPECT_EQ(browser.execute("return document.title"), "growing");
  EXPECT_EQ(browser.execute("return arguments[0] * arguments[1]", {6, 7}), 42);
  EXPECT_EQ(browser.execute("return [1, 'a', null, {b: true}]"),
            nlohmann::json::parse(R"([1, "a", null, {"b": true}])"));

  // The script adds points over time: wait_until polls until the 5th is there and returns
  // the value; the points read back are the ones the script computed (n, n * n).
  const nlohmann::json ys = browser.wait_until(
      "const y = document.getElementById('line').dataset.y.split(',').map(Number);"
      "return y.length == 5 ? y : null;",
      seconds(10));
  EXPECT_EQ(ys, nlohmann::json::parse("[0, 1, 4, 9, 16]"));
  EXPECT_THROW(browser.wait_until("return false", milliseconds(300)), std::runtime_error);

  // A script error is a WebDriver error, not a value.
  EXPECT_THROW(browser.execute("return no_such_variable.x"), std::runtime_error);

  // The screenshot shows the page: 1280 px wide, white, with the red square where the page
  // put it (device pixel ratio 1 in headless mode).
  const kiln_test::RgbaImage shot = kiln_test::decode_png(browser.screenshot());
  EXPECT_EQ(shot.width, 1280);
  ASSERT_GE(shot.height, 500);
  const std::uint8_t* red = shot.at(90, 350);
  EXPECT_EQ(red[0], 255);
  EXPECT_EQ(red[1], 0);
  EXPECT_EQ(red[2], 0);
  const std::uint8_t* white = shot.at(600, 450);
  EXPECT_EQ(white[0], 255);
  EXPECT_EQ(white[1], 255);
  EXPECT_EQ(white[2], 255);
}

TEST_F(WebDriverTest, DrivesADataUrlAndQuitsTwice) {
  KILN_REQUIRE_BROWSER();
  kiln_test::WebDriver browser;
  browser.navigate("data:text/html,<title>hello</title><p id=p>kiln</p>");
  EXPECT_EQ(browser.execute("return document.getElementById('p').textContent"), "kiln");
  browser.quit();
  browser.quit();  // idempotent
  EXPECT_THROW(browser.execute("return 1"), std::runtime_error);
}

}  // namespace
