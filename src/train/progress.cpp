#include "train/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace kiln::train {
namespace {

std::string format_value(const std::string& key, double v) {
  char buf[64];
  if (key == "lr")
    std::snprintf(buf, sizeof buf, "%.4g", v);
  else
    std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

bool is_val(const std::string& key) { return key.rfind("val_", 0) == 0; }

}  // namespace

std::string epoch_line(std::int64_t epoch, std::int64_t epochs, const Logs& logs, double seconds) {
  std::string out = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs);
  auto add = [&](const std::string& key, double v) {
    out += " - " + key + " " + format_value(key, v);
  };
  if (auto it = logs.find("loss"); it != logs.end()) add("loss", it->second);
  for (const auto& [k, v] : logs)
    if (k != "loss" && k != "lr" && !is_val(k)) add(k, v);
  if (auto it = logs.find("val_loss"); it != logs.end()) add("val_loss", it->second);
  for (const auto& [k, v] : logs)
    if (k != "val_loss" && is_val(k)) add(k, v);
  if (auto it = logs.find("lr"); it != logs.end()) add("lr", it->second);
  char buf[32];
  std::snprintf(buf, sizeof buf, " - %.2fs", seconds);
  return out + buf;
}

ProgressReporter::ProgressReporter(const FitOptions& options)
    : stream_(options.progress_stream),
      file_(options.progress_file ? options.progress_file : stderr) {
  mode_ = options.progress;
  if (mode_ == Progress::automatic) {
    const bool tty = stream_ == nullptr && ::isatty(::fileno(file_)) == 1;
    mode_ = tty ? Progress::bar : Progress::lines;
  }
}

void ProgressReporter::write(const std::string& text) {
  if (stream_) {
    *stream_ << text;
    stream_->flush();
  } else {
    std::fputs(text.c_str(), file_);
    std::fflush(file_);
  }
}

void ProgressReporter::epoch_begin(std::int64_t epoch, std::int64_t epochs, std::int64_t batches,
                                   std::int64_t first_batch) {
  epoch_ = epoch;
  epochs_ = epochs;
  batches_ = batches;
  first_batch_ = first_batch;
  epoch_start_ = Clock::now();
  last_draw_ = Clock::time_point{};
}

void ProgressReporter::step(std::int64_t done, double loss) {
  if (mode_ != Progress::bar) return;
  const auto now = Clock::now();
  // Redraw at most every 100 ms, and at the last batch.
  if (done != batches_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int width = 24;
  const int filled = batches_ > 0 ? static_cast<int>(width * done / batches_) : width;
  std::string bar(static_cast<std::size_t>(filled), '=');
  if (filled < width) bar += '>';
  bar.resize(width, ' ');
  const double elapsed = std::chrono::duration<double>(now - epoch_start_).count();
  const std::int64_t run = done - first_batch_;
  const double eta =
      run > 0 ? elapsed / static_cast<double>(run) * static_cast<double>(batches_ - done) : 0.0;
  char buf[160];
  std::snprintf(buf, sizeof buf, "\repoch %lld/%lld [%s] %lld/%lld - loss %.4f - ETA %.0fs ",
                static_cast<long long>(epoch_ + 1), static_cast<long long>(epochs_), bar.c_str(),
                static_cast<long long>(done), static_cast<long long>(batches_), loss, eta);
  write(buf);
  line_open_ = true;
}

void ProgressReporter::epoch_end(std::int64_t epoch, std::int64_t epochs, const Logs& logs) {
  if (mode_ == Progress::none) return;
  const double seconds = std::chrono::duration<double>(Clock::now() - epoch_start_).count();
  std::string line = epoch_line(epoch, epochs, logs, seconds);
  // On a terminal the finished epoch's line replaces its bar ("\x1b[K" clears the rest).
  if (mode_ == Progress::bar) line = "\r" + line + "\x1b[K";
  write(line + "\n");
  line_open_ = false;
}

void ProgressReporter::finish() {
  if (line_open_) write("\n");
  line_open_ = false;
}

}  // namespace kiln::train
