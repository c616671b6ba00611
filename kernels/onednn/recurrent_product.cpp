// The oneDNN side of the recurrent kernels: the per-step product of lstm, gru and their
// backward primitives as one dnnl::matmul whose weights (w_hh, or its transpose going
// forward) are reordered into oneDNN's packed layout once per call and reused by every
// step; the step loops and gate passes are the Eigen kernels' (eigen::lstm_steps, ...).
// Eigen's GEMM repacks w_hh at every step: at W6's shape (B 32, H 256, one core of an
// AMD EPYC with AVX-512) a forward step product took 237 us with Eigen and 147 us here, a
// backward one 213 and 149 us. Built into kiln_infer and, for the training kernels, into
// kiln's helper objects (src/CMakeLists.txt).
#include <memory>
#include <string>

#include "internal/recurrent_geometry.hpp"
#include "kernels/onednn/onednn_common.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal::onednn {
namespace {

/// What prepare() makes once per compiled plan.
struct RecurrentPlan {
  dnnl::matmul matmul;
  dnnl::memory::desc a, w_plain, w_packed, c;
  dnnl::reorder pack;  ///< empty when oneDNN takes w_plain as it is
};

bool runs_gradient(Op op) { return op == Op::lstm_backward || op == Op::gru_backward; }

/// The product of one step for these shapes; false and *why when it is not ours to run.
bool describe(const KernelQuery& q, std::string* why, dnnl::matmul::primitive_desc* pd,
              RecurrentPlan* plan) {
  // Every input but the optional integer lengths is f32.
  const std::size_t fixed = recurrent_geometry(q.node.op).fixed;
  for (std::size_t i = 0; i < q.inputs.size() && i < fixed; ++i)
    if (q.inputs[i].dtype != DType::f32) return decline(why, "onednn kernels handle f32 only");
  if (q.output.dtype != DType::f32) return decline(why, "onednn kernels handle f32 only");
  RecurrentGeometry g;
  if (const char* problem = recurrent_problem(q.node, q.inputs, q.output, &g))
    return decline(why, problem);
  const std::int64_t rows = g.batch, hid = g.hidden, width = g.gates * g.hidden;
  const bool backward = runs_gradient(q.node.op);
  const std::int64_t k = backward ? width : hid, n = backward ? hid : width;
  const auto f32 = dnnl::memory::data_type::f32;
  plan->a = plain_desc({rows, k});
  plan->c = plain_desc({rows, n});
  // w_hh is [G*H, H] row-major: as [K, N] it is itself backward, its transpose forward.
  plan->w_plain = dnnl::memory::desc(
      {k, n}, f32, backward ? dnnl::memory::dims{n, 1} : dnnl::memory::dims{1, k});
  const dnnl::memory::desc w_any({k, n}, f32, dnnl::memory::format_tag::any);
  dnnl::primitive_attr attr;
  if (backward) {  // c += a x w_hh
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  *pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(plan->a, w_any, plan->c), attr, engine(),
                                     true);
  if (!*pd) return decline(why, "oneDNN has no matmul for this step product");
  plan->w_packed = pd->weights_desc();
  return true;
}

std::shared_ptr<RecurrentPlan> make_plan(const KernelQuery& q) {
  std::string why;
  try {
    auto plan = std::make_shared<RecurrentPlan>();
    dnnl::matmul::primitive_desc pd;
    if (describe(q, &why, &pd, plan.get())) {
      plan->matmul = dnnl::matmul(pd);
      if (plan->w_packed != plan->w_plain)
        plan->pack = dnnl::reorder(
            dnnl::reorder::primitive_desc(engine(), plan->w_plain, engine(), plan->w_packed));
      return plan;
    }
  } catch (const dnnl::error& e) {
    why = std::string("oneDNN: ") + e.what();
  }
  throw Error("onednn kernel for " + std::string(op_name(q.node.op)) + " node '" + q.node.name +
              "': " + why);
}

/// One step: c (+)= a x w through the plan's matmul over the packed weights.
class OnednnProduct final : public eigen::StepProduct {
 public:
  OnednnProduct(const RecurrentPlan& plan, const dnnl::memory& w)
      : plan_(plan),
        w_(w),
        a_(plan.a, engine(), DNNL_MEMORY_NONE),
        c_(plan.c, engine(), DNNL_MEMORY_NONE) {}
  void operator()(const float* a, float* c) const override {
    a_.set_data_handle(const_cast<float*>(a));
    c_.set_data_handle(c);
    dnnl::stream& s = stream();
    plan_.matmul.execute(s, {{DNNL_ARG_SRC, a_}, {DNNL_ARG_WEIGHTS, w_}, {DNNL_ARG_DST, c_}});
    s.wait();
  }

 private:
  const RecurrentPlan& plan_;
  dnnl::memory w_, a_, c_;
};

}  // namespace

bool supports_recurrent(const KernelQuery& q, std::string* why) {
  // The policy (declined here only, so tests can force small cases through prepare()).
  const std::span<const TensorDesc> in = q.inputs;
  const bool backward = runs_gradient(q.node.op);
  if (in.size() > 2 && in[0].shape.rank() == 3 && in[backward ? 2 : 1].shape.rank() == 2) {
    const Shape& w = in[backward ? 2 : 1].shape;
    if (in[0].shape[0] * w[0] * w[1] < min_matmul_macs)
      return decline(why, "small step products: the eigen kernel is faster");
  }
  try {
    dnnl::matmul::primitive_desc pd;
    RecurrentPlan plan;
    return describe(q, why, &pd, &plan);
  } catch (const dnnl::error& e) {
    return decline(why, std::string("oneDNN: ") + e.what());
  }
}

std::shared_ptr<void> prepare_recurrent(const KernelQuery& q) { return make_plan(q); }

void run_recurrent(const KernelArgs& args, StepLoops loops) {
  std::shared_ptr<RecurrentPlan> owned;
  const RecurrentPlan* plan = static_cast<const RecurrentPlan*>(args.state);
  if (plan == nullptr) {
    const CallQuery call(args);
    owned = make_plan(call.query());
    plan = owned.get();
  }
  const Tensor& w = args.inputs[runs_gradient(args.node.op) ? 2 : 1];
  dnnl::memory plain(plan->w_plain, engine(), const_cast<float*>(w.data<float>()));
  dnnl::memory packed = plain;
  if (plan->pack) {  // a buffer per call: runs of one plan on several threads stay apart
    packed = dnnl::memory(plan->w_packed, engine());
    dnnl::stream& s = stream();
    plan->pack.execute(s, plain, packed);
    s.wait();
  }
  loops(args, OnednnProduct(*plan, packed));
}

}  // namespace kiln::internal::onednn
