// Model format v2: ops by name, tagged attributes, node scopes, named sections (user
// sections kept, unknown ones skipped, required ones refused), the content hash, the golden
// v2 files (every op a model file can hold; training-only ops refused by save), load_graph
// with fine-tuning, and preprocessing applied by infer::Model on request.
//
// KILN_REGENERATE_GOLDEN=1 writes tests/data/golden_v2/ (once, when the format is new: the
// files must keep loading as they are afterwards).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "io/archive.hpp"
#include "io/model_data.hpp"
#include "io/model_format.hpp"
#include "io/sha256.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/kiln.hpp"
#include "kiln/optim/optimizer.hpp"

namespace kiln {
namespace {

using Bytes = std::vector<std::uint8_t>;
namespace fs = std::filesystem;
using internal::ArchiveWriter;
using internal::SectionView;

const fs::path golden_dir = fs::path(KILN_TEST_DATA_DIR) / "golden_v2";

struct Built {
  std::unique_ptr<Graph> graph = std::make_unique<Graph>();
  SaveOptions options;
  std::vector<Feeds> feeds;  // the inputs the golden outputs were computed on
};

Tensor uniform(Rng& rng, const Shape& shape, double lo, double hi) {
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& f : v) f = static_cast<float>(rng.uniform(lo, hi));
  return Tensor::from(v, shape);
}

Tensor labels_of(Rng& rng, std::int64_t rows, int classes) {
  std::vector<std::int32_t> v(static_cast<std::size_t>(rows));
  for (auto& l : v) l = static_cast<std::int32_t>(rng.uniform(0.0, classes - 1e-9));
  return Tensor::from(v, Shape{rows});
}

// ---- the golden models ----

/// One graph holding every op a model file can hold, with non-default attributes
/// everywhere an op has them, scopes, a buffer and a constant.
Built build_every_op() {
  Built b;
  Graph& g = *b.graph;
  Rng rng(21);
  auto x = g.input("x", {batch, 6});
  auto labels = g.input("labels", {batch}, i32);
  auto target = g.input("target", {batch, 4});
  auto image = g.input("image", {batch, 2, 6, 6});

  auto w = g.parameter("w", uniform(rng, {4, 6}, -1, 1));
  auto bias = g.parameter("bias", uniform(rng, {4}, -0.5, 0.5), false);  // a buffer
  auto c = g.constant(uniform(rng, {4}, 0.5, 1.5), "c");
  auto m = matmul(x, w, {.transpose_b = true}, "matmul");
  auto a = add(m, bias, "add");
  auto s = sub(a, c, "sub");
  auto p = mul(s, s, "mul");
  auto d = div(s, c, "div");
  auto n = neg(d, "neg");
  auto t = tanh(n, "tanh");
  auto e = exp(t, "exp");
  auto l = log(e, "log");
  auto q = sqrt(e, "sqrt");
  auto r = relu(s, "relu");
  auto lr = leaky_relu(s, 0.2f, "leaky_relu");
  auto sg = sigmoid(lr, "sigmoid");
  auto st = step(s, "step");
  auto eq = equal(st, step(m), "equal");
  auto sm = softmax(p, -1, "softmax");
  auto ls = log_softmax(a, 0, "log_softmax");
  auto su = sum(q, {1}, true, "sum");
  auto mn = mean(l, {1}, false, "mean");
  auto mx = max(sg, {0, 1}, false, "max");
  auto ex = expand(su, {batch, 4}, a, true, "expand");
  auto rs = reshape(a, {-1, 2, 2}, "reshape");
  auto tr = transpose(rs, {0, 2, 1}, "transpose");
  auto mt = matmul(rs, tr, {.transpose_a = true}, "matmul_ta");
  auto cc = concat({a, s}, 1, "concat");
  auto sl = slice(cc, 1, 1, 6, "slice");
  auto pd = pad(sl, 1, 1, 2, "pad");
  auto table = g.parameter("table", uniform(rng, {5, 3}, -1, 1));
  auto ga = gather(table, labels, "gather");
  auto oh = one_hot(labels, 5, f32, "one_hot");
  auto oh_d = one_hot(labels, 6, f64, "one_hot_f64");
  auto dr = dropout(x, 0.5f, 77, "dropout");  // dropout_mask + mul; the identity here
  auto w5 = g.parameter("w5", uniform(rng, {6, 5}, -1, 1));
  auto logits5 = add(matmul(dr, w5), oh, "logits5");
  auto ce = softmax_cross_entropy(logits5, labels, "softmax_cross_entropy");
  auto ms = mse(a, target, "mse");
  auto bce = binary_cross_entropy_with_logits(a, target, "bce_with_logits");
  for (auto v : {m, a, s, r, sm}) g.assign_scope(v, "dense_block");

  auto cw = g.parameter("conv.weight", uniform(rng, {4, 1, 3, 3}, -0.5, 0.5));
  auto cb = g.parameter("conv.bias", uniform(rng, {4}, -0.1, 0.1));
  auto cv = conv2d(image, cw, cb, {.padding = {1, 1}, .groups = 2}, "conv2d");
  auto cw2 = g.parameter("conv_d.weight", uniform(rng, {3, 2, 3, 3}, -0.5, 0.5));
  auto cv2 = conv2d(image, cw2, {}, {.stride = {2, 2}, .padding = {2, 2}, .dilation = {2, 2}},
                    "conv2d_dilated");
  auto ctw = g.parameter("deconv.weight", uniform(rng, {4, 2, 3, 3}, -0.5, 0.5));
  auto ctb = g.parameter("deconv.bias", uniform(rng, {2}, -0.1, 0.1));
  ConvTranspose2dOptions ct_opts;
  ct_opts.stride = {2, 2};
  ct_opts.padding = {1, 1};
  ct_opts.output_padding = {1, 1};
  auto ct = conv_transpose2d(cv, ctw, ctb, ct_opts, "conv_transpose2d");
  auto mp = max_pool2d(ct, {.kernel = {2, 2}}, "max_pool2d");
  auto ap =
      avg_pool2d(cv, {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}, .include_pad = false},
                 "avg_pool2d");
  auto gamma = g.parameter("bn.weight", uniform(rng, {4}, 0.5, 1.5));
  auto beta = g.parameter("bn.bias", uniform(rng, {4}, -0.5, 0.5));
  auto rmean = g.parameter("bn.running_mean", uniform(rng, {4}, -0.2, 0.2), false);
  auto rvar = g.parameter("bn.running_var", uniform(rng, {4}, 0.5, 2.0), false);
  auto bn =
      batch_norm(ap, gamma, beta, rmean, rvar, {.eps = 1e-3f, .momentum = 0.2f}, "batch_norm");
  auto up = upsample_nearest2d(mp, {2, 1}, "upsample_nearest2d");
  for (auto v : {cv, ct, mp, ap, bn}) g.assign_scope(v, "conv_block");

  b.options.inputs = {x, labels, target, image};
  b.options.outputs = {p,  d,  n,  t,  e,  l,  q,  r,    lr, sg, st,  eq,  sm, ls, su, mn,
                       mx, ex, tr, mt, pd, ga, oh, oh_d, ce, ms, bce, cv2, ct, bn, up};
  b.options.metadata.name = "every-op";
  b.options.metadata.version = "2.0.0";
  b.options.metadata.description = "every op a model file can hold, for the format v2 golden test";
  for (std::int64_t rows : {3, 1}) {
    Rng in(1000 + static_cast<std::uint64_t>(rows));
    Tensor tgt = uniform(in, {rows, 4}, 0, 1);
    b.feeds.push_back({{"x", uniform(in, {rows, 6}, -2, 2)},
                       {"labels", labels_of(in, rows, 5)},
                       {"target", tgt},
                       {"image", uniform(in, {rows, 2, 6, 6}, -2, 2)}});
  }
  return b;
}

/// A small MLP with preprocessing, scopes and a user section.
Built build_mlp() {
  Built b;
  Graph& g = *b.graph;
  auto x = g.input("pixels", {batch, 8});
  auto h = nn::dense(g, x, 16, {.activation = nn::Activation::relu, .name = "fc1"});
  auto logits = nn::dense(g, h, 4, {.name = "fc2"});
  auto probs = softmax(logits, -1, "probs");
  for (const Node& n : g.nodes()) {
    if (n.name.rfind("fc1", 0) == 0 || n.name.rfind("fc2", 0) == 0)
      g.assign_scope(g.find(n.name), n.name.substr(0, 3));
  }
  b.options.inputs = {x};
  b.options.outputs = {probs, logits};
  b.options.output_names = {"probabilities", "logits"};
  b.options.metadata.name = "golden-mlp-v2";
  b.options.metadata.version = "2.1.0";
  b.options.metadata.labels = {"zero", "one", "two", "three"};
  std::vector<float> mean(8), stddev(8);
  for (int i = 0; i < 8; ++i) {
    mean[static_cast<std::size_t>(i)] = 0.1f * static_cast<float>(i);
    stddev[static_cast<std::size_t>(i)] = 1.0f + 0.25f * static_cast<float>(i);
  }
  b.options.metadata.preprocessing = {{"pixels", mean, stddev}};
  b.options.metadata.metrics = {{"test_accuracy", 0.75}};
  b.options.metadata.extra = {{"dataset", "synthetic"}};
  const std::string note = "a user section: kept, never interpreted";
  b.options.sections["example.notes"] = Bytes(note.begin(), note.end());
  Rng in(31);
  b.feeds.push_back({{"pixels", uniform(in, {3, 8}, -2, 2)}});
  return b;
}

/// The sequence ops (issue 15): lstm forward and reverse over variable-length rows with
/// initial states, gru forward and reverse, attention with a key mask, the causal limit and
/// its own scale, plain attention, exact gelu; the packed recurrent outputs are outputs
/// themselves, so their layout is pinned too.
Built build_sequence() {
  Built b;
  Graph& g = *b.graph;
  Rng rng(41);
  auto x = g.input("x", {batch, 5, 3});
  auto lengths = g.input("lengths", {batch}, i32);
  auto param = [&](const char* name, const Shape& shape, double a) {
    return g.parameter(name, uniform(rng, shape, -a, a));
  };
  // [B, 5, in] @ w^T + bias -> [B, 5, out], as the layers' input projection.
  auto project = [&](Value v, std::int64_t in, Value w, Value bias, std::int64_t out) {
    return reshape(add(matmul(reshape(v, {-1, in}), w, {.transpose_b = true}), bias), {-1, 5, out});
  };
  Value lstm_fwd, lstm_rev, gru_fwd, gru_rev, masked, plain, gelu;
  {
    auto scope = g.scope("lstm");
    auto w_ih = param("lstm.weight_ih", {16, 3}, 0.6);
    auto w_hh = param("lstm.weight_hh", {16, 4}, 0.6);
    auto bias = param("lstm.bias", {16}, 0.3);
    auto w_h0 = param("lstm.w_h0", {4, 3}, 0.6);
    auto first = reshape(slice(x, 1, 0, 1), {-1, 3});
    auto h0 = tanh(matmul(first, w_h0, {.transpose_b = true}), "lstm.h0");
    auto c0 = mul(h0, 0.5);
    auto xw = project(x, 3, w_ih, bias, 16);
    lstm_fwd = lstm(xw, w_hh, h0, c0, {.lengths = lengths}, "lstm_forward");
    lstm_rev = lstm(xw, w_hh, h0, c0, {.lengths = lengths, .reverse = true}, "lstm_reverse");
  }
  auto seq = concat({slice(lstm_fwd, 2, 20, 24), slice(lstm_rev, 2, 20, 24)}, 2, "lstm_out");
  {
    auto scope = g.scope("gru");
    auto w_ih = param("gru.weight_ih", {12, 8}, 0.5);
    auto w_hh = param("gru.weight_hh", {12, 4}, 0.5);
    auto b_ih = param("gru.bias_ih", {12}, 0.3);
    auto b_hh = param("gru.bias_hh", {12}, 0.3);
    auto h0 = tanh(reshape(slice(seq, 1, 4, 5), {-1, 8}));
    auto h0_4 = slice(h0, 1, 2, 6, "gru.h0");
    auto xw = project(seq, 8, w_ih, b_ih, 12);
    gru_fwd = gru(xw, w_hh, b_hh, h0_4, {}, "gru_forward");
    gru_rev = gru(xw, w_hh, b_hh, h0_4, {.reverse = true}, "gru_reverse");
  }
  {
    auto scope = g.scope("attention_block");
    auto h = concat({slice(gru_fwd, 2, 16, 20), slice(gru_rev, 2, 16, 20)}, 2);  // [B, 5, 8]
    auto heads = [&](Value w) {  // [B, 5, 8] @ w^T -> [B, 2 heads, 5, 4]
      return transpose(
          reshape(matmul(reshape(h, {-1, 8}), w, {.transpose_b = true}), {-1, 5, 2, 4}),
          {0, 2, 1, 3});
    };
    auto q = heads(param("attn.w_q", {8, 8}, 0.5));
    auto k = heads(param("attn.w_k", {8, 8}, 0.5));
    auto v = heads(param("attn.w_v", {8, 8}, 0.5));
    auto mask = sequence_mask(lengths, 5, f32, "key_mask");
    masked =
        attention(q, k, v, {.key_mask = mask, .causal = true, .scale = 0.3f}, "attention_masked");
    plain = attention(q, k, v, {}, "attention");
    gelu = gelu_erf(add(masked, plain), "gelu");
  }
  b.options.inputs = {x, lengths};
  b.options.outputs = {lstm_fwd, lstm_rev, gru_fwd, gru_rev, masked, plain, gelu};
  b.options.output_names = {"lstm_forward",     "lstm_reverse", "gru_forward", "gru_reverse",
                            "attention_masked", "attention",    "gelu"};
  b.options.metadata.name = "golden-sequence-v2";
  b.options.metadata.version = "1.0.0";
  b.options.metadata.description = "the sequence ops (lstm, gru, attention, gelu)";
  Rng in(51);
  b.feeds.push_back({{"x", uniform(in, {4, 5, 3}, -2, 2)},
                     {"lengths", Tensor::from(std::vector<std::int32_t>{5, 3, 0, 1}, Shape{4})}});
  b.feeds.push_back({{"x", uniform(in, {1, 5, 3}, -2, 2)},
                     {"lengths", Tensor::from(std::vector<std::int32_t>{4}, Shape{1})}});
  return b;
}

/// The fused layer_norm (added with it): with gamma and beta and its own eps, without them
/// on a rank-2 view, and as nn::layer_norm builds it (scope "encoder.norm1", parameters
/// "encoder.norm1.weight" / ".bias"); input x [batch, 3, 6]; 3 outputs.
Built build_layer_norm() {
  Built b;
  Graph& g = *b.graph;
  Rng rng(43);
  auto x = g.input("x", {batch, 3, 6});
  auto gamma = g.parameter("ln.gamma", uniform(rng, {6}, 0.5, 1.5));
  auto beta = g.parameter("ln.beta", uniform(rng, {6}, -0.5, 0.5));
  Value affine = layer_norm(x, gamma, beta, 1e-3f, "layer_norm_affine");
  Value plain = layer_norm(reshape(x, {-1, 6}), {}, {}, 1e-5f, "layer_norm_plain");
  Value layer = nn::layer_norm(mul(affine, 2.0), {.name = "encoder.norm1"});
  g.tensor(g.find("encoder.norm1.weight")).copy_from(uniform(rng, {6}, 0.5, 1.5));
  g.tensor(g.find("encoder.norm1.bias")).copy_from(uniform(rng, {6}, -0.5, 0.5));
  b.options.inputs = {x};
  b.options.outputs = {affine, plain, layer};
  b.options.output_names = {"affine", "plain", "layer"};
  b.options.metadata.name = "golden-layer-norm-v2";
  b.options.metadata.version = "1.0.0";
  b.options.metadata.description = "the fused layer_norm op";
  Rng in(53);
  b.feeds.push_back({{"x", uniform(in, {4, 3, 6}, -2, 2)}});
  b.feeds.push_back({{"x", uniform(in, {1, 3, 6}, -2, 2)}});
  return b;
}

struct GoldenCase {
  const char* file;
  Built (*build)();
};
const GoldenCase golden_cases[] = {{"every_op", build_every_op},
                                   {"mlp", build_mlp},
                                   {"sequence", build_sequence},
                                   {"layer_norm", build_layer_norm}};

std::vector<double> as_doubles(const Tensor& t) {
  std::vector<double> out;
  switch (t.dtype()) {
    case DType::f32:
      for (float v : t.to_vector<float>()) out.push_back(v);
      break;
    case DType::f64:
      out = t.to_vector<double>();
      break;
    case DType::i32:
      for (auto v : t.to_vector<std::int32_t>()) out.push_back(v);
      break;
    case DType::i64:
      for (auto v : t.to_vector<std::int64_t>()) out.push_back(static_cast<double>(v));
      break;
  }
  return out;
}

using Outputs = std::vector<std::vector<double>>;  // per feed set, per output, the values

/// The outputs of `outputs` in `g` on every feed set, reference kernels, no fusion.
std::vector<Outputs> reference_outputs(Graph& g, const std::vector<Value>& outputs,
                                       const std::vector<Feeds>& feeds) {
  Executable exe(g, outputs, {.backend = "reference", .fuse = false});
  std::vector<Outputs> all;
  for (const Feeds& f : feeds) {
    Outputs o;
    for (const Tensor& t : exe.run(f)) o.push_back(as_doubles(t));
    all.push_back(std::move(o));
  }
  return all;
}

void write_outputs(const fs::path& path, const std::vector<Outputs>& all) {
  std::ofstream f(path);
  f.precision(17);
  f << "# golden v2 outputs: per feed set, per output, its element count, then the values\n";
  for (const Outputs& o : all) {
    f << "feeds " << o.size() << "\n";
    for (const auto& v : o) {
      f << v.size() << "\n";
      for (double x : v) f << x << "\n";
    }
  }
}

std::vector<Outputs> read_outputs(const fs::path& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  std::vector<Outputs> all;
  std::string word;
  std::size_t n_out = 0;
  while (f >> word >> n_out) {
    EXPECT_EQ(word, "feeds");
    Outputs o(n_out);
    for (auto& v : o) {
      std::size_t n = 0;
      f >> n;
      v.resize(n);
      for (auto& x : v) f >> x;
    }
    all.push_back(std::move(o));
  }
  return all;
}

Bytes golden_bytes(const char* name) {
  return internal::read_file((golden_dir / (std::string(name) + ".kiln")).string());
}

TEST(GoldenV2, Regenerate) {
  // KILN_REGENERATE_GOLDEN=1 writes every file; =<file> (e.g. "sequence") only that one, for
  // a golden file added later (the existing ones must stay as they are).
  const char* which = std::getenv("KILN_REGENERATE_GOLDEN");
  if (!which) GTEST_SKIP() << "set KILN_REGENERATE_GOLDEN=1 or =<file>";
  fs::create_directories(golden_dir);
  for (const auto& c : golden_cases) {
    if (std::string(which) != "1" && std::string(which) != c.file) continue;
    Built b = c.build();
    save_model((golden_dir / (std::string(c.file) + ".kiln")).string(), *b.graph, b.options);
    // Expected outputs: the in-memory graph on the reference kernels, before any decoding.
    write_outputs(golden_dir / (std::string(c.file) + "_outputs.txt"),
                  reference_outputs(*b.graph, b.options.outputs, b.feeds));
  }
}

void expect_close(const Outputs& got, const Outputs& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t k = 0; k < got.size(); ++k) {
    ASSERT_EQ(got[k].size(), want[k].size()) << what << " output " << k;
    for (std::size_t i = 0; i < got[k].size(); ++i)
      EXPECT_NEAR(got[k][i], want[k][i], tol * (1.0 + std::abs(want[k][i])))
          << what << " output " << k << " element " << i;
  }
}

TEST(GoldenV2, OutputsAreReproduced) {
  for (const auto& c : golden_cases) {
    const Built b = c.build();  // for the feeds only
    const auto expected = read_outputs(golden_dir / (std::string(c.file) + "_outputs.txt"));
    ASSERT_EQ(expected.size(), b.feeds.size()) << c.file;
    // The decoded graph on the reference kernels: tight.
    auto m = internal::decode_model(golden_bytes(c.file), c.file);
    EXPECT_EQ(m.format_version, 2u);
    std::vector<Value> outs;
    for (auto id : m.output_ids) outs.push_back(m.graph->value(id));
    const auto ref = reference_outputs(*m.graph, outs, b.feeds);
    for (std::size_t k = 0; k < ref.size(); ++k)
      expect_close(ref[k], expected[k], 1e-6, std::string(c.file) + " reference");
    // infer::Model with the best kernels (fused, vectorised): within float round-off.
    const auto model = infer::Model::load((golden_dir / (std::string(c.file) + ".kiln")).string());
    for (std::size_t k = 0; k < b.feeds.size(); ++k) {
      Outputs got;
      for (const Tensor& t : model.run(b.feeds[k])) got.push_back(as_doubles(t));
      expect_close(got, expected[k], 1e-4, std::string(c.file) + " infer::Model");
    }
  }
}

TEST(GoldenV2, CoversEveryOpAModelFileCanHold) {
  std::set<Op> seen;
  for (const auto& c : golden_cases) {
    auto m = internal::decode_model(golden_bytes(c.file), c.file);
    for (const Node& n : m.graph->nodes()) seen.insert(n.op);
  }
  int training_only = 0;
  for (int i = 0; i < op_count; ++i) {
    const Op op = static_cast<Op>(i);
    if (internal::is_training_only(op)) {
      ++training_only;
      EXPECT_FALSE(seen.count(op)) << op_name(op);
    } else {
      EXPECT_TRUE(seen.count(op)) << "no golden v2 file holds op '" << op_name(op) << "'";
    }
  }
  EXPECT_EQ(training_only, 11);  // see TrainingOnlyOpsAreRefusedBySave
}

TEST(GoldenV2, TrainingOnlyOpsAreRefusedBySave) {
  // A model file cannot hold these eleven ops: saving a graph whose outputs need one fails,
  // naming the node and the op.
  Graph g;
  auto x = g.input("x", {2, 1, 4, 4});
  auto gy = g.input("gy", {2, 1, 2, 2});
  auto gy_same = g.input("gy_same", {2, 1, 4, 4});
  auto ids = g.input("ids", {3}, i32);
  auto rows = g.input("rows", {3, 2});
  auto gamma = g.parameter("gamma", Tensor::full({1}, 1.0));
  auto xw = g.input("xw", {2, 3, 8});
  auto w_hh = g.parameter("w_hh", Tensor::full({8, 2}, 0.1));
  auto w_hh3 = g.parameter("w_hh3", Tensor::full({6, 2}, 0.1));
  auto b_hh3 = g.parameter("b_hh3", Tensor::full({6}, 0.1));
  auto h0 = g.input("h0", {2, 2});
  auto lstm_y = lstm(xw, w_hh, h0, h0);
  auto gru_y = gru(slice(xw, 2, 0, 6), w_hh3, b_hh3, h0);
  const std::vector<std::pair<Value, const char*>> cases = {
      {scatter_add_rows(ids, rows, 5, "t_scatter"), "scatter_add_rows"},
      {conv2d_backward_weights(x, gy, {3, 3}, {}, "t_conv_bw"), "conv2d_backward_weights"},
      {max_pool2d_backward(x, gy, {.kernel = {2, 2}}, "t_max_bw"), "max_pool2d_backward"},
      {avg_pool2d_backward(x, gy, {.kernel = {2, 2}}, "t_avg_bw"), "avg_pool2d_backward"},
      {batch_norm_backward(x, gamma, gy_same, 1e-5f, "t_bn_bw"), "batch_norm_backward"},
      {lstm_backward(lstm_y, lstm_y, w_hh, h0, h0, {}, "t_lstm_bw"), "lstm_backward"},
      {gru_backward(gru_y, gru_y, w_hh3, h0, {}, "t_gru_bw"), "gru_backward"},
      {gelu_backward(x, gy_same, "t_gelu_bw"), "gelu_backward"},
      {layer_norm_backward(x, {}, gy_same, 1e-5f, "t_ln_bw"), "layer_norm_backward"},
      {relu_backward(x, gy_same, "t_relu_bw"), "relu_backward"},
      {softmax_backward(x, gy_same, -1, "t_softmax_bw"), "softmax_backward"}};
  std::set<Op> refused;
  for (const auto& [v, name] : cases) {
    try {
      (void)serialize_model(g, {.inputs = g.inputs(), .outputs = {v}});
      ADD_FAILURE() << name << " was saved";
    } catch (const ValueError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::string("training-only op '") + name + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find(v.name()), std::string::npos) << msg;
    }
    refused.insert(v.node().op);
  }
  for (int i = 0; i < op_count; ++i)
    EXPECT_EQ(refused.count(static_cast<Op>(i)) == 1,
              internal::is_training_only(static_cast<Op>(i)))
        << op_name(static_cast<Op>(i));
}

/// The sections of a model file (after checking its envelope).
std::vector<SectionView> sections_of(const Bytes& bytes) {
  const auto env = internal::open_envelope(bytes, internal::model_magic, 2, "test", "model");
  return internal::read_sections(env.payload, "test");
}

Bytes with_sections(const std::vector<SectionView>& sections) {
  return internal::wrap_envelope(internal::model_magic, 2, internal::write_sections(sections));
}

TEST(GoldenV2, ReserializingGivesIdenticalBytesExceptTheProvenance) {
  for (const auto& c : golden_cases) {
    const Bytes golden = golden_bytes(c.file);
    LoadedGraph lg = load_graph(golden, c.file);
    const Bytes again = serialize_model(*lg.graph, lg.save_options());
    const auto a = sections_of(golden), b = sections_of(again);
    ASSERT_EQ(a.size(), b.size()) << c.file;
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].name, b[i].name);
      EXPECT_EQ(a[i].flags, b[i].flags);
      if (a[i].name == internal::section_provenance) continue;
      EXPECT_TRUE(
          std::equal(a[i].bytes.begin(), a[i].bytes.end(), b[i].bytes.begin(), b[i].bytes.end()))
          << c.file << " section " << a[i].name;
    }
    EXPECT_EQ(model_content_hash(golden), model_content_hash(again)) << c.file;
    EXPECT_EQ(lg.content_hash, model_content_hash(golden));
    EXPECT_EQ(lg.content_hash.size(), 64u);
  }
}

TEST(GoldenV2, MlpKeepsScopesSectionsMetadataAndFlags) {
  LoadedGraph lg = load_graph(golden_bytes("mlp"), "mlp.kiln");
  Graph& g = *lg.graph;
  EXPECT_EQ(lg.format_version, 2u);
  EXPECT_EQ(g.find("fc1.weight").node().scope, "fc1");
  EXPECT_EQ(g.find("fc2.bias").node().scope, "fc2");
  EXPECT_EQ(g.find("probs").node().scope, "");
  EXPECT_TRUE(g.find("fc1.weight").node().trainable);
  EXPECT_EQ(lg.metadata.name, "golden-mlp-v2");
  EXPECT_EQ(lg.metadata.preprocessing.size(), 1u);
  EXPECT_EQ(lg.metadata.metrics[0].second, 0.75);
  EXPECT_EQ(lg.metadata.library_version, "0.1.0");
  EXPECT_EQ(lg.metadata.created.size(), 20u);
  EXPECT_EQ(lg.output_names, (std::vector<std::string>{"probabilities", "logits"}));
  ASSERT_EQ(lg.sections.count("example.notes"), 1u);
  const auto& note = lg.sections["example.notes"];
  EXPECT_EQ(std::string(note.begin(), note.end()), "a user section: kept, never interpreted");
  auto every = load_graph(golden_bytes("every_op"), "every_op.kiln");
  EXPECT_EQ(every.graph->find("conv2d").node().scope, "conv_block");
  EXPECT_EQ(every.graph->find("bn.running_var").node().trainable, false);
  EXPECT_EQ(every.graph->find("conv_transpose2d").node().attrs.output_padding, (Pair{1, 1}));
  EXPECT_EQ(every.graph->find("avg_pool2d").node().attrs.include_pad, false);
  EXPECT_EQ(every.graph->find("dropout.mask").node().attrs.seed, 77u);
}

TEST(GoldenV2, SequenceKeepsItsAttributesAndScopes) {
  LoadedGraph lg = load_graph(golden_bytes("sequence"), "sequence.kiln");
  Graph& g = *lg.graph;
  EXPECT_FALSE(g.find("lstm_forward").node().attrs.reverse);
  EXPECT_TRUE(g.find("lstm_reverse").node().attrs.reverse);
  EXPECT_EQ(g.find("lstm_reverse").node().inputs.size(), 5u);  // with lengths
  EXPECT_TRUE(g.find("gru_reverse").node().attrs.reverse);
  EXPECT_EQ(g.find("gru_forward").node().inputs.size(), 4u);  // without
  const Node& masked = g.find("attention_masked").node();
  EXPECT_TRUE(masked.attrs.causal);
  EXPECT_EQ(masked.attrs.alpha, 0.3f);
  EXPECT_EQ(masked.inputs.size(), 4u);
  EXPECT_FALSE(g.find("attention").node().attrs.causal);
  EXPECT_EQ(g.find("lstm_forward").node().scope, "lstm");
  EXPECT_EQ(g.find("gru_reverse").node().scope, "gru");
  EXPECT_EQ(g.find("gelu").node().scope, "attention_block");
  EXPECT_EQ(lg.output_names.size(), 7u);
  EXPECT_EQ(lg.metadata.name, "golden-sequence-v2");
}

// ---- the format itself ----

/// y = x @ w, x: [batch, 2], w: [2, 3].
Built build_tiny() {
  Built b;
  Graph& g = *b.graph;
  auto x = g.input("x", {batch, 2});
  auto w = g.parameter("w", Tensor::from({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, Shape{2, 3}));
  auto y = matmul(x, w, {}, "y");
  b.options.inputs = {x};
  b.options.outputs = {y};
  return b;
}

bool contains(const Bytes& haystack, const std::string& needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

TEST(FormatV2, OpsAreStoredByNameAndOnlyNonDefaultAttributes) {
  Built b = build_tiny();
  const Bytes bytes = serialize_model(*b.graph, b.options);
  EXPECT_EQ(bytes[4], 2);  // format version
  const auto sections = sections_of(bytes);
  std::vector<std::string> names;
  for (const auto& s : sections) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"kiln.graph", "kiln.signatures", "kiln.metadata",
                                             "kiln.weights", "kiln.provenance"}));
  const Bytes graph(sections[0].bytes.begin(), sections[0].bytes.end());
  EXPECT_TRUE(contains(graph, "matmul"));
  EXPECT_TRUE(contains(graph, "parameter"));
  EXPECT_FALSE(contains(graph, "transpose_a"));  // a default: not written
  b = build_tiny();
  Graph& g = *b.graph;
  auto z = matmul(b.options.inputs[0], g.find("w"), {.transpose_b = false}, "z");
  Attrs fused;
  fused.post_op = PostOp::relu;
  fused.transpose_b = true;
  auto w2 = g.parameter("w2", Tensor::zeros({3, 2}));
  auto f = g.add(Op::matmul, {b.options.inputs[0], w2}, fused, "fused");
  b.options.outputs = {z, f};
  const Bytes two = serialize_model(g, b.options);
  auto m = internal::decode_model(two, "two");
  EXPECT_EQ(m.graph->find("fused").node().attrs, fused);
  EXPECT_TRUE(contains(two, "transpose_b"));
  EXPECT_TRUE(contains(two, "post_op"));
}

/// A v2 graph section written by hand: nodes with op names and raw attributes.
struct RawAttr {
  std::string key;
  std::uint8_t tag = 0;
  std::vector<std::int64_t> i64s;  // written as i64 each (tags 1, 5) or u8 (tags 3, 6, 8)
};
struct RawNode {
  std::string op;
  std::string name;
  std::vector<std::int32_t> inputs;
  std::vector<RawAttr> attrs;
  std::vector<std::int64_t> dims;
  bool trainable = false;
};

Bytes graph_section(const std::vector<RawNode>& nodes) {
  ArchiveWriter w;
  w.u32(static_cast<std::uint32_t>(nodes.size()));
  for (const auto& n : nodes) {
    w.string(n.op);
    w.string(n.name);
    w.string("");
    w.u32(static_cast<std::uint32_t>(n.inputs.size()));
    for (auto i : n.inputs) w.i32(i);
    w.u32(static_cast<std::uint32_t>(n.attrs.size()));
    for (const auto& a : n.attrs) {
      w.string(a.key);
      w.u8(a.tag);
      for (auto v : a.i64s) {
        if (a.tag == 3 || a.tag == 6 || a.tag == 8)
          w.u8(static_cast<std::uint8_t>(v));
        else
          w.i64(v);
      }
    }
    w.u8(0);
    w.dims(n.dims);
    w.boolean(n.trainable);
  }
  return w.finish();
}

std::vector<RawNode> tiny_nodes() {
  return {{"input", "x", {}, {}, {-1, 2}, false},
          {"parameter", "w", {}, {}, {2, 3}, true},
          {"matmul", "y", {0, 1}, {}, {-1, 3}, false}};
}

/// The tiny model with its graph section replaced.
Bytes tiny_with_graph(const std::vector<RawNode>& nodes) {
  Built b = build_tiny();
  const Bytes good = serialize_model(*b.graph, b.options);
  auto sections = sections_of(good);
  const Bytes graph = graph_section(nodes);
  sections[0].bytes = graph;
  return with_sections(sections);
}

void expect_format_error(const Bytes& bytes, const std::string& what,
                         const std::string& source = "bad.kiln") {
  try {
    (void)internal::decode_model(bytes, source);
    ADD_FAILURE() << "no error; expected one about '" << what << "'";
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(source + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "message: " << msg << "\nwanted: " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(FormatV2, HandWrittenGraphSectionDecodes) {
  auto m = internal::decode_model(tiny_with_graph(tiny_nodes()), "crafted");
  EXPECT_EQ(m.graph->size(), 3u);
  auto nodes = tiny_nodes();
  nodes[2].attrs = {{"transpose_b", 3, {1}}};
  nodes[1].dims = {3, 2};
  // w is [2, 3] in the weights section: a mismatch, reported as such.
  expect_format_error(tiny_with_graph(nodes), "tensor 'w' is f32 [2, 3] but its node says");
}

TEST(FormatV2, UnknownOpsAndAttributesAreRefusedByName) {
  auto nodes = tiny_nodes();
  nodes[2].op = "fancy_matmul";
  expect_format_error(tiny_with_graph(nodes), "node 2: unknown op 'fancy_matmul'");
  nodes = tiny_nodes();
  nodes[2].op = "conv2d_backward_weights";
  expect_format_error(tiny_with_graph(nodes), "training-only op 'conv2d_backward_weights'");
  nodes = tiny_nodes();
  nodes[2].attrs = {{"precision", 1, {3}}};
  expect_format_error(tiny_with_graph(nodes), "node 'y': unknown attribute 'precision'");
  nodes[2].attrs = {{"transpose_a", 3, {0}}, {"transpose_a", 3, {0}}};
  expect_format_error(tiny_with_graph(nodes), "attribute 'transpose_a' is given twice");
  nodes[2].attrs = {{"transpose_a", 1, {0}}};
  expect_format_error(tiny_with_graph(nodes), "attribute 'transpose_a' has type tag 1");
  nodes[2].attrs = {{"transpose_a", 3, {2}}};
  expect_format_error(tiny_with_graph(nodes), "boolean byte is 2");
  nodes[2].attrs = {{"axis", 1, {std::int64_t{1} << 40}}};
  expect_format_error(tiny_with_graph(nodes), "attribute axis = 1099511627776 is out of range");
  nodes[2].attrs = {{"post_op", 8, {5}}};
  expect_format_error(tiny_with_graph(nodes), "node 'y': unknown post-op 5");
  nodes[2].attrs = {{"dtype", 6, {9}}};
  expect_format_error(tiny_with_graph(nodes), "unknown dtype value 9");
  // Attributes and inputs that pass the range checks go through the shape rules.
  nodes = tiny_nodes();
  nodes[2].op = "conv2d";
  nodes[2].attrs = {{"stride", 5, {0, 1}}};
  expect_format_error(tiny_with_graph(nodes), "node 'y' (conv2d)");
}

TEST(FormatV2, UnknownSectionsAreKeptSkippedOrRefused) {
  Built b = build_tiny();
  const Bytes good = serialize_model(*b.graph, b.options);
  const std::string profile = "a training-data profile from a future Kiln";
  const Bytes profile_bytes(profile.begin(), profile.end());
  // An unknown user section (this reader knows nothing of "data_profile"): loads, kept.
  auto sections = sections_of(good);
  sections.insert(sections.begin() + 2, SectionView{"data_profile", 0, profile_bytes});
  const Bytes with_profile = with_sections(sections);
  const auto model = infer::Model::load(with_profile, "future.kiln");
  EXPECT_EQ(model.section_names(), std::vector<std::string>{"data_profile"});
  const auto got = model.section("data_profile");
  EXPECT_EQ(std::string(got.begin(), got.end()), profile);
  const auto y = model.run({{"x", Tensor::from({1.f, 1.f}, Shape{1, 2})}})[0];
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{5.f, 7.f, 9.f}));
  EXPECT_THROW((void)model.section("lineage"), NameError);
  // An optional kiln.* section this reader does not know: skipped, not exposed.
  sections = sections_of(good);
  sections.push_back({"kiln.quantization_hints", 0, profile_bytes});
  auto m = internal::decode_model(with_sections(sections), "future.kiln");
  EXPECT_TRUE(m.sections.empty());
  // A required section this reader does not know: refused, naming it.
  sections = sections_of(good);
  sections.push_back({"kiln.int8_weights", internal::section_required, profile_bytes});
  expect_format_error(with_sections(sections), "section 'kiln.int8_weights' is marked required");
  sections.back().name = "custom_required";
  expect_format_error(with_sections(sections), "section 'custom_required' is marked required");
  // Unknown flags, duplicate names, missing core sections, a section that overruns.
  sections = sections_of(good);
  sections.back().flags = 4;
  expect_format_error(with_sections(sections), "section 'kiln.provenance': unknown flags 4");
  sections = sections_of(good);
  sections.push_back(sections[1]);
  expect_format_error(with_sections(sections), "section 'kiln.signatures' appears twice");
  for (const char* core : {"kiln.graph", "kiln.signatures", "kiln.metadata", "kiln.weights"}) {
    sections = sections_of(good);
    std::erase_if(sections, [&](const SectionView& s) { return s.name == core; });
    expect_format_error(with_sections(sections), std::string("missing section '") + core + "'");
  }
  // Without provenance the model still loads (no creation time).
  sections = sections_of(good);
  sections.pop_back();
  EXPECT_EQ(internal::decode_model(with_sections(sections), "p").metadata.created, "");
  // Trailing bytes inside a core section.
  sections = sections_of(good);
  Bytes meta(sections[2].bytes.begin(), sections[2].bytes.end());
  meta.push_back(0);
  sections[2].bytes = meta;
  expect_format_error(with_sections(sections), "section 'kiln.metadata': 1 unexpected bytes");
}

TEST(FormatV2, UserSectionsRoundTripAndReservedNamesAreRefused) {
  Built b = build_tiny();
  b.options.sections["lineage"] = {1, 2, 3};
  b.options.sections["report"] = {};
  const auto model = infer::Model::load(serialize_model(*b.graph, b.options));
  EXPECT_EQ(model.section_names(), (std::vector<std::string>{"lineage", "report"}));
  EXPECT_TRUE(model.has_section("report"));
  EXPECT_FALSE(model.has_section("kiln.graph"));
  EXPECT_EQ(
      std::vector<std::uint8_t>(model.section("lineage").begin(), model.section("lineage").end()),
      (Bytes{1, 2, 3}));
  EXPECT_TRUE(model.section("report").empty());
  b.options.sections["kiln.graph"] = {1};
  EXPECT_THROW((void)serialize_model(*b.graph, b.options), ValueError);
  b.options.sections.erase("kiln.graph");
  b.options.sections[""] = {1};
  EXPECT_THROW((void)serialize_model(*b.graph, b.options), ValueError);
}

TEST(FormatV2, ContentHashIgnoresOnlyTheProvenance) {
  Built b = build_tiny();
  const Bytes first = serialize_model(*b.graph, b.options);
  const Bytes second = serialize_model(*b.graph, b.options);
  const std::string hash = model_content_hash(first);
  EXPECT_EQ(hash.size(), 64u);
  EXPECT_EQ(model_content_hash(second), hash);
  EXPECT_EQ(infer::Model::load(first).content_hash(), hash);
  // Another creation time and library version: a different file, the same content.
  auto sections = sections_of(first);
  ArchiveWriter prov;
  prov.string("1999-12-31T23:59:59Z");
  prov.string("9.9.9");
  const Bytes prov_bytes = prov.finish();
  sections[4].bytes = prov_bytes;
  const Bytes other_time = with_sections(sections);
  EXPECT_NE(internal::sha256(other_time), internal::sha256(first));
  EXPECT_EQ(model_content_hash(other_time), hash);
  EXPECT_EQ(internal::decode_model(other_time, "t").metadata.created, "1999-12-31T23:59:59Z");
  // The section order does not matter either.
  sections = sections_of(first);
  std::swap(sections[1], sections[3]);
  EXPECT_EQ(model_content_hash(with_sections(sections)), hash);
  // Anything else does: a weight, the metadata, a user section, a scope.
  b.graph->tensor(b.graph->find("w")).data<float>()[5] = 6.5f;
  const std::string w_hash = model_content_hash(serialize_model(*b.graph, b.options));
  EXPECT_NE(w_hash, hash);
  b.options.metadata.description = "changed";
  const std::string m_hash = model_content_hash(serialize_model(*b.graph, b.options));
  EXPECT_NE(m_hash, w_hash);
  b.options.sections["notes"] = {1};
  const std::string s_hash = model_content_hash(serialize_model(*b.graph, b.options));
  EXPECT_NE(s_hash, m_hash);
  b.graph->assign_scope(b.graph->find("y"), "head");
  EXPECT_NE(model_content_hash(serialize_model(*b.graph, b.options)), s_hash);
  // Version 1 files have none; bad bytes are FormatErrors naming the source.
  const auto v1 =
      internal::read_file((fs::path(KILN_TEST_DATA_DIR) / "golden_v1" / "mlp.kiln").string());
  EXPECT_EQ(model_content_hash(v1), "");
  EXPECT_EQ(infer::Model::load(v1).content_hash(), "");
  EXPECT_THROW((void)model_content_hash(Bytes(10, 0), "junk"), FormatError);
}

TEST(FormatV2, EveryTruncationAndBitFlipOfGoldenFilesIsAFormatError) {
  for (const char* name : {"mlp", "every_op"}) {
    const Bytes good = golden_bytes(name);
    const std::span<const std::uint8_t> payload(good.data() + 48, good.size() - 48);
    // Every payload truncation behind a valid checksum (every other byte for speed).
    for (std::size_t len = 0; len < payload.size(); len += 2) {
      const auto b = internal::wrap_envelope(internal::model_magic, 2, payload.first(len));
      try {
        (void)internal::decode_model(b, "cut.kiln");
        ADD_FAILURE() << name << " payload truncated to " << len << " bytes decoded";
      } catch (const FormatError& e) {
        ASSERT_EQ(std::string(e.what()).rfind("cut.kiln: ", 0), 0u) << e.what();
      }
    }
    // Bit flips behind a valid checksum: a valid model or a FormatError, nothing else.
    std::mt19937_64 rng(5);
    int rejected = 0;
    for (int i = 0; i < 500; ++i) {
      Bytes p(payload.begin(), payload.end());
      const auto bit = rng() % (p.size() * 8);
      p[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
      try {
        (void)internal::decode_model(internal::wrap_envelope(internal::model_magic, 2, p),
                                     "flip.kiln");
      } catch (const FormatError& e) {
        ++rejected;
        ASSERT_EQ(std::string(e.what()).rfind("flip.kiln: ", 0), 0u) << e.what();
      }
    }
    EXPECT_GT(rejected, 20) << name;
  }
}

// ---- load_graph and fine-tuning ----

TEST(LoadGraph, FineTuneSaveAndReloadRoundTrips) {
  // A small MLP, saved.
  Graph g;
  auto x = g.input("features", {batch, 4});
  auto h = nn::dense(g, x, 8, {.activation = nn::Activation::tanh, .name = "fc1"});
  auto logits = nn::dense(g, h, 3, {.name = "fc2"});
  auto probs = softmax(logits, -1, "probs");
  g.assign_scope(g.find("fc1.weight"), "fc1");
  SaveOptions opts{.inputs = {x}, .outputs = {probs, logits}, .output_names = {"p", "logits"}};
  opts.metadata.name = "tunable";
  opts.sections["lineage"] = {7};
  const Bytes saved = serialize_model(g, opts);

  // Reopened as a graph: parameters, flags, scopes, signatures.
  LoadedGraph lg = load_graph(saved, "tunable.kiln");
  Graph& lgg = *lg.graph;
  ASSERT_EQ(lgg.parameters().size(), 4u);
  EXPECT_TRUE(lgg.buffers().empty());
  EXPECT_EQ(lgg.find("fc1.weight").node().scope, "fc1");
  ASSERT_EQ(lg.inputs.size(), 1u);
  EXPECT_EQ(lg.inputs[0].name(), "features");
  EXPECT_EQ(lg.outputs.size(), 2u);
  EXPECT_EQ(lgg.tensor(lgg.find("fc2.weight")).to_vector<float>(),
            g.tensor(g.find("fc2.weight")).to_vector<float>());

  // Fine-tune: a loss on the loaded logits, SGD for a few steps.
  auto labels = lgg.input("labels", {batch}, i32);
  auto loss = softmax_cross_entropy(lg.outputs[1], labels, "loss");
  TrainStep step(loss);
  EXPECT_EQ(step.parameter_values().size(), 4u);
  optim::SGD opt(step.parameters(), {.lr = 0.2});
  Rng rng(5);
  Tensor features = uniform(rng, {16, 4}, -1, 1);
  std::vector<std::int32_t> ys(16);
  const auto fv = features.to_vector<float>();
  for (std::size_t i = 0; i < 16; ++i) ys[i] = fv[4 * i] > 0 ? (fv[4 * i + 1] > 0 ? 2 : 1) : 0;
  const Feeds batch_feeds{{"features", features}, {"labels", Tensor::from(ys, Shape{16})}};
  const double first = step.run(batch_feeds);
  double last = first;
  for (int i = 0; i < 30; ++i) {
    opt.step(step.gradients());
    last = step.run(batch_feeds);
  }
  EXPECT_LT(last, first * 0.9) << "first " << first << " last " << last;

  // Saved again with the same interface (the labels input is not needed by the outputs).
  const Bytes tuned = serialize_model(lgg, lg.save_options());
  const auto model = infer::Model::load(tuned, "tuned.kiln", {.backend = "reference"});
  EXPECT_EQ(model.inputs().size(), 1u);
  EXPECT_EQ(model.outputs()[0].name, "p");
  EXPECT_EQ(model.metadata().name, "tunable");
  EXPECT_EQ(model.section_names(), std::vector<std::string>{"lineage"});
  EXPECT_NE(model.content_hash(), model_content_hash(saved));  // the weights changed
  Executable exe(lgg, lg.outputs, {.backend = "reference"});
  const Feeds in{{"features", features}};
  const auto want = exe.run(in);
  const auto got = model.run(in);
  ASSERT_EQ(got.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k)
    EXPECT_EQ(got[k].to_vector<float>(), want[k].to_vector<float>()) << "output " << k;
  // ... and the fine-tuned model differs from the original.
  const auto before = infer::Model::load(saved, "saved", {.backend = "reference"}).run(in);
  EXPECT_NE(before[1].to_vector<float>(), got[1].to_vector<float>());
}

TEST(LoadGraph, ReadsVersion1FilesAndReportsBadOnes) {
  const auto path = (fs::path(KILN_TEST_DATA_DIR) / "golden_v1" / "cnn.kiln").string();
  LoadedGraph lg = load_graph(path);
  EXPECT_EQ(lg.format_version, 1u);
  EXPECT_EQ(lg.content_hash, "");
  EXPECT_EQ(lg.graph->buffers().size(), 2u);
  EXPECT_TRUE(lg.graph->find("conv1.weight").node().trainable);
  EXPECT_THROW(load_graph("/nonexistent/model.kiln"), IoError);
  try {
    load_graph(Bytes(60, 1), "junk.kiln");
    ADD_FAILURE() << "decoded junk";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("junk.kiln: ", 0), 0u) << e.what();
  }
}

// ---- preprocessing applied by infer::Model ----

TEST(Preprocessing, AppliedOnRequestMatchesHandNormalisedInput) {
  Built b = build_mlp();
  const Bytes bytes = serialize_model(*b.graph, b.options);
  const Normalization& norm = b.options.metadata.preprocessing[0];
  const Tensor raw = b.feeds[0][0].second;
  std::vector<float> by_hand = raw.to_vector<float>();
  for (std::size_t i = 0; i < by_hand.size(); ++i)
    by_hand[i] = (by_hand[i] - norm.mean[i % 8]) / norm.stddev[i % 8];
  const Tensor normalised = Tensor::from(by_hand, raw.shape());

  const auto plain = infer::Model::load(bytes, "mlp", {.backend = "reference"});
  const auto applying =
      infer::Model::load(bytes, "mlp", {.backend = "reference", .apply_preprocessing = true});
  const auto want = plain.run({{"pixels", normalised}});
  const auto got = applying.run({{"pixels", raw}});
  const auto unnormalised = plain.run({{"pixels", raw}});
  ASSERT_EQ(got.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    const auto g = got[k].to_vector<float>(), w = want[k].to_vector<float>();
    for (std::size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], w[i], 1e-6) << k << " " << i;
  }
  EXPECT_NE(unnormalised[1].to_vector<float>(), got[1].to_vector<float>());
  // The caller's tensor is not modified.
  EXPECT_EQ(raw.to_vector<float>(), b.feeds[0][0].second.to_vector<float>());
  // Feed checks still apply to the raw input.
  EXPECT_THROW(applying.run({{"pixels", Tensor::zeros({2, 7})}}), ShapeError);
}

TEST(Preprocessing, EntriesThatCannotApplyAreRefusedAtLoad) {
  Built b = build_mlp();
  b.options.metadata.preprocessing[0].input = "camera";
  const Bytes unknown = serialize_model(*b.graph, b.options);
  EXPECT_NO_THROW(infer::Model::load(unknown, "m"));  // not applied: not checked
  try {
    infer::Model::load(unknown, "m.kiln", {.apply_preprocessing = true});
    ADD_FAILURE() << "loaded";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("preprocessing for input 'camera'"), std::string::npos)
        << e.what();
  }
  b = build_mlp();
  b.options.metadata.preprocessing[0].mean.resize(5);
  b.options.metadata.preprocessing[0].stddev.resize(5);
  const Bytes short_norm = serialize_model(*b.graph, b.options);
  EXPECT_THROW(infer::Model::load(short_norm, "m", {.apply_preprocessing = true}), FormatError);
  // The v1 golden MLP records a preprocessing too: applying it is (x - 0.5) / 2.
  const auto v1 = (fs::path(KILN_TEST_DATA_DIR) / "golden_v1" / "mlp.kiln").string();
  const auto plain = infer::Model::load(v1, {.backend = "reference"});
  const auto applying =
      infer::Model::load(v1, {.backend = "reference", .apply_preprocessing = true});
  const Tensor raw = Tensor::full({2, 8}, 1.5);
  EXPECT_EQ(applying.run({{"pixels", raw}})[1].to_vector<float>(),
            plain.run({{"pixels", Tensor::full({2, 8}, 0.5)}})[1].to_vector<float>());
}

}  // namespace
}  // namespace kiln
