// The v2 payload's section table, the content hash, and the op-name lookup of model files.
#include <algorithm>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "io/model_format.hpp"
#include "io/sha256.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal {

bool is_reserved_section_name(const std::string& name) { return name.rfind("kiln.", 0) == 0; }

bool is_passthrough_section_name(const std::string& name) {
  return name == section_spec || name == section_data || name == section_profile;
}

std::vector<SectionView> read_sections(std::span<const std::uint8_t> payload,
                                       const std::string& source) {
  ArchiveReader r(payload, source);
  const std::size_t n = r.count("section count", min_section_bytes);
  std::vector<SectionView> out;
  out.reserve(n);
  std::unordered_set<std::string> names;
  for (std::size_t i = 0; i < n; ++i) {
    SectionView s;
    s.name = r.name("section name");
    if (!names.insert(s.name).second) r.fail("section '" + s.name + "' appears twice");
    s.flags = r.u8("section flags");
    if ((s.flags & ~section_required) != 0)
      r.fail("section '" + s.name + "': unknown flags " + std::to_string(s.flags));
    const std::uint64_t length = r.u64("section length");
    s.bytes = r.raw(length, ("section '" + s.name + "'").c_str());
    out.push_back(std::move(s));
  }
  r.expect_end();
  return out;
}

std::vector<std::uint8_t> write_sections(std::span<const SectionView> sections) {
  ArchiveWriter w;
  w.u32(static_cast<std::uint32_t>(sections.size()));
  for (const SectionView& s : sections) {
    w.string(s.name);
    w.u8(s.flags);
    w.u64(s.bytes.size());
    w.raw(s.bytes);
  }
  return w.finish();
}

std::string content_hash_of(std::span<const SectionView> sections) {
  std::vector<const SectionView*> sorted;
  for (const SectionView& s : sections)
    if (s.name != section_provenance) sorted.push_back(&s);
  std::sort(sorted.begin(), sorted.end(),
            [](const SectionView* a, const SectionView* b) { return a->name < b->name; });
  Sha256 h;
  auto le = [&](std::uint64_t v) {
    std::uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(v >> (8 * i));
    h.update(b);
  };
  for (const SectionView* s : sorted) {
    le(s->name.size());
    h.update({reinterpret_cast<const std::uint8_t*>(s->name.data()), s->name.size()});
    const std::uint8_t flags[1] = {s->flags};
    h.update(flags);
    le(s->bytes.size());
    h.update(s->bytes);
  }
  return to_hex(h.finish());
}

bool op_from_name(const std::string& name, Op& out) {
  static const std::unordered_map<std::string, Op> by_name = [] {
    std::unordered_map<std::string, Op> m;
    for (int i = 0; i < op_count; ++i) {
      const Op op = static_cast<Op>(i);
      m.emplace(std::string(op_name(op)), op);
    }
    return m;
  }();
  auto it = by_name.find(name);
  if (it == by_name.end()) return false;
  out = it->second;
  return true;
}

}  // namespace kiln::internal
