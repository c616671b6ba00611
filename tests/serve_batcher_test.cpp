// The dynamic batcher (src/serve/batcher.cpp): requests submitted together run as batches
// whose rows equal what infer::Model::run gives each request alone; batches respect
// max_batch_size; batching off runs every request alone; the queue bound, deadlines, run
// failures and drain() answer as docs/serving.md says.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <future>
#include <latch>
#include <thread>
#include <vector>

#include "serve/serve_internal.hpp"
#include "tests/support/monitor_test_support.hpp"
#include "tests/support/prometheus_text.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using kiln::serve::ModelSource;
using kiln::serve::ServerOptions;
using kiln::serve::detail::Batcher;
using kiln::serve::detail::BatchResult;
using kiln::serve::detail::Clock;
using kiln::serve::detail::Metrics;
using kiln::serve::detail::PredictRequest;
using kiln::serve::detail::RequestError;
using kiln::serve::detail::ServedModel;

/// `rows` rows of 64 raw pixel values (0..16) starting at row `first`.
PredictRequest pixels(std::int64_t first, std::int64_t rows, std::int64_t width = 64) {
  std::vector<float> v;
  for (std::int64_t r = first; r < first + rows; ++r)
    for (std::int64_t i = 0; i < width; ++i) v.push_back(static_cast<float>((r * 7 + i * 3) % 17));
  return PredictRequest{.feeds = {{"pixels", kiln::Tensor::from(v, {rows, width})}}, .rows = rows};
}

class ServeBatcher : public kiln_test::TempDirTest {
 protected:
  ServeBatcher() : TempDirTest("kiln_serve_batcher_test_") {}
  void SetUp() override {
    TempDirTest::SetUp();
    file_ = path("digits.kiln").string();
    kiln_test::save_digits_model_with_profile(file_);
    reference_ = kiln::infer::Model::load(file_, {.apply_preprocessing = true});
  }
  std::unique_ptr<ServedModel> served(const std::string& name, const ServerOptions& o) {
    return std::make_unique<ServedModel>(ModelSource{.name = name, .reference = file_}, nullptr, o);
  }
  /// The request run alone by infer::Model::run equals `result`'s outputs.
  void expect_alone(const PredictRequest& req, const BatchResult& result) {
    std::vector<kiln::Tensor> alone = reference_->run(req.feeds);
    ASSERT_EQ(result.outputs.size(), alone.size());
    for (std::size_t i = 0; i < alone.size(); ++i) {
      ASSERT_EQ(result.outputs[i].shape(), alone[i].shape());
      auto a = alone[i].to_vector<float>();
      auto b = result.outputs[i].contiguous().to_vector<float>();
      for (std::size_t k = 0; k < a.size(); ++k) ASSERT_NEAR(b[k], a[k], 1e-6) << "element " << k;
    }
  }
  static Clock::time_point later() { return Clock::now() + 30s; }

  std::string file_;
  std::optional<kiln::infer::Model> reference_;
};

/// Submits requests from `threads` threads at once (request i: rows 1 + i % 3) and returns
/// the requests and their results.
std::pair<std::vector<PredictRequest>, std::vector<BatchResult>> submit_together(Batcher& batcher,
                                                                                 ServedModel& model,
                                                                                 int threads) {
  std::vector<PredictRequest> requests;
  std::int64_t first = 0;
  for (int i = 0; i < threads; ++i) {
    requests.push_back(pixels(first, 1 + i % 3));
    first += 1 + i % 3;
  }
  std::vector<std::future<BatchResult>> futures(static_cast<std::size_t>(threads));
  std::latch start(threads);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      start.arrive_and_wait();
      futures[static_cast<std::size_t>(i)] =
          batcher.submit(model, requests[static_cast<std::size_t>(i)], Clock::now() + 30s);
    });
  for (auto& t : pool) t.join();
  std::vector<BatchResult> results;
  for (auto& f : futures) results.push_back(f.get());
  return {std::move(requests), std::move(results)};
}

TEST_F(ServeBatcher, BatchedRowsEqualEachRequestRunAlone) {
  ServerOptions o;
  o.batching.max_batch_size = 64;
  o.batching.max_delay = 300ms;  // long: every request submitted together joins
  auto model = served("digits", o);
  Metrics metrics;
  Batcher batcher(o, metrics);
  auto [requests, results] = submit_together(batcher, *model, 16);
  std::int64_t total = 0, most = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(i);
    expect_alone(requests[i], results[i]);
    EXPECT_EQ(results[i].version, model->current());
    EXPECT_EQ(results[i].outputs[0].dim(0), requests[i].rows);
    total += requests[i].rows;
    most = std::max(most, results[i].batch_rows);
  }
  EXPECT_GT(most, 3);  // more rows than any single request: batches formed
  auto text = kiln::test::prometheus::parse(metrics.prometheus({model.get()}, batcher.queued()));
  EXPECT_EQ(text.value("kiln_batch_size_sum", {{"model", "digits"}}), static_cast<double>(total));
  EXPECT_EQ(text.value("kiln_batch_requests_sum", {{"model", "digits"}}), 16.0);
  EXPECT_LT(text.value("kiln_batch_size_count", {{"model", "digits"}}), 16.0);
  // Every row went through the version's monitor.
  EXPECT_EQ(text.value("kiln_drift_rows", {{"model", "digits"}, {"version", "file"}}),
            static_cast<double>(total));
}

TEST_F(ServeBatcher, MaxBatchSizeRespected) {
  ServerOptions o;
  o.batching.max_batch_size = 5;
  o.batching.max_delay = 200ms;
  auto model = served("digits", o);
  Metrics metrics;
  Batcher batcher(o, metrics);
  auto [requests, results] = submit_together(batcher, *model, 12);
  std::int64_t most = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    expect_alone(requests[i], results[i]);
    EXPECT_LE(results[i].batch_rows, 5);
    EXPECT_GE(results[i].batch_rows, requests[i].rows);
    most = std::max(most, results[i].batch_rows);
  }
  EXPECT_GT(most, 3);
  auto text = kiln::test::prometheus::parse(metrics.prometheus({}, 0));
  // No batch above 8 rows (the bucket after 4 is 8; 5 is the limit).
  EXPECT_EQ(text.value("kiln_batch_size_bucket", {{"model", "digits"}, {"le", "8"}}),
            text.value("kiln_batch_size_count", {{"model", "digits"}}));
  // A request larger than max_batch_size runs alone.
  auto big = batcher.submit(*model, pixels(0, 9), later()).get();
  EXPECT_EQ(big.batch_rows, 9);
  expect_alone(pixels(0, 9), big);
}

TEST_F(ServeBatcher, BatchingOffRunsEveryRequestAlone) {
  ServerOptions o;
  o.batching.enabled = false;
  o.batching.max_delay = 300ms;  // ignored
  o.workers = 2;
  auto model = served("digits", o);
  Metrics metrics;
  Batcher batcher(o, metrics);
  auto [requests, results] = submit_together(batcher, *model, 12);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    expect_alone(requests[i], results[i]);
    EXPECT_EQ(results[i].batch_rows, requests[i].rows);
  }
  auto text = kiln::test::prometheus::parse(metrics.prometheus({}, 0));
  EXPECT_EQ(text.value("kiln_batch_requests_count", {{"model", "digits"}}), 12.0);
  EXPECT_EQ(text.value("kiln_batch_requests_sum", {{"model", "digits"}}), 12.0);
}

TEST_F(ServeBatcher, QueueFullAtCapacityAndTimeouts) {
  ServerOptions o;
  o.max_queue = 2;
  o.batching.max_delay = 400ms;
  auto a = served("a", o);
  auto b = served("b", o);
  Metrics metrics;
  Batcher batcher(o, metrics);
  // The only worker takes a's request and waits for others to join it...
  auto first = batcher.submit(*a, pixels(0, 1), later());
  while (batcher.queued() != 0) std::this_thread::sleep_for(1ms);
  // ... so b's requests (which cannot join) wait in the queue.
  auto second = batcher.submit(*b, pixels(1, 1), Clock::now() + 50ms);
  auto third = batcher.submit(*b, pixels(2, 2), later());
  EXPECT_EQ(batcher.queued(), 2u);
  try {
    batcher.submit(*b, pixels(3, 1), later());
    ADD_FAILURE() << "no queue_full";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status, 503);
    EXPECT_EQ(e.code, "queue_full");
    EXPECT_NE(std::string(e.what()).find("2 requests"), std::string::npos) << e.what();
  }
  expect_alone(pixels(0, 1), first.get());
  // second's deadline passed while it waited: 504, and it did not run.
  try {
    second.get();
    ADD_FAILURE() << "no timeout";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status, 504);
    EXPECT_EQ(e.code, "timeout");
  }
  BatchResult r = third.get();
  expect_alone(pixels(2, 2), r);
  EXPECT_EQ(r.batch_rows, 2);  // without second
}

TEST_F(ServeBatcher, ExpiredRequestIsNotRun) {
  ServerOptions o;
  o.batching.max_delay = 5s;  // were the expired request a batch's head, this would be waited
  auto model = served("digits", o);
  Metrics metrics;
  Batcher batcher(o, metrics);
  auto f = batcher.submit(*model, pixels(0, 1), Clock::now() - 1ms);
  ASSERT_EQ(f.wait_for(2s), std::future_status::ready);
  try {
    f.get();
    ADD_FAILURE() << "no timeout";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status, 504);
    EXPECT_EQ(e.code, "timeout");
  }
  auto text = kiln::test::prometheus::parse(metrics.prometheus({model.get()}, 0));
  EXPECT_TRUE(text.find("kiln_batch_size_count").empty());  // nothing ran
  EXPECT_EQ(text.value("kiln_drift_rows", {{"model", "digits"}, {"version", "file"}}), 0);
}

TEST_F(ServeBatcher, RunFailureAnswersEveryRequestOfTheBatch) {
  ServerOptions o;
  o.batching.max_delay = 200ms;
  auto model = served("digits", o);
  Metrics metrics;
  Batcher batcher(o, metrics);
  // Rows of 63 pixels (the model takes 64): the run throws a kiln::Error.
  auto x = batcher.submit(*model, pixels(0, 1, 63), later());
  auto y = batcher.submit(*model, pixels(1, 2, 63), later());
  for (auto* f : {&x, &y}) {
    try {
      f->get();
      ADD_FAILURE() << "no run_failed";
    } catch (const RequestError& e) {
      EXPECT_EQ(e.status, 500);
      EXPECT_EQ(e.code, "run_failed");
      EXPECT_NE(std::string(e.what()).find("64"), std::string::npos) << e.what();
    }
  }
  // The batcher still serves.
  expect_alone(pixels(0, 1), batcher.submit(*model, pixels(0, 1), later()).get());
}

TEST_F(ServeBatcher, DrainRunsWhatIsQueuedThenRefuses) {
  ServerOptions o;
  o.batching.max_delay = 2s;  // drain does not wait for it
  auto a = served("a", o);
  auto b = served("b", o);
  Metrics metrics;
  Batcher batcher(o, metrics);
  std::vector<std::future<BatchResult>> futures;
  std::vector<PredictRequest> requests;
  for (int i = 0; i < 6; ++i) {
    requests.push_back(pixels(i, 1 + i % 2));
    futures.push_back(batcher.submit(i % 2 ? *a : *b, requests.back(), later()));
  }
  auto start = Clock::now();
  batcher.drain();
  EXPECT_LT(Clock::now() - start, 1500ms);  // not a correctness bound: drain skips max_delay
  for (std::size_t i = 0; i < futures.size(); ++i) {
    ASSERT_EQ(futures[i].wait_for(0s), std::future_status::ready);
    expect_alone(requests[i], futures[i].get());
  }
  EXPECT_EQ(batcher.queued(), 0u);
  try {
    batcher.submit(*a, pixels(0, 1), later());
    ADD_FAILURE() << "no shutting_down";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status, 503);
    EXPECT_EQ(e.code, "shutting_down");
  }
  batcher.drain();  // idempotent
}

TEST_F(ServeBatcher, ManyWorkersManyModels) {
  ServerOptions o;
  o.workers = 3;
  o.batching.max_batch_size = 8;
  o.batching.max_delay = 20ms;
  auto a = served("a", o);
  auto b = served("b", o);
  Metrics metrics;
  Batcher batcher(o, metrics);
  std::vector<std::future<BatchResult>> futures;
  std::vector<PredictRequest> requests;
  std::vector<std::thread> pool;
  std::mutex m;
  for (int t = 0; t < 6; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        PredictRequest r = pixels(t * 100 + i, 1 + (i + t) % 4);
        auto f = batcher.submit(t % 2 ? *a : *b, r, later());
        std::lock_guard lock(m);
        requests.push_back(std::move(r));
        futures.push_back(std::move(f));
      }
    });
  for (auto& t : pool) t.join();
  for (std::size_t i = 0; i < futures.size(); ++i) {
    BatchResult r = futures[i].get();
    expect_alone(requests[i], r);
    EXPECT_LE(r.batch_rows, 8);
  }
  auto text = kiln::test::prometheus::parse(metrics.prometheus({a.get(), b.get()}, 0));
  EXPECT_EQ(text.sum("kiln_batch_requests_sum"), 120.0);
  // Batches never mix models (each batch is counted under the model it ran).
  EXPECT_EQ(text.value("kiln_batch_requests_sum", {{"model", "a"}}), 60.0);
  EXPECT_EQ(text.value("kiln_batch_requests_sum", {{"model", "b"}}), 60.0);
}

TEST_F(ServeBatcher, IdleWorkersDoNotTakeRequestsABatchCanStillTake) {
  ServerOptions o;
  o.workers = 4;
  o.batching.max_batch_size = 64;
  o.batching.max_delay = 300ms;
  auto model = served("digits", o);
  Metrics metrics;
  Batcher batcher(o, metrics);
  auto [requests, results] = submit_together(batcher, *model, 16);
  std::int64_t most = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    expect_alone(requests[i], results[i]);
    most = std::max(most, results[i].batch_rows);
  }
  // With three idle workers, 16 requests submitted together still mostly run as one batch.
  EXPECT_GT(most, 16);
}

}  // namespace
