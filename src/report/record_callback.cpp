// record(): a Trainer callback that writes the fit into a RunRecorder.
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include "report/record_impl.hpp"

namespace kiln::report {
namespace {

class RecordCallback : public train::Callback {
 public:
  explicit RecordCallback(RunRecorder& recorder) : rec_(recorder) {}
  std::string kind() const override { return "record"; }

  void on_fit_begin(train::Trainer& t) override {
    internal::Json& env = RecorderAccess::of(rec_).run["environment"];
    env["backend_option"] = t.options().backend;
    rec_.set_model(t.graph(), {t.options().predictions}, &t.step().executable());
  }
  RunObserver* observer(train::Trainer& t, std::int64_t step) override {
    sample_.emplace(rec_.sample(step, t.epoch(), t.step()));
    return sample_->observer();
  }
  void on_gradients(train::Trainer&, std::span<const Tensor>) override {
    if (sample_) sample_->before_update();
  }
  void on_step_end(train::Trainer& t, std::int64_t step, const train::Logs& logs) override {
    if (sample_) {
      sample_->after_update();
      sample_.reset();
    }
    rec_.log_step(step, t.epoch(), logs);
  }
  void on_epoch_end(train::Trainer& t, std::int64_t epoch, train::Logs& logs) override {
    rec_.log_epoch(epoch, t.global_step(), logs);
  }
  void on_fit_end(train::Trainer&, bool error) override {
    sample_.reset();
    RecorderAccess::Impl& m = RecorderAccess::of(rec_);
    if (!m.graph_written) {  // the fit stopped before its first step's update
      try {
        m.write_graph_json();
      } catch (...) {
        if (!error) throw;
      }
    }
    if (!error || rec_.finished()) return;
    // Called from the trainer's handler: the exception in flight is the fit's error.
    std::string message = "the fit stopped with an error";
    if (std::exception_ptr e = std::current_exception()) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        message = x.what();
      } catch (...) {
      }
    }
    try {
      rec_.finish("failed", {}, message);
    } catch (...) {  // the fit's own error is the one to report
    }
  }

 private:
  RunRecorder& rec_;
  std::optional<StepSample> sample_;
};

}  // namespace

std::shared_ptr<train::Callback> record(RunRecorder& recorder) {
  return std::make_shared<RecordCallback>(recorder);
}

}  // namespace kiln::report
