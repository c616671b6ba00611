// Checks on the errors Kiln throws: the type, and what the message names.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <string>

namespace kiln_test {

/// Runs fn, expects an exception of type E, and returns its message (a test failure, and
/// "", when fn throws nothing or another type).
template <class E, class Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no exception";
  return {};
}

/// Runs fn and expects an exception of type E whose message contains `what`.
template <class E, class Fn>
void expect_error(Fn&& fn, const std::string& what) {
  const std::string msg = message_of<E>(fn);
  EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in: " << msg;
}

}  // namespace kiln_test
