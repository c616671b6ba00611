// The global per-op kernel lists: forward kernels at first use, training kernels when kiln
// adds them.
#include <mutex>
#include <set>
#include <string>

#include "internal/kernel.hpp"

namespace kiln::internal {
namespace {

struct Registry {
  std::mutex mu;
  KernelTable table;
  std::set<std::string> tags;
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;  // never destroyed: kernels may be looked up at exit
    // Most specialised first: oneDNN, then Eigen, then the reference kernels.
    register_onednn_kernels(reg->table);
    register_eigen_kernels(reg->table);
    register_reference_kernels(reg->table);
    return reg;
  }();
  return *r;
}

}  // namespace

std::span<const Kernel> kernels_for(Op op) { return registry().table.get(op); }

void extend_kernels(const char* tag, void (*add)(KernelTable&)) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.tags.insert(tag).second) return;
  add(r.table);
}

#if !defined(KILN_WITH_ONEDNN)
void register_onednn_kernels(KernelTable&) {}
#endif

}  // namespace kiln::internal
