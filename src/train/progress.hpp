// Internal: fit()'s progress output: a \r-updated bar on a terminal, one line per epoch
// otherwise, or nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>

#include "kiln/train/trainer.hpp"

namespace kiln::train {

/// "epoch 3/10 - loss 0.4321 - accuracy 0.9000 - val_loss 0.5123 - val_accuracy 0.8667 -
/// lr 0.001 - 0.25s": train entries first (loss, then the rest by name), then the val_
/// ones, then lr and the epoch's time.
std::string epoch_line(std::int64_t epoch, std::int64_t epochs, const Logs& logs, double seconds);

class ProgressReporter {
 public:
  ProgressReporter(const FitOptions& options);
  /// An epoch starts (or continues, from first_batch, after a resume).
  void epoch_begin(std::int64_t epoch, std::int64_t epochs, std::int64_t batches,
                   std::int64_t first_batch);
  /// Batch `done` (1-based) of the epoch finished with this loss.
  void step(std::int64_t done, double loss);
  void epoch_end(std::int64_t epoch, std::int64_t epochs, const Logs& logs);
  /// Ends a bar line left open (by an error).
  void finish();

 private:
  void write(const std::string& text);
  using Clock = std::chrono::steady_clock;
  Progress mode_ = Progress::none;
  std::ostream* stream_ = nullptr;
  std::FILE* file_ = nullptr;
  Clock::time_point epoch_start_;
  Clock::time_point last_draw_;
  std::int64_t epoch_ = 0, epochs_ = 0, batches_ = 0, first_batch_ = 0;
  bool line_open_ = false;
};

}  // namespace kiln::train
