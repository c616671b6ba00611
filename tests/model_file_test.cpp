// Model files: SHA-256 against NIST vectors, save/decode round trips, the v1 golden files
// (graph, metadata, signatures and outputs that every later reader must reproduce), and bad
// files: each must raise kiln::FormatError naming the file, without crashing or allocating
// more than the file holds.
//
// KILN_REGENERATE_GOLDEN=1 rewrites tests/data/golden_v1/ (only when the format changes
// version: old golden files must keep loading as they are).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
#include <sstream>

#include "io/archive.hpp"
#include "io/model_data.hpp"
#include "io/model_format.hpp"
#include "io/sha256.hpp"
#include "kiln/kiln.hpp"

// ---- allocation-counting hook: tracks live and peak bytes while `tracking` is set ----
namespace {
std::atomic<bool> tracking{false};
std::atomic<std::int64_t> live_bytes{0};
std::atomic<std::int64_t> peak_bytes{0};
constexpr std::size_t header_bytes = 16;

void* counted_alloc(std::size_t n, std::size_t align) {
  const std::size_t extra = align > header_bytes ? align : header_bytes;
  void* raw = nullptr;
  if (align > alignof(std::max_align_t)) {
    if (posix_memalign(&raw, align, n + extra) != 0) raw = nullptr;
  } else {
    raw = std::malloc(n + extra);
  }
  if (!raw) throw std::bad_alloc();
  auto* p = static_cast<unsigned char*>(raw) + extra;
  std::memcpy(p - header_bytes, &n, sizeof n);
  std::memcpy(p - header_bytes + 8, &extra, sizeof extra);
  if (tracking.load()) {
    const auto now =
        live_bytes.fetch_add(static_cast<std::int64_t>(n)) + static_cast<std::int64_t>(n);
    auto peak = peak_bytes.load();
    while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
    }
  }
  return p;
}

void counted_free(void* p) noexcept {
  if (!p) return;
  auto* c = static_cast<unsigned char*>(p);
  std::size_t n = 0, extra = 0;
  std::memcpy(&n, c - header_bytes, sizeof n);
  std::memcpy(&extra, c - header_bytes + 8, sizeof extra);
  if (tracking.load()) live_bytes.fetch_sub(static_cast<std::int64_t>(n));
  std::free(c - extra);
}
}  // namespace

// Tensor storage comes from aligned_alloc: interpose it and count what it hands out while
// tracking (decoded tensors live until the end of decoding, so the sum is their peak).
std::atomic<std::int64_t> aligned_bytes{0};
extern "C" void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  void* p = nullptr;
  if (posix_memalign(&p, alignment < sizeof(void*) ? sizeof(void*) : alignment, size) != 0)
    return nullptr;
  if (tracking.load()) aligned_bytes.fetch_add(static_cast<std::int64_t>(size));
  return p;
}

void* operator new(std::size_t n) { return counted_alloc(n, alignof(std::max_align_t)); }
void* operator new[](std::size_t n) { return counted_alloc(n, alignof(std::max_align_t)); }
void* operator new(std::size_t n, std::align_val_t a) {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
// The nothrow forms too: libstdc++'s call the throwing ones, but a sanitizer runtime's do
// not, and their memory must still carry the header counted_free reads.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n, alignof(std::max_align_t));
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(n, static_cast<std::size_t>(a));
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
  return operator new(n, a, t);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  counted_free(p);
}
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { counted_free(p); }

namespace {

using Bytes = std::vector<std::uint8_t>;
namespace fs = std::filesystem;
const fs::path golden_dir = fs::path(KILN_TEST_DATA_DIR) / "golden_v1";

std::string hex(const kiln::internal::Sha256Digest& d) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (auto b : d) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

std::string sha_of(const std::string& text) {
  return hex(kiln::internal::sha256(
      std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size())));
}

TEST(Sha256, NistVectors) {
  // FIPS 180-4 examples (NIST CSRC "SHA256.pdf", "SHA256_2.pdf") and the one-million-'a' test.
  EXPECT_EQ(sha_of(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(
      sha_of("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklm"
             "nopqrlmnopqrsmnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  kiln::internal::Sha256 s;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i)
    s.update(std::span(reinterpret_cast<const std::uint8_t*>(chunk.data()), chunk.size()));
  EXPECT_EQ(hex(s.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, SplitUpdatesMatchOneShot) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += static_cast<char>('a' + i % 26);
  const auto whole = sha_of(text);
  for (std::size_t cut : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 128u, 299u}) {
    kiln::internal::Sha256 s;
    const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
    s.update(std::span(p, cut));
    s.update(std::span(p + cut, text.size() - cut));
    EXPECT_EQ(hex(s.finish()), whole) << cut;
  }
}

// ---- the golden models ----

struct Built {
  std::unique_ptr<kiln::Graph> graph = std::make_unique<kiln::Graph>();
  kiln::SaveOptions options;
};

Built build_mlp() {
  Built b;
  kiln::Graph& g = *b.graph;
  auto x = g.input("pixels", {kiln::batch, 8});
  auto h = kiln::nn::dense(g, x, 16, {.activation = kiln::nn::Activation::relu, .name = "fc1"});
  auto logits = kiln::nn::dense(g, h, 4, {.name = "fc2"});
  auto probs = kiln::softmax(logits, -1, "probs");
  // A dead branch that must not be saved.
  kiln::nn::dense(g, h, 3, {.name = "unused_head"});
  b.options.inputs = {x};
  b.options.outputs = {probs, logits};
  b.options.output_names = {"probabilities", "logits"};
  b.options.metadata.name = "golden-mlp";
  b.options.metadata.version = "1.2.3";
  b.options.metadata.description = "8-16-4 MLP for the format v1 golden test";
  b.options.metadata.labels = {"zero", "one", "two", "three"};
  b.options.metadata.preprocessing = {
      {"pixels", std::vector<float>(8, 0.5f), std::vector<float>(8, 2.0f)}};
  b.options.metadata.metrics = {{"test_accuracy", 0.875}};
  b.options.metadata.extra = {{"dataset", "synthetic"}};
  return b;
}

Built build_cnn() {
  Built b;
  kiln::Graph& g = *b.graph;
  auto x = g.input("image", {kiln::batch, 1, 6, 6});
  auto c = kiln::nn::conv2d(g, x, 3, {3, 3}, {.padding = {1, 1}, .name = "conv1"});
  auto n = kiln::nn::batch_norm(g, c, {.name = "bn1"});
  auto r = kiln::relu(n);
  auto p = kiln::nn::max_pool2d(g, r, {2, 2});
  auto f = kiln::flatten(p);
  auto logits = kiln::nn::dense(g, f, 5, {.name = "fc"});
  // Non-trivial running statistics, so that the buffers matter.
  auto& mean = g.tensor(g.find("bn1.running_mean"));
  auto& var = g.tensor(g.find("bn1.running_var"));
  for (int i = 0; i < 3; ++i) {
    mean.data<float>()[i] = 0.1f * static_cast<float>(i + 1);
    var.data<float>()[i] = 1.0f + 0.5f * static_cast<float>(i);
  }
  b.options.inputs = {x};
  b.options.outputs = {logits};
  b.options.metadata.name = "golden-cnn";
  b.options.metadata.version = "0.3.0";
  b.options.metadata.labels = {"a", "b", "c", "d", "e"};
  return b;
}

kiln::Tensor fixed_input(const kiln::Shape& per_row, std::int64_t rows, std::uint64_t seed) {
  std::vector<std::int64_t> dims{rows};
  for (auto d : per_row) dims.push_back(d);
  kiln::Shape shape(dims);
  kiln::Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& f : v) f = static_cast<float>(rng.uniform(-2.0, 2.0));
  return kiln::Tensor::from(v, shape);
}

struct GoldenCase {
  const char* file;
  kiln::Shape row_shape;
  std::uint64_t seed;
};
const GoldenCase golden_cases[] = {{"mlp", {8}, 11}, {"cnn", {1, 6, 6}, 12}};

std::vector<kiln::Tensor> run_decoded(kiln::internal::ModelData& m, const kiln::Tensor& input) {
  std::vector<kiln::Value> outs;
  for (auto id : m.output_ids) outs.push_back(m.graph->value(id));
  kiln::Executable exe(*m.graph, outs, {.backend = "reference"});
  return exe.run({{m.inputs[0].name, input}});
}

void write_outputs(const fs::path& path, const std::vector<kiln::Tensor>& outs) {
  std::ofstream f(path);
  f.precision(9);
  f << "# golden v1 outputs: per output, its element count, then the values (row-major)\n";
  for (const auto& t : outs) {
    f << t.numel() << "\n";
    for (float v : t.to_vector<float>()) f << v << "\n";
  }
}

std::vector<std::vector<float>> read_outputs(const fs::path& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  std::vector<std::vector<float>> out;
  std::int64_t n = 0;
  while (f >> n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) f >> x;
    out.push_back(std::move(v));
  }
  return out;
}

Built build_case(const std::string& name) { return name == "mlp" ? build_mlp() : build_cnn(); }

TEST(GoldenV1, Regenerate) {
  if (!std::getenv("KILN_REGENERATE_GOLDEN")) GTEST_SKIP() << "set KILN_REGENERATE_GOLDEN=1";
  fs::create_directories(golden_dir);
  for (const auto& c : golden_cases) {
    Built b = build_case(c.file);
    const auto path = golden_dir / (std::string(c.file) + ".kiln");
    kiln::save_model(path.string(), *b.graph, b.options);
    auto m = kiln::internal::decode_model(kiln::internal::read_file(path.string()), path.string());
    write_outputs(golden_dir / (std::string(c.file) + "_outputs.txt"),
                  run_decoded(m, fixed_input(c.row_shape, 3, c.seed)));
  }
}

Bytes golden_bytes(const char* name) {
  return kiln::internal::read_file((golden_dir / (std::string(name) + ".kiln")).string());
}

TEST(GoldenV1, MlpGraphMetadataAndSignatures) {
  const auto bytes = golden_bytes("mlp");
  auto m = kiln::internal::decode_model(bytes, "mlp.kiln");
  EXPECT_EQ(m.format_version, 1u);
  ASSERT_EQ(m.inputs.size(), 1u);
  EXPECT_EQ(m.inputs[0], (kiln::TensorSpec{"pixels", {kiln::batch, 8}, kiln::f32}));
  ASSERT_EQ(m.outputs.size(), 2u);
  EXPECT_EQ(m.outputs[0], (kiln::TensorSpec{"probabilities", {kiln::batch, 4}, kiln::f32}));
  EXPECT_EQ(m.outputs[1], (kiln::TensorSpec{"logits", {kiln::batch, 4}, kiln::f32}));
  EXPECT_EQ(m.metadata.name, "golden-mlp");
  EXPECT_EQ(m.metadata.version, "1.2.3");
  EXPECT_EQ(m.metadata.labels, (std::vector<std::string>{"zero", "one", "two", "three"}));
  ASSERT_EQ(m.metadata.preprocessing.size(), 1u);
  EXPECT_EQ(m.metadata.preprocessing[0].stddev, std::vector<float>(8, 2.0f));
  EXPECT_EQ(m.metadata.metrics,
            (std::vector<std::pair<std::string, double>>{{"test_accuracy", 0.875}}));
  EXPECT_EQ(m.metadata.extra[0].second, "synthetic");
  EXPECT_EQ(m.metadata.library_version, "0.1.0");
  EXPECT_EQ(m.metadata.created.size(), 20u);
  EXPECT_EQ(m.metadata.created[10], 'T');
  EXPECT_EQ(m.metadata.created.back(), 'Z');
  kiln::Graph& g = *m.graph;
  EXPECT_FALSE(g.contains("unused_head.weight"));  // dead nodes are not saved
  EXPECT_EQ(g.parameters().size(), 4u);
  EXPECT_TRUE(g.buffers().empty());
  EXPECT_EQ(g.find("fc1.weight").shape(), (kiln::Shape{8, 16}));
  EXPECT_EQ(g.node(m.output_ids[0]).op, kiln::Op::softmax);
}

TEST(GoldenV1, CnnKeepsBuffersAndTrainableFlags) {
  auto m = kiln::internal::decode_model(golden_bytes("cnn"), "cnn.kiln");
  kiln::Graph& g = *m.graph;
  EXPECT_EQ(m.metadata.name, "golden-cnn");
  EXPECT_EQ(m.inputs[0], (kiln::TensorSpec{"image", {kiln::batch, 1, 6, 6}, kiln::f32}));
  EXPECT_EQ(m.outputs[0].shape, (kiln::Shape{kiln::batch, 5}));
  ASSERT_EQ(g.buffers().size(), 2u);
  EXPECT_EQ(g.buffers()[0].name(), "bn1.running_mean");
  EXPECT_FLOAT_EQ(g.tensor(g.find("bn1.running_mean")).data<float>()[2], 0.3f);
  EXPECT_FLOAT_EQ(g.tensor(g.find("bn1.running_var")).data<float>()[1], 1.5f);
  EXPECT_TRUE(g.find("conv1.weight").node().trainable);
  EXPECT_TRUE(g.find("bn1.weight").node().trainable);
}

TEST(GoldenV1, OutputsAreReproduced) {
  for (const auto& c : golden_cases) {
    auto m = kiln::internal::decode_model(golden_bytes(c.file), c.file);
    const auto outs = run_decoded(m, fixed_input(c.row_shape, 3, c.seed));
    const auto expected = read_outputs(golden_dir / (std::string(c.file) + "_outputs.txt"));
    ASSERT_EQ(outs.size(), expected.size()) << c.file;
    for (std::size_t k = 0; k < outs.size(); ++k) {
      const auto got = outs[k].to_vector<float>();
      ASSERT_EQ(got.size(), expected[k].size());
      for (std::size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], expected[k][i], 1e-5 * (1.0 + std::abs(expected[k][i])))
            << c.file << " output " << k << " element " << i;
    }
  }
}

TEST(ModelFile, RoundTripIsBitwiseAndStable) {
  for (const char* name : {"mlp", "cnn"}) {
    Built b = build_case(name);
    const auto bytes = kiln::serialize_model(*b.graph, b.options);
    auto m = kiln::internal::decode_model(bytes, name);
    const auto& c = std::string(name) == "mlp" ? golden_cases[0] : golden_cases[1];
    const auto input = fixed_input(c.row_shape, 4, 99);
    std::vector<kiln::Value> outs;
    for (const auto& v : b.options.outputs) outs.push_back(v);
    kiln::Executable original(*b.graph, outs, {.backend = "reference"});
    const auto want = original.run({{m.inputs[0].name, input}});
    const auto got = run_decoded(m, input);
    ASSERT_EQ(want.size(), got.size());
    for (std::size_t k = 0; k < got.size(); ++k)
      EXPECT_EQ(want[k].to_vector<float>(), got[k].to_vector<float>()) << name;
    // Saving the decoded model again gives the same graph and tensors.
    kiln::SaveOptions again;
    for (auto id : m.input_ids) again.inputs.push_back(m.graph->value(id));
    for (auto id : m.output_ids) again.outputs.push_back(m.graph->value(id));
    for (const auto& o : m.outputs) again.output_names.push_back(o.name);
    again.metadata = m.metadata;
    auto m2 = kiln::internal::decode_model(kiln::serialize_model(*m.graph, again), "again");
    ASSERT_EQ(m2.graph->size(), m.graph->size());
    for (std::int32_t i = 0; i < static_cast<std::int32_t>(m.graph->size()); ++i) {
      EXPECT_EQ(m2.graph->node(i).name, m.graph->node(i).name);
      EXPECT_EQ(m2.graph->node(i).attrs, m.graph->node(i).attrs);
    }
  }
}

TEST(ModelFile, SaveIsAtomicAndReportsIoErrors) {
  Built b = build_mlp();
  const auto dir =
      fs::temp_directory_path() / ("kiln_model_file_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto path = (dir / "m.kiln").string();
  kiln::save_model(path, *b.graph, b.options);
  kiln::save_model(path, *b.graph, b.options);  // overwrite
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);  // no temporary left behind
  EXPECT_NO_THROW(kiln::internal::decode_model(kiln::internal::read_file(path), path));
  EXPECT_THROW(kiln::save_model((dir / "no/such/dir/m.kiln").string(), *b.graph, b.options),
               kiln::IoError);
  EXPECT_THROW(kiln::internal::read_file((dir / "missing.kiln").string()), kiln::IoError);
  fs::remove_all(dir);
}

TEST(ModelFile, SaveRefusesBadRequests) {
  Built b = build_mlp();
  kiln::Graph& g = *b.graph;
  auto opts = b.options;
  opts.inputs.clear();  // the outputs need "pixels"
  EXPECT_THROW(kiln::serialize_model(g, opts), kiln::ValueError);
  opts = b.options;
  opts.outputs.clear();
  EXPECT_THROW(kiln::serialize_model(g, opts), kiln::ValueError);
  opts = b.options;
  opts.output_names = {"same", "same"};
  EXPECT_THROW(kiln::serialize_model(g, opts), kiln::ValueError);
  kiln::Graph other;
  auto foreign = other.input("z", {1});
  opts = b.options;
  opts.outputs.push_back(foreign);
  opts.output_names.clear();
  EXPECT_THROW(kiln::serialize_model(g, opts), kiln::ValueError);
  // Training-only ops are refused.
  auto ids = g.input("ids", {4}, kiln::i32);
  auto rows = g.input("rows", {4, 3});
  kiln::Attrs scatter_attrs;
  scatter_attrs.size = 5;
  auto scat = g.add(kiln::Op::scatter_add_rows, {ids, rows}, scatter_attrs, "scatter");
  opts = b.options;
  opts.inputs = {g.find("pixels"), ids, rows};
  opts.outputs = {scat};
  opts.output_names.clear();
  try {
    kiln::serialize_model(g, opts);
    ADD_FAILURE() << "expected ValueError";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("scatter_add_rows"), std::string::npos) << e.what();
  }
}

// ---- bad files ----

namespace bad {

using kiln::internal::ArchiveWriter;

struct CraftNode {
  std::uint16_t op = 0;
  std::string name;
  std::vector<std::int32_t> inputs;
  std::uint8_t dtype = 0;
  std::vector<std::int64_t> dims;
  bool trainable = false;
  kiln::Attrs attrs = {};
};
struct CraftTensor {
  std::string name;
  std::uint8_t dtype = 0;
  std::vector<std::int64_t> dims;
  std::uint64_t nbytes = 0;      ///< the claimed byte length
  std::uint64_t data_bytes = 0;  ///< bytes actually written
};
struct CraftSig {
  std::string name;
  std::int32_t id = 0;
  std::vector<std::int64_t> dims;
};

/// A small valid model: y = x @ w (x: [batch, 2], w: [2, 3]); tests break one part.
struct Craft {
  std::vector<CraftNode> nodes = {
      {static_cast<std::uint16_t>(kiln::Op::input), "x", {}, 0, {-1, 2}, false},
      {static_cast<std::uint16_t>(kiln::Op::parameter), "w", {}, 0, {2, 3}, true},
      {static_cast<std::uint16_t>(kiln::Op::matmul), "y", {0, 1}, 0, {-1, 3}, false}};
  std::vector<CraftSig> inputs = {{"x", 0, {-1, 2}}};
  std::vector<CraftSig> outputs = {{"y", 2, {-1, 3}}};
  std::vector<CraftTensor> tensors = {{"w", 0, {2, 3}, 24, 24}};
  std::uint64_t label_count_override = 0;  ///< nonzero: a huge label count with no labels

  Bytes bytes() const {
    ArchiveWriter w;
    w.u32(static_cast<std::uint32_t>(nodes.size()));
    for (const auto& n : nodes) {
      w.u16(n.op);
      w.string(n.name);
      w.u32(static_cast<std::uint32_t>(n.inputs.size()));
      for (auto i : n.inputs) w.i32(i);
      kiln::internal::write_attrs(w, n.attrs);
      w.u8(n.dtype);
      w.dims(n.dims);
      w.boolean(n.trainable);
    }
    for (const auto* sigs : {&inputs, &outputs}) {
      w.u32(static_cast<std::uint32_t>(sigs->size()));
      for (const auto& s : *sigs) {
        w.string(s.name);
        w.i32(s.id);
        w.dims(s.dims);
        w.u8(0);
      }
    }
    for (int i = 0; i < 3; ++i) w.string("meta");
    w.u32(static_cast<std::uint32_t>(label_count_override));
    for (int i = 0; i < 3; ++i) w.u32(0);  // preprocessing, metrics, extra
    w.string("2026-01-01T00:00:00Z");
    w.string("0.1.0");
    w.u32(static_cast<std::uint32_t>(tensors.size()));
    for (const auto& t : tensors) {
      w.string(t.name);
      w.u8(t.dtype);
      w.dims(t.dims);
      w.u64(t.nbytes);
      for (std::uint64_t b = 0; b < t.data_bytes; ++b) w.u8(0x3f);
    }
    return kiln::internal::wrap_envelope(kiln::internal::model_magic, 1, w.finish());
  }
};

/// Decoding must raise FormatError whose message starts with the source and mentions `what`.
void expect_format_error(const Bytes& bytes, const std::string& what,
                         const std::string& source = "bad.kiln") {
  try {
    (void)kiln::internal::decode_model(bytes, source);
    ADD_FAILURE() << "no error; expected one about '" << what << "'";
  } catch (const kiln::FormatError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(source + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "message: " << msg << "\nwanted: " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(BadFiles, CraftedBaselineIsValid) {
  auto m = kiln::internal::decode_model(Craft{}.bytes(), "crafted");
  EXPECT_EQ(m.graph->size(), 3u);
  EXPECT_EQ(m.outputs[0].shape, (kiln::Shape{kiln::batch, 3}));
}

TEST(BadFiles, EnvelopeProblems) {
  expect_format_error({}, "too short");
  expect_format_error(Bytes(7, 'K'), "too short");
  auto good = golden_bytes("mlp");
  auto b = good;
  b[0] = 'X';
  expect_format_error(b, "bad magic");
  b = good;
  b[4] = 3;  // format version 3
  expect_format_error(b, "format version 3 is newer");
  b = good;
  b[4] = 0;
  expect_format_error(b, "format version 0");
  b = good;
  b.push_back(0);
  expect_format_error(b, "trailing data");
  b = good;
  b[100] ^= 1;
  expect_format_error(b, "checksum");
}

TEST(BadFiles, EveryTruncationOfRealModels) {
  for (const char* name : {"mlp", "cnn"}) {
    const auto good = golden_bytes(name);
    for (std::size_t len = 0; len < good.size(); ++len) {
      const Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
      try {
        (void)kiln::internal::decode_model(cut, "cut.kiln");
        ADD_FAILURE() << name << " truncated to " << len << " bytes decoded";
      } catch (const kiln::FormatError& e) {
        ASSERT_EQ(std::string(e.what()).rfind("cut.kiln: ", 0), 0u) << e.what();
      }
    }
  }
}

TEST(BadFiles, EveryPayloadTruncationBehindAValidChecksum) {
  // The envelope is rewritten so the payload parser itself meets every truncation.
  const auto good = golden_bytes("cnn");
  const std::span<const std::uint8_t> payload(good.data() + 48, good.size() - 48);
  for (std::size_t len = 0; len < payload.size(); ++len) {
    const auto b =
        kiln::internal::wrap_envelope(kiln::internal::model_magic, 1, payload.first(len));
    try {
      (void)kiln::internal::decode_model(b, "cut.kiln");
      ADD_FAILURE() << "payload truncated to " << len << " bytes decoded";
    } catch (const kiln::FormatError& e) {
      ASSERT_EQ(std::string(e.what()).rfind("cut.kiln: ", 0), 0u) << e.what();
    }
  }
}

TEST(BadFiles, ThousandRandomBitFlips) {
  const auto good = golden_bytes("cnn");
  std::mt19937_64 rng(20261126);
  for (int i = 0; i < 1000; ++i) {
    auto b = good;
    const auto bit = rng() % (b.size() * 8);
    b[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    try {
      (void)kiln::internal::decode_model(b, "flipped.kiln");
      ADD_FAILURE() << "flip of bit " << bit << " decoded";
    } catch (const kiln::FormatError& e) {
      ASSERT_EQ(std::string(e.what()).rfind("flipped.kiln: ", 0), 0u) << e.what();
    }
  }
}

TEST(BadFiles, PayloadBitFlipsBehindAValidChecksumNeverCrash) {
  // With the checksum recomputed, a flip may still give a valid model (e.g. in a weight);
  // otherwise it must be a FormatError. No other exception, crash or hang.
  const auto good = golden_bytes("cnn");
  const std::span<const std::uint8_t> payload(good.data() + 48, good.size() - 48);
  std::mt19937_64 rng(7);
  int rejected = 0;
  for (int i = 0; i < 1000; ++i) {
    Bytes p(payload.begin(), payload.end());
    for (int k = 0; k < 1 + i % 3; ++k) {
      const auto bit = rng() % (p.size() * 8);
      p[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    }
    const auto b = kiln::internal::wrap_envelope(kiln::internal::model_magic, 1, p);
    try {
      (void)kiln::internal::decode_model(b, "flipped.kiln");
    } catch (const kiln::FormatError& e) {
      ++rejected;
      ASSERT_EQ(std::string(e.what()).rfind("flipped.kiln: ", 0), 0u) << e.what();
    }
  }
  EXPECT_GT(rejected, 100);
}

TEST(BadFiles, HugeAndNegativeSizes) {
  Craft c;
  c.label_count_override = 0xffffffffu;
  expect_format_error(c.bytes(), "label names: count 4294967295 cannot fit");
  // A string length of 2^63: patch the name's length prefix of node 0 ("x").
  auto b = Craft{}.bytes();
  {
    const std::span<const std::uint8_t> payload(b.data() + 48, b.size() - 48);
    Bytes p(payload.begin(), payload.end());
    // payload: endianness byte, u32 node count, u16 op, then the u64 name length.
    p[1 + 4 + 2 + 7] = 0x80;
    b = kiln::internal::wrap_envelope(kiln::internal::model_magic, 1, p);
  }
  expect_format_error(b, "string length 9223372036854775809 exceeds");
  c = Craft{};
  c.nodes[1].dims = {2, -3};
  expect_format_error(c.bytes(), "dimension 1 is -3 (negative)");
  c = Craft{};
  c.nodes[0].dims = {-1, -1};
  expect_format_error(c.bytes(), "dimension 1 is -1 (negative)");
  c = Craft{};
  c.tensors[0].nbytes = std::uint64_t{1} << 62;
  expect_format_error(c.bytes(), "byte length 4611686018427387904 does not match");
  c = Craft{};
  c.tensors[0].dims = {std::int64_t{1} << 40};
  expect_format_error(c.bytes(), "above the limit");
}

TEST(BadFiles, DimensionProductsThatOverflow) {
  Craft c;
  c.nodes[1].dims = {0x7fffffff, 0x7fffffff, 0x7fffffff};
  expect_format_error(c.bytes(), "product of the dimensions overflows");
  c = Craft{};
  c.tensors[0].dims = {0x7fffffff, 0x7fffffff, 4};
  c.tensors[0].dtype = 3;  // f64: 8-byte elements overflow int64
  expect_format_error(c.bytes(), "product of the dimensions overflows");
}

TEST(BadFiles, DuplicateMissingAndUnknownTensorNames) {
  Craft c;
  c.tensors.push_back(c.tensors[0]);
  expect_format_error(c.bytes(), "duplicate tensor 'w'");
  c = Craft{};
  c.tensors.clear();
  expect_format_error(c.bytes(), "missing tensor for parameter 'w'");
  c = Craft{};
  c.tensors[0].name = "v";
  expect_format_error(c.bytes(), "tensor 'v' belongs to no node");
  c = Craft{};
  c.tensors[0].name = "y";
  expect_format_error(c.bytes(), "tensor 'y' belongs to a 'matmul' node");
  c = Craft{};
  c.tensors[0].dims = {3, 2};
  expect_format_error(c.bytes(), "tensor 'w' is f32 [3, 2] but its node says f32 [2, 3]");
  c = Craft{};
  c.nodes[2].name = "x";
  expect_format_error(c.bytes(), "duplicate node name 'x'");
  c = Craft{};
  c.nodes[2].name = "";
  expect_format_error(c.bytes(), "node name is empty");
}

TEST(BadFiles, BadOpIdsReferencesAndSignatures) {
  Craft c;
  c.nodes[2].op = static_cast<std::uint16_t>(kiln::op_count);
  expect_format_error(c.bytes(), "is not a known op");
  c = Craft{};
  c.nodes[2].op = static_cast<std::uint16_t>(kiln::Op::batch_norm_backward);
  expect_format_error(c.bytes(), "training-only op 'batch_norm_backward'");
  c = Craft{};
  c.nodes[2].inputs = {0, 2};
  expect_format_error(c.bytes(), "input 2 is not an earlier node");
  c = Craft{};
  c.nodes[2].inputs = {0, -1};
  expect_format_error(c.bytes(), "input -1 is not an earlier node");
  c = Craft{};
  c.nodes[2].inputs = {0};
  expect_format_error(c.bytes(), "node 'y' (matmul)");
  c = Craft{};
  c.nodes[2].dims = {-1, 4};
  expect_format_error(c.bytes(), "differs from the inferred");
  c = Craft{};
  c.nodes[1].dtype = 9;
  expect_format_error(c.bytes(), "unknown dtype value 9");
  c = Craft{};
  c.outputs[0].id = 3;
  expect_format_error(c.bytes(), "model output 'y' refers to node 3");
  c = Craft{};
  c.inputs[0] = {"w", 1, {2, 3}};
  expect_format_error(c.bytes(), "which is a 'parameter' node, not an input");
  c = Craft{};
  c.inputs.clear();
  expect_format_error(c.bytes(), "graph input 'x' is missing from the model inputs");
  c = Craft{};
  c.outputs.clear();
  expect_format_error(c.bytes(), "no outputs");
  c = Craft{};
  c.outputs.push_back(c.outputs[0]);
  expect_format_error(c.bytes(), "listed twice");
  c = Craft{};
  c.outputs[0].dims = {-1, 5};
  expect_format_error(c.bytes(), "signature does not match");
  c = Craft{};
  c.nodes[2].trainable = true;
  expect_format_error(c.bytes(), "only parameters can be trainable");
}

/// Peak bytes from operator new plus every aligned_alloc (tensor storage) while decoding.
std::int64_t peak_while_decoding(const Bytes& bytes) {
  live_bytes = 0;
  peak_bytes = 0;
  aligned_bytes = 0;
  tracking = true;
  try {
    (void)kiln::internal::decode_model(bytes, "peak.kiln");
  } catch (const kiln::FormatError&) {
  }
  tracking = false;
  return peak_bytes.load() + aligned_bytes.load();
}

TEST(BadFiles, PeakMemoryStaysBoundedByTheFile) {
  // A file claiming a 2^40-element f32 tensor (4 TiB) in a few hundred bytes.
  Craft c;
  c.nodes[1].dims = {1 << 20, 1 << 20};
  c.tensors[0].dims = {1 << 20, 1 << 20};
  c.tensors[0].nbytes = std::uint64_t{4} << 40;
  c.tensors[0].data_bytes = 64;
  c.outputs[0].dims = {-1, 1 << 20};
  c.nodes[2].dims = {-1, 1 << 20};
  c.nodes[0].dims = {-1, 1 << 20};
  c.inputs[0].dims = {-1, 1 << 20};
  const auto bytes = c.bytes();
  expect_format_error(bytes, "only 64 left");
  const auto peak = peak_while_decoding(bytes);
  std::printf("[ peak     ] crafted 2^40-element file: %zu bytes, peak %lld bytes\n", bytes.size(),
              static_cast<long long>(peak));
  EXPECT_GT(peak, 0);  // the hook works
  EXPECT_LT(peak, static_cast<std::int64_t>(bytes.size()) + 64 * 1024) << "peak " << peak;
  // Real models: the decoded tensors are bounded by the file, plus the graph's bookkeeping.
  for (const char* name : {"mlp", "cnn"}) {
    const auto good = golden_bytes(name);
    const auto p = peak_while_decoding(good);
    std::printf("[ peak     ] %s: %zu bytes, peak %lld bytes\n", name, good.size(),
                static_cast<long long>(p));
    EXPECT_LT(p, static_cast<std::int64_t>(good.size()) + 128 * 1024) << name << " peak " << p;
  }
}

TEST(BadFiles, BadPreprocessingAndAttributes) {
  // A golden model re-saved with a zero stddev is refused on load.
  Built b = build_mlp();
  b.options.metadata.preprocessing[0].stddev[3] = 0.0f;
  expect_format_error(kiln::serialize_model(*b.graph, b.options), "feature 3 has a non-finite");
  b = build_mlp();
  b.options.metadata.preprocessing[0].mean.pop_back();
  expect_format_error(kiln::serialize_model(*b.graph, b.options), "differ in length");
  // A v1 conv with stride 0, caught by the shape rule and reported as a FormatError.
  Craft c;
  c.nodes = {{static_cast<std::uint16_t>(kiln::Op::input), "x", {}, 0, {-1, 1, 4, 4}, false},
             {static_cast<std::uint16_t>(kiln::Op::parameter), "w", {}, 0, {2, 3}, true},
             {static_cast<std::uint16_t>(kiln::Op::conv2d), "y", {0, 1}, 0, {-1, 3}, false}};
  c.inputs = {{"x", 0, {-1, 1, 4, 4}}};
  c.tensors = {{"w", 0, {1, 1, 3, 3}, 36, 36}};
  c.nodes[1].dims = {1, 1, 3, 3};
  c.nodes[2].dims = {-1, 1, 2, 2};
  c.outputs = {{"y", 2, {-1, 1, 2, 2}}};
  EXPECT_NO_THROW((void)kiln::internal::decode_model(c.bytes(), "conv"));  // valid as crafted
  c.nodes[2].attrs.stride = {0, 1};
  expect_format_error(c.bytes(), "stride");
}

TEST(BadFiles, NodeHeavyFilesStayLinearInMemory) {
  // Many small nodes: the graph's bookkeeping per node is bounded by a multiple of the
  // smallest node record (160 bytes), so memory stays linear in the file size.
  Craft c;
  c.nodes.resize(1);
  c.tensors.clear();
  for (int i = 1; i <= 2000; ++i) {
    std::string name = "r";
    name += std::to_string(i);
    c.nodes.push_back(
        {static_cast<std::uint16_t>(kiln::Op::relu), name, {i - 1}, 0, {-1, 2}, false});
  }
  c.outputs = {{"r2000", 2000, {-1, 2}}};
  const auto bytes = c.bytes();
  ASSERT_NO_THROW((void)kiln::internal::decode_model(bytes, "chain"));
  const auto peak = peak_while_decoding(bytes);
  std::printf("[ peak     ] 2001-node chain: %zu bytes, peak %lld bytes\n", bytes.size(),
              static_cast<long long>(peak));
  EXPECT_LT(peak, 8 * static_cast<std::int64_t>(bytes.size()) + 64 * 1024);
}

TEST(BadFiles, NodeHeavyV2FilesStayLinearInMemory) {
  // Format v2 node records are smaller (no fixed attribute block: 40 bytes at least), so
  // the bound on memory per byte of file is looser than v1's, but still linear.
  kiln::Graph g;
  kiln::Value v = g.input("x", {kiln::batch, 2});
  auto x = v;
  for (int i = 1; i <= 2000; ++i) {
    std::string name = "r";
    name += std::to_string(i);
    v = kiln::relu(v, name);
  }
  const auto bytes = kiln::serialize_model(g, {.inputs = {x}, .outputs = {v}});
  ASSERT_NO_THROW((void)kiln::internal::decode_model(bytes, "chain"));
  const auto peak = peak_while_decoding(bytes);
  std::printf("[ peak     ] 2001-node v2 chain: %zu bytes, peak %lld bytes\n", bytes.size(),
              static_cast<long long>(peak));
  EXPECT_LT(peak, 24 * static_cast<std::int64_t>(bytes.size()) + 64 * 1024);
}

}  // namespace bad
}  // namespace
