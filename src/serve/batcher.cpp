// Dynamic batching (docs/serving.md "Dynamic batching"): a bounded queue of requests and
// worker threads that each take the oldest request, let later requests of the same model
// and row shape join it until the batch is full or its first request has waited max_delay,
// run the rows as one tensor per input through the version serving (read once per batch)
// and hand each request its rows back.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <thread>

#include "serve/serve_internal.hpp"

namespace kiln::serve::detail {
namespace {

struct Pending {
  ServedModel* model = nullptr;
  PredictRequest request;
  Clock::time_point arrival, deadline;
  std::promise<BatchResult> promise;
};

/// Same model, same inputs with the same dtypes and shapes but the batch dimension.
bool compatible(const Pending& a, const Pending& b) {
  if (a.model != b.model || a.request.feeds.size() != b.request.feeds.size()) return false;
  for (std::size_t i = 0; i < a.request.feeds.size(); ++i) {
    const auto& [na, ta] = a.request.feeds[i];
    const auto& [nb, tb] = b.request.feeds[i];
    if (na != nb || ta.dtype() != tb.dtype() || ta.rank() != tb.rank() || ta.rank() == 0)
      return false;
    for (std::size_t d = 1; d < ta.rank(); ++d)
      if (ta.dim(d) != tb.dim(d)) return false;
  }
  return true;
}

void fail(Pending& p, int status, const std::string& code, const std::string& message) {
  p.promise.set_exception(std::make_exception_ptr(RequestError(status, code, message)));
}

/// The requests' feeds concatenated along dimension 0 (the feeds themselves for one).
Feeds concatenate(const std::vector<std::unique_ptr<Pending>>& batch, std::int64_t rows) {
  if (batch.size() == 1) return batch[0]->request.feeds;
  Feeds out;
  const Feeds& first = batch[0]->request.feeds;
  for (std::size_t i = 0; i < first.size(); ++i) {
    std::vector<std::int64_t> dims = first[i].second.shape().dims();
    dims[0] = rows;
    Tensor t = Tensor::empty(Shape(std::move(dims)), first[i].second.dtype());
    auto* dst = static_cast<std::uint8_t*>(t.raw());
    for (const auto& p : batch) {
      Tensor part = p->request.feeds[i].second.contiguous();
      std::memcpy(dst, part.raw(), part.nbytes());
      dst += part.nbytes();
    }
    out.emplace_back(first[i].first, std::move(t));
  }
  return out;
}

}  // namespace

struct Batcher::Impl {
  Impl(const ServerOptions& o, Metrics& m) : options(o), metrics(m) {}

  ServerOptions options;
  Metrics& metrics;
  mutable std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::unique_ptr<Pending>> queue;
  std::atomic<std::size_t> waiting{0};
  bool stopping = false;
  /// The first request of each batch being collected (to keep idle workers from taking
  /// requests that can still join it) and its rows so far.
  std::vector<std::pair<const Pending*, std::int64_t>> open;
  std::vector<std::thread> workers;
  std::once_flag drained;

  std::int64_t max_rows() const {
    return options.batching.enabled ? std::max<std::int64_t>(1, options.batching.max_batch_size)
                                    : 1;
  }

  /// The oldest request that no open batch can still take; null when none.
  std::deque<std::unique_ptr<Pending>>::iterator next_head() {
    for (auto it = queue.begin(); it != queue.end(); ++it) {
      bool joins = false;
      for (const auto& [head, rows] : open)
        joins = joins || (compatible(*head, **it) && rows + (*it)->request.rows <= max_rows());
      if (!joins) return it;
    }
    return queue.end();
  }

  std::unique_ptr<Pending> take(std::deque<std::unique_ptr<Pending>>::iterator it) {
    std::unique_ptr<Pending> p = std::move(*it);
    queue.erase(it);
    waiting.store(queue.size(), std::memory_order_relaxed);
    return p;
  }

  void work() {
    std::unique_lock lock(mutex);
    while (true) {
      auto head_it = queue.end();
      wake.wait(lock, [&] {
        head_it = next_head();
        return head_it != queue.end() || (stopping && queue.empty());
      });
      if (head_it == queue.end()) return;  // stopping and nothing left
      std::vector<std::unique_ptr<Pending>> batch;
      batch.push_back(take(head_it));
      if (Clock::now() > batch[0]->deadline) {  // answered at once, no batch waits for it
        timed_out(*batch[0]);
        continue;
      }
      std::int64_t rows = batch[0]->request.rows;
      if (options.batching.enabled && rows < max_rows()) {
        open.emplace_back(batch[0].get(), rows);
        Clock::time_point close_at = batch[0]->arrival + options.batching.max_delay;
        bool full = false;
        while (true) {
          for (auto it = queue.begin(); it != queue.end() && !full;) {
            if (!compatible(*batch[0], **it)) {
              ++it;
              continue;
            }
            if (rows + (*it)->request.rows > max_rows()) {
              full = true;
              break;
            }
            rows += (*it)->request.rows;
            batch.push_back(take(it));
            it = queue.begin();  // take() invalidated the iterators
          }
          for (auto& [head, r] : open)
            if (head == batch[0].get()) r = rows;
          if (full || rows >= max_rows() || stopping || Clock::now() >= close_at) break;
          wake.wait_until(lock, close_at);
        }
        std::erase_if(open, [&](const auto& o) { return o.first == batch[0].get(); });
        wake.notify_all();  // requests it did not take may start batches of their own
      }
      lock.unlock();
      run(batch);
      lock.lock();
    }
  }

  void timed_out(Pending& p) const {
    fail(p, 504, "timeout",
         "the request was not run before its deadline (request timeout " +
             std::to_string(options.request_timeout.count()) + " ms)");
  }

  void run(std::vector<std::unique_ptr<Pending>>& batch) {
    Clock::time_point now = Clock::now();
    std::vector<std::unique_ptr<Pending>> live;
    std::int64_t rows = 0;
    for (auto& p : batch) {
      if (now > p->deadline) {
        timed_out(*p);
        continue;
      }
      rows += p->request.rows;
      live.push_back(std::move(p));
    }
    if (live.empty()) return;
    ServedModel& model = *live[0]->model;
    std::shared_ptr<const LoadedVersion> version = model.current();
    Clock::time_point start = Clock::now();
    std::vector<Tensor> outputs;
    try {
      Feeds feeds = concatenate(live, rows);
      outputs = version->monitor ? version->monitor->run(version->model, feeds)
                                 : version->model.run(feeds);
    } catch (const std::exception& e) {
      for (auto& p : live) fail(*p, 500, "run_failed", e.what());
      metrics.batch(model.name(), rows, static_cast<std::int64_t>(live.size()),
                    std::chrono::duration<double>(Clock::now() - start).count());
      return;
    }
    metrics.batch(model.name(), rows, static_cast<std::int64_t>(live.size()),
                  std::chrono::duration<double>(Clock::now() - start).count());
    std::int64_t begin = 0;
    for (auto& p : live) {
      BatchResult result{.version = version, .outputs = {}, .batch_rows = rows};
      std::int64_t end = begin + p->request.rows;
      for (const Tensor& out : outputs) {
        if (live.size() > 1 && out.rank() > 0 && out.dim(0) == rows)
          result.outputs.push_back(out.rows(begin, end));
        else
          result.outputs.push_back(out);
      }
      begin = end;
      p->promise.set_value(std::move(result));
    }
  }
};

Batcher::Batcher(const ServerOptions& options, Metrics& metrics)
    : impl_(std::make_unique<Impl>(options, metrics)) {
  std::int64_t n = std::max<std::int64_t>(1, options.workers);
  for (std::int64_t i = 0; i < n; ++i) impl_->workers.emplace_back([this] { impl_->work(); });
}

Batcher::~Batcher() { drain(); }

std::future<BatchResult> Batcher::submit(ServedModel& model, PredictRequest request,
                                         Clock::time_point deadline) {
  auto p = std::make_unique<Pending>();
  p->model = &model;
  p->request = std::move(request);
  p->arrival = Clock::now();
  p->deadline = deadline;
  std::future<BatchResult> future = p->promise.get_future();
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) throw RequestError(503, "shutting_down", "the server is shutting down");
    if (impl_->queue.size() >= impl_->options.max_queue)
      throw RequestError(503, "queue_full",
                         "the queue is full (" + std::to_string(impl_->options.max_queue) +
                             " requests waiting); try again later");
    impl_->queue.push_back(std::move(p));
    impl_->waiting.store(impl_->queue.size(), std::memory_order_relaxed);
  }
  impl_->wake.notify_all();
  return future;
}

std::size_t Batcher::queued() const { return impl_->waiting.load(std::memory_order_relaxed); }

void Batcher::drain() {
  std::call_once(impl_->drained, [this] {
    {
      std::lock_guard lock(impl_->mutex);
      impl_->stopping = true;
    }
    impl_->wake.notify_all();
    for (auto& t : impl_->workers) t.join();
  });
}

}  // namespace kiln::serve::detail
