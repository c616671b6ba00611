// Internal: splits CSV bytes into records of fields (RFC 4180), reading its source in blocks.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::data {

/// Where CSV bytes come from: a file or memory.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  /// Up to `n` bytes into `dst`; 0 at the end. Throws IoError on a read error.
  virtual std::size_t read(char* dst, std::size_t n) = 0;
  /// The number of bytes there are, if known (small inputs get a small buffer); 0 if not.
  virtual std::size_t size_hint() const { return 0; }
};

class FileSource final : public ByteSource {
 public:
  /// Throws IoError naming the file if it cannot be opened.
  explicit FileSource(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  std::size_t read(char* dst, std::size_t n) override;
  std::size_t size_hint() const override { return size_; }

 private:
  std::string path_;
  std::size_t size_ = 0;
  std::FILE* file_ = nullptr;
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  std::size_t read(char* dst, std::size_t n) override;
  std::size_t size_hint() const override { return bytes_.size(); }

 private:
  std::string_view bytes_;
};

/// A malformed record: where it is and what is wrong (the reader adds file and column names).
struct CsvSyntaxError {
  std::int64_t row;
  std::size_t field;  // 0-based field of the record
  std::string what;
};

class CsvScanner {
 public:
  static constexpr std::size_t block_size = std::size_t{1} << 20;

  CsvScanner(ByteSource& source, char delimiter);

  /// The next non-blank record's fields, as views valid until the next call; false at the end
  /// of the input. Throws CsvSyntaxError for an unclosed quote or text after a closing quote.
  bool next(std::vector<std::string_view>& fields);
  /// After a CsvSyntaxError: skips the rest of the line where the bad record starts, so
  /// next() goes on with the following line (validation reports every bad row).
  void skip_line();
  /// The line on which the last record returned starts (1-based).
  std::int64_t row() const { return row_; }
  /// Bytes of the input consumed so far (to estimate the rows of a file from its size).
  std::size_t consumed() const { return consumed_before_ + begin_; }

 private:
  enum class Parse { done, need_more, blank };
  Parse parse_record(std::vector<std::string_view>& fields, std::int64_t& newlines);
  bool refill();

  ByteSource& source_;
  char delimiter_;
  std::unique_ptr<char[]> buffer_;  // not value-initialised: filled by reads
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;  // the unread bytes are buffer_[begin_, end_)
  std::size_t end_ = 0;
  std::size_t consumed_before_ = 0;  // bytes moved out of the buffer
  bool eof_ = false;
  bool first_ = true;      // a byte-order mark may come first
  std::string unescaped_;  // quoted fields with "" in them, unescaped
  std::int64_t next_row_ = 1;
  std::int64_t row_ = 0;
};

}  // namespace kiln::data
