// Bad input raises typed errors whose messages name what is wrong.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kiln.hpp"
#include "tests/support/error_test_support.hpp"

namespace kiln {
namespace {

using kiln_test::message_of;

void expect_mentions(const std::string& msg, std::initializer_list<const char*> parts) {
  for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg << " lacks " << p;
}

TEST(Errors, ShapeMismatchNamesOpNodeAndBothShapes) {
  Graph g;
  auto x = g.input("x", {batch, 64});
  auto w = g.parameter("fc1.weight", Tensor::zeros({32, 10}));
  const auto msg = message_of<ShapeError>([&] { matmul(x, w, {}, "fc1"); });
  expect_mentions(msg, {"matmul", "fc1", "[batch, 64]", "[32, 10]"});
  expect_mentions(message_of<ShapeError>([&] {
                    add(x, g.input("y", {3, 5}));
                  }),
                  {"add", "[batch, 64]", "[3, 5]"});
  expect_mentions(message_of<ShapeError>([&] { softmax(x, 2); }), {"softmax", "axis 2"});
  expect_mentions(message_of<ShapeError>([&] {
                    reshape(g.input("s", {3, 5}), {7, 7});
                  }),
                  {"reshape", "[3, 5]"});
  expect_mentions(message_of<ShapeError>([&] { slice(x, 1, 10, 70); }), {"slice", "[10, 70)"});
  expect_mentions(message_of<ShapeError>([&] {
                    concat({x, g.input("z", {batch, 2, 2})}, 1);
                  }),
                  {"concat", "rank"});
}

TEST(Errors, WrongDtypes) {
  Graph g;
  auto x = g.input("x", {4, 3});
  auto labels = g.input("labels", {4}, f32);  // should be integer
  expect_mentions(message_of<DTypeError>([&] { softmax_cross_entropy(x, labels, "loss"); }),
                  {"softmax_cross_entropy", "loss", "i32 or i64"});
  auto idx = g.input("idx", {4}, i32);
  expect_mentions(message_of<DTypeError>([&] { relu(idx); }), {"relu", "f32 or f64"});
  expect_mentions(message_of<DTypeError>([&] {
                    add(x, g.input("d", {4, 3}, f64));
                  }),
                  {"add", "same dtype"});
  expect_mentions(message_of<DTypeError>([&] { grad(sum(x), {idx}); }), {"idx"});
}

TEST(Errors, UnknownAndDuplicateNames) {
  Graph g;
  auto x = g.input("x", {batch, 2});
  auto y = relu(x, "act");
  expect_mentions(message_of<NameError>([&] { g.find("nope"); }), {"nope"});
  expect_mentions(message_of<NameError>([&] { relu(x, "act"); }), {"act", "already"});
  Executable exe(g, {y});
  Tensor t = Tensor::zeros({1, 2});
  expect_mentions(message_of<NameError>([&] {
                    exe.run({{"pixels", t}});
                  }),
                  {"pixels", "not an input"});
  expect_mentions(message_of<NameError>([&] { exe.run({}); }), {"input 'x' is missing"});
}

TEST(Errors, BadFeeds) {
  Graph g;
  auto x = g.input("x", {batch, 2});
  Executable exe(g, {relu(x)});
  expect_mentions(message_of<ShapeError>([&] {
                    exe.run({{"x", Tensor::zeros({3, 5})}});
                  }),
                  {"x", "[batch, 2]", "[3, 5]"});
  expect_mentions(message_of<DTypeError>([&] {
                    exe.run({{"x", Tensor::zeros({3, 2}, i64)}});
                  }),
                  {"x", "f32", "i64"});
  expect_mentions(message_of<ValueError>([&] { exe.run({{"x", Tensor()}}); }), {"x", "undefined"});
  // A name fed twice is an error, not "the last one wins".
  expect_mentions(message_of<NameError>([&] {
                    exe.run({{"x", Tensor::zeros({3, 2})}, {"x", Tensor::zeros({3, 2})}});
                  }),
                  {"input 'x' is fed twice"});
  // Feeds of graph inputs the outputs do not need are accepted and ignored.
  auto unused = g.input("unused", {batch, 7});
  (void)unused;
  EXPECT_NO_THROW(exe.run({{"x", Tensor::zeros({3, 2})}, {"unused", Tensor::zeros({1, 7})}}));
}

TEST(Errors, BatchMismatchNamesTheFeeds) {
  Graph g;
  auto a = g.input("pixels", {batch, 2});
  auto b = g.input("label", {batch}, i32);
  auto logits = matmul(a, g.parameter("w", Tensor::zeros({2, 3})));
  Executable exe(g, {softmax_cross_entropy(logits, b, "loss")});
  expect_mentions(
      message_of<ShapeError>([&] {
        exe.run({{"pixels", Tensor::zeros({4, 2})}, {"label", Tensor::zeros({5}, i32)}});
      }),
      {"inputs 'pixels' and 'label' have different batch sizes (4 and 5)"});
}

TEST(Errors, NonFiniteFeedsOnRequest) {
  Graph g;
  auto x = g.input("x", {batch, 3});
  Tensor bad = Tensor::from({1.0f, 2.0f, 3.0f, 4.0f, std::nanf(""), 6.0f}, Shape{2, 3});
  Executable permissive(g, {relu(x)});
  EXPECT_NO_THROW(permissive.run({{"x", bad}}));
  Executable strict(g, {relu(x)}, {.check_finite_feeds = true});
  expect_mentions(message_of<ValueError>([&] {
                    strict.run({{"x", bad}});
                  }),
                  {"input 'x'", "nan", "element 4", "finite"});
  Tensor inf = Tensor::from({1.0, -HUGE_VAL}, Shape{1, 2});
  auto y = g.input("y", {batch, 2}, f64);
  Executable strict64(g, {relu(y)}, {.check_finite_feeds = true});
  expect_mentions(message_of<ValueError>([&] {
                    strict64.run({{"y", inf}});
                  }),
                  {"input 'y'", "inf", "element 1"});
  EXPECT_NO_THROW(strict.run({{"x", Tensor::zeros({2, 3})}}));
}

TEST(Errors, EmptyValuesAndBadIndices) {
  Graph g;
  EXPECT_THROW(relu(Value{}), ValueError);
  EXPECT_THROW(concat({}, 0), ValueError);
  EXPECT_THROW(g.input("", {2}), NameError);
  EXPECT_THROW(g.input("late_batch", {2, batch}), ShapeError);
  EXPECT_THROW(Executable(g, {}), ValueError);
  auto table = g.parameter("table", Tensor::zeros({3, 2}));
  auto idx = g.input("idx", {2}, i32);
  auto rows = gather(table, idx, "lookup");
  Executable exe(g, {rows});
  expect_mentions(message_of<ValueError>([&] {
                    exe.run({{"idx", Tensor::from({0, 7}, Shape{2})}});
                  }),
                  {"lookup", "7"});
  auto logits = g.input("logits", {2, 3});
  auto labels = g.input("labels", {2}, i32);
  Executable loss(g, {softmax_cross_entropy(logits, labels, "ce")});
  expect_mentions(
      message_of<ValueError>([&] {
        loss.run({{"logits", Tensor::zeros({2, 3})}, {"labels", Tensor::from({1, -1}, Shape{2})}});
      }),
      {"ce", "-1"});
  Graph other;
  auto o = other.input("o", {2});
  EXPECT_THROW(add(o, g.input("p", {2})), ValueError);
  EXPECT_THROW(dropout(o, 1.5f, 1), ShapeError);
}

}  // namespace
}  // namespace kiln
