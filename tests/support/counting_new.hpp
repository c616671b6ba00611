// Replaces the global operator new/delete of a test program with ones that count the bytes
// live, so a test can measure the peak a call allocates (its containers, buffers and
// strings; tensors use aligned_alloc and are not counted):
//
//   #include "tests/support/counting_new.hpp"  // in ONE source file of the program
//   const std::size_t bytes = kiln_test::peak_of([&] { read_csv(...); });
//
// The replacements are ordinary (non-inline) definitions, as the standard requires, so the
// header must be included by a single translation unit of each program.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace kiln_test {
namespace counting_new {

inline std::atomic<std::size_t> live_bytes{0};
inline std::atomic<std::size_t> peak_bytes{0};
inline constexpr std::size_t header = 16;  // keeps the size, and malloc's alignment

inline void* allocate(std::size_t n) {
  void* p = std::malloc(n + header);
  if (!p) throw std::bad_alloc();
  *static_cast<std::size_t*>(p) = n;
  const std::size_t now = live_bytes.fetch_add(n) + n;
  std::size_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
  return static_cast<char*>(p) + header;
}

inline void deallocate(void* p) noexcept {
  if (!p) return;
  void* base = static_cast<char*>(p) - header;
  live_bytes.fetch_sub(*static_cast<std::size_t*>(base));
  std::free(base);
}

}  // namespace counting_new

/// Bytes allocated through operator new at the peak of `f`, above what was live before it.
template <class F>
std::size_t peak_of(F&& f) {
  const std::size_t before = counting_new::live_bytes.load();
  counting_new::peak_bytes.store(before);
  f();
  return counting_new::peak_bytes.load() - before;
}

}  // namespace kiln_test

void* operator new(std::size_t n) { return kiln_test::counting_new::allocate(n); }
void* operator new[](std::size_t n) { return kiln_test::counting_new::allocate(n); }
void operator delete(void* p) noexcept { kiln_test::counting_new::deallocate(p); }
void operator delete[](void* p) noexcept { kiln_test::counting_new::deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { kiln_test::counting_new::deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { kiln_test::counting_new::deallocate(p); }
// The nothrow forms too (std::stable_sort's temporary buffer uses them): every form a
// program's new and delete pair can take must agree on the header, also under
// AddressSanitizer, whose own forms would otherwise allocate without it.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return kiln_test::counting_new::allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return kiln_test::counting_new::allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  kiln_test::counting_new::deallocate(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  kiln_test::counting_new::deallocate(p);
}
