#include "data/csv_scanner.hpp"

#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include <sys/stat.h>

#include "kiln/core/error.hpp"

namespace kiln::data {
namespace {

// The first delimiter or line feed in [p, end), or end: eight bytes at a time (a zero byte
// of w ^ pattern marks a match; the lowest marked byte is the first match), then bytewise.
const char* find_field_end(const char* p, const char* end, char delimiter) {
  if constexpr (std::endian::native == std::endian::little) {
    constexpr std::uint64_t ones = 0x0101010101010101ULL;
    constexpr std::uint64_t highs = 0x8080808080808080ULL;
    const std::uint64_t delimiters = ones * static_cast<unsigned char>(delimiter);
    const std::uint64_t line_feeds = ones * static_cast<unsigned char>('\n');
    while (end - p >= 8) {
      std::uint64_t w = 0;
      std::memcpy(&w, p, 8);
      const std::uint64_t a = w ^ delimiters;
      const std::uint64_t b = w ^ line_feeds;
      const std::uint64_t hits = (((a - ones) & ~a) | ((b - ones) & ~b)) & highs;
      if (hits) return p + std::countr_zero(hits) / 8;
      p += 8;
    }
  }
  while (p < end && *p != delimiter && *p != '\n') ++p;
  return p;
}

}  // namespace

FileSource::FileSource(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw IoError(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(::fileno(file_), &st) == 0 && S_ISREG(st.st_mode))
    size_ = static_cast<std::size_t>(st.st_size);
}

FileSource::~FileSource() {
  if (file_) std::fclose(file_);
}

std::size_t FileSource::read(char* dst, std::size_t n) {
  const std::size_t got = std::fread(dst, 1, n, file_);
  if (got < n && std::ferror(file_))
    throw IoError(path_ + ": read failed: " + std::strerror(errno));
  return got;
}

std::size_t MemorySource::read(char* dst, std::size_t n) {
  const std::size_t got = std::min(n, bytes_.size());
  std::memcpy(dst, bytes_.data(), got);
  bytes_.remove_prefix(got);
  return got;
}

CsvScanner::CsvScanner(ByteSource& source, char delimiter)
    : source_(source), delimiter_(delimiter) {
  const std::size_t hint = source.size_hint();
  capacity_ = hint > 0 && hint < block_size ? hint + 1 : block_size;
  buffer_.reset(new char[capacity_]);
  unescaped_.reserve(capacity_);
}

// Moves the unread bytes to the front (growing the buffer when they fill it) and reads more.
bool CsvScanner::refill() {
  if (eof_) return false;
  if (begin_ > 0) {
    consumed_before_ += begin_;
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == capacity_) {
    std::unique_ptr<char[]> larger(new char[capacity_ * 2]);
    std::memcpy(larger.get(), buffer_.get(), end_);
    buffer_ = std::move(larger);
    capacity_ *= 2;
    unescaped_.reserve(capacity_);
  }
  const std::size_t got = source_.read(buffer_.get() + end_, capacity_ - end_);
  if (got == 0) eof_ = true;
  end_ += got;
  return got > 0;
}

bool CsvScanner::next(std::vector<std::string_view>& fields) {
  for (;;) {
    if (begin_ == end_ && !refill()) return false;
    if (first_) {
      while (end_ - begin_ < 3 && refill()) {
      }
      if (end_ - begin_ >= 3 && std::memcmp(buffer_.get() + begin_, "\xEF\xBB\xBF", 3) == 0)
        begin_ += 3;
      first_ = false;
      continue;
    }
    std::int64_t newlines = 0;
    const Parse result = parse_record(fields, newlines);
    if (result == Parse::need_more) {
      refill();  // at the end of the input parse_record finishes the record
      continue;
    }
    row_ = next_row_;
    next_row_ += 1 + newlines;
    if (result == Parse::done) return true;
  }
}

void CsvScanner::skip_line() {
  for (;;) {
    const void* hit = std::memchr(buffer_.get() + begin_, '\n', end_ - begin_);
    if (hit) {
      begin_ = static_cast<std::size_t>(static_cast<const char*>(hit) - buffer_.get()) + 1;
      break;
    }
    begin_ = end_;
    if (!refill()) break;
  }
  row_ = next_row_;
  ++next_row_;
}

// Parses the record at begin_. need_more when it runs past the bytes read (and the input
// goes on): nothing is consumed then, and the caller reads more and parses it again.
CsvScanner::Parse CsvScanner::parse_record(std::vector<std::string_view>& fields,
                                           std::int64_t& newlines) {
  fields.clear();
  unescaped_.clear();
  const char* const start = buffer_.get() + begin_;
  const char* const end = buffer_.get() + end_;
  const char delimiter = delimiter_;
  const char* p = start;
  for (;;) {
    if (p < end && *p == '"') {
      // A quoted field: up to the quote not followed by another quote.
      const char* q = p + 1;
      const char* content = q;
      bool escaped = false;
      for (;;) {
        const void* hit = std::memchr(q, '"', static_cast<std::size_t>(end - q));
        if (!hit) {
          if (!eof_) return Parse::need_more;
          throw CsvSyntaxError{next_row_, fields.size(), "a quoted field is not closed"};
        }
        q = static_cast<const char*>(hit);
        if (q + 1 == end && !eof_) return Parse::need_more;
        if (q + 1 < end && q[1] == '"') {
          escaped = true;
          q += 2;
          continue;
        }
        break;
      }
      for (const char* c = content; c < q; ++c) newlines += *c == '\n';
      if (escaped) {
        const std::size_t at = unescaped_.size();
        for (const char* c = content; c < q; ++c) {
          unescaped_.push_back(*c);
          if (*c == '"') ++c;
        }
        fields.emplace_back(unescaped_.data() + at, unescaped_.size() - at);
      } else {
        fields.emplace_back(content, static_cast<std::size_t>(q - content));
      }
      p = q + 1;
      if (p < end && *p == '\r') {  // CRLF, or a CR that ends the input
        if (p + 1 == end) {
          if (!eof_) return Parse::need_more;
          ++p;
        } else if (p[1] == '\n') {
          ++p;
        }
      }
      if (p == end) {
        if (!eof_) return Parse::need_more;
        begin_ = end_;
        return Parse::done;
      }
      if (*p == '\n') {
        begin_ = static_cast<std::size_t>(p + 1 - buffer_.get());
        return Parse::done;
      }
      if (*p != delimiter)
        throw CsvSyntaxError{next_row_ + newlines, fields.size() - 1,
                             "text after the closing quote of a quoted field"};
      ++p;
      continue;
    }
    // An unquoted field: up to the delimiter or the end of the line.
    const char* q = find_field_end(p, end, delimiter);
    if (q == end && !eof_) return Parse::need_more;
    const char* field_end = q;
    const bool line_end = q == end || *q == '\n';
    if (line_end && field_end > p && field_end[-1] == '\r') --field_end;
    fields.emplace_back(p, static_cast<std::size_t>(field_end - p));
    if (line_end) {
      begin_ = q == end ? end_ : static_cast<std::size_t>(q + 1 - buffer_.get());
      return fields.size() == 1 && fields[0].empty() ? Parse::blank : Parse::done;
    }
    p = q + 1;
  }
}

}  // namespace kiln::data
