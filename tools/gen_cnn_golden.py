#!/usr/bin/python3
"""Writes tests/data/cnn_golden.txt: CNN op results computed by PyTorch in float64.

Run with Debian's python3 (which has python3-torch):  /usr/bin/python3 tools/gen_cnn_golden.py

Each case names a Kiln op, its attributes, its inputs and the expected output, computed
with torch.nn.functional (forward ops) or torch.autograd (the backward ops: the gradient of
sum(gy * f(...)) with respect to the weights or the input). Configurations are deliberately
odd: non-square inputs and kernels, stride 2, padding, dilation 2, groups 2, depthwise,
batch 1, output_padding. All numbers are float64, printed to round-trip exactly; eps and
momentum are chosen to be exact in float32 (Kiln stores them as float).

Format (one record per line, '#' starts a comment line):
  case <name> <kiln op name>
  attr <key> <values...>        kernel, stride, padding, dilation, output_padding (2 ints each),
                                groups, include_pad, post_op (0 none / 1 relu), training (0/1),
                                eps, momentum
  tensor <role> <rank> <dims...> <values...>
                                role: in0, in1, ... (the op's inputs, in order), out (the
                                expected output), running_mean, running_var (batch_norm's
                                buffers after the run)
  end
"""

import os
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
GEN = torch.Generator().manual_seed(20240611)

EPS = 2.0**-10  # exact in float32
MOMENTUM = 0.25


def rand(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float64)


def fmt(v):
    return repr(float(v))


class Writer:
    def __init__(self):
        self.lines = []

    def case(self, name, op, attrs, inputs, outputs):
        self.lines.append(f"case {name} {op}")
        for key, value in attrs.items():
            if isinstance(value, (tuple, list)):
                self.lines.append(f"attr {key} " + " ".join(str(int(v)) for v in value))
            elif isinstance(value, bool):
                self.lines.append(f"attr {key} {int(value)}")
            elif isinstance(value, int):
                self.lines.append(f"attr {key} {value}")
            else:
                self.lines.append(f"attr {key} {fmt(value)}")
        for i, t in enumerate(inputs):
            self.tensor(f"in{i}", t)
        for role, t in outputs.items():
            self.tensor(role, t)
        self.lines.append("end")

    def tensor(self, role, t):
        t = t.detach().contiguous()
        dims = " ".join(str(d) for d in t.shape)
        values = " ".join(fmt(v) for v in t.reshape(-1).tolist())
        self.lines.append(f"tensor {role} {t.dim()} {dims} {values}")


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# name, x shape, w shape, bias?, stride, padding, dilation, groups, relu
CONV2D = [
    ("basic", (2, 3, 5, 7), (4, 3, 3, 2), True, 1, 0, 1, 1, False),
    ("batch1_stride21_pad12", (1, 2, 7, 6), (3, 2, 3, 3), True, (2, 1), (1, 2), 1, 1, False),
    ("dilation2_stride12", (2, 2, 9, 8), (2, 2, 3, 3), False, (1, 2), 1, (2, 2), 1, False),
    ("dilation21", (2, 3, 7, 6), (2, 3, 2, 3), True, 1, (0, 1), (2, 1), 1, False),
    ("groups2_stride2_pad1", (2, 4, 6, 7), (6, 2, 2, 3), True, 2, 1, 1, 2, False),
    ("depthwise_relu", (2, 3, 5, 6), (3, 1, 3, 3), True, 1, 1, 1, 3, True),
    ("depthwise_mult2_stride2", (1, 2, 7, 5), (4, 1, 3, 2), False, 2, (1, 0), 1, 2, False),
]

# name, x shape, w shape [Ci, Co/g, kh, kw], bias?, stride, padding, dilation, groups,
# output_padding, relu
CONV_T = [
    ("basic", (2, 3, 4, 5), (3, 2, 3, 2), True, 1, 0, 1, 1, 0, False),
    ("batch1_stride23_outpad", (1, 2, 3, 4), (2, 3, 3, 3), True, (2, 3), (1, 0), 1, 1, (1, 2),
     False),
    ("groups2_dilation21", (2, 4, 3, 4), (4, 3, 2, 3), True, 2, 1, (2, 1), 2, (1, 0), False),
    ("depthwise_relu", (2, 3, 4, 3), (3, 1, 3, 3), True, 2, 1, 1, 3, (1, 1), True),
    ("dilation2_nobias", (1, 2, 4, 4), (2, 2, 2, 3), False, 1, (1, 2), 2, 1, 0, False),
]

# name, x shape, kernel, stride, padding
POOL = [
    ("k2_s2", (2, 3, 6, 7), 2, 2, 0),
    ("batch1_k32_s21_pad1", (1, 2, 7, 5), (3, 2), (2, 1), 1),
    ("overlap_k3_s1_pad1", (2, 2, 5, 6), 3, 1, 1),
    ("k23_s32_pad01", (1, 3, 8, 7), (2, 3), (3, 2), (0, 1)),
]


def conv_cases(w):
    for name, xs, ws, bias, stride, pad, dil, groups, relu in CONV2D:
        x, wt = rand(*xs), rand(*ws)
        b = rand(ws[0]) if bias else None
        attrs = dict(stride=pair(stride), padding=pair(pad), dilation=pair(dil), groups=groups,
                     post_op=int(relu))
        y = F.conv2d(x, wt, b, stride, pad, dil, groups)
        if relu:
            y = torch.relu(y)
        inputs = [x, wt] + ([b] if bias else [])
        w.case("conv2d_" + name, "conv2d", attrs, inputs, {"out": y})

        # Weight gradient: d(sum(gy * conv2d(x, w)))/dw (no bias, no relu in the op).
        wg = wt.clone().requires_grad_(True)
        y = F.conv2d(x, wg, None, stride, pad, dil, groups)
        gy = rand(*y.shape)
        y.backward(gy)
        battrs = dict(kernel=ws[2:], stride=pair(stride), padding=pair(pad),
                      dilation=pair(dil), groups=groups)
        w.case("conv2d_backward_weights_" + name, "conv2d_backward_weights", battrs, [x, gy],
               {"out": wg.grad})

    for name, xs, ws, bias, stride, pad, dil, groups, outpad, relu in CONV_T:
        x, wt = rand(*xs), rand(*ws)
        b = rand(ws[1] * groups) if bias else None
        y = F.conv_transpose2d(x, wt, b, stride, pad, outpad, groups, dil)
        if relu:
            y = torch.relu(y)
        attrs = dict(stride=pair(stride), padding=pair(pad), dilation=pair(dil), groups=groups,
                     output_padding=pair(outpad), post_op=int(relu))
        inputs = [x, wt] + ([b] if bias else [])
        w.case("conv_transpose2d_" + name, "conv_transpose2d", attrs, inputs, {"out": y})


def pool_cases(w):
    for name, xs, k, stride, pad in POOL:
        for ties in (False, True):
            if ties and name != "overlap_k3_s1_pad1" and name != "k2_s2":
                continue
            # With ties, x holds small integers so that windows have several maxima.
            x = torch.randint(0, 3, xs, generator=GEN).to(torch.float64) if ties else rand(*xs)
            suffix = "_ties" if ties else ""
            attrs = dict(kernel=pair(k), stride=pair(stride), padding=pair(pad))
            xg = x.clone().requires_grad_(True)
            y = F.max_pool2d(xg, k, stride, pad)
            gy = rand(*y.shape)
            y.backward(gy)
            w.case("max_pool2d_" + name + suffix, "max_pool2d", attrs, [x], {"out": y})
            w.case("max_pool2d_backward_" + name + suffix, "max_pool2d_backward", attrs, [x, gy],
                   {"out": xg.grad})
        for include_pad in (True, False):
            x = rand(*xs)
            attrs = dict(kernel=pair(k), stride=pair(stride), padding=pair(pad),
                         include_pad=include_pad)
            xg = x.clone().requires_grad_(True)
            y = F.avg_pool2d(xg, k, stride, pad, ceil_mode=False, count_include_pad=include_pad)
            gy = rand(*y.shape)
            y.backward(gy)
            tag = "_include_pad" if include_pad else "_exclude_pad"
            w.case("avg_pool2d_" + name + tag, "avg_pool2d", attrs, [x], {"out": y})
            w.case("avg_pool2d_backward_" + name + tag, "avg_pool2d_backward", attrs, [x, gy],
                   {"out": xg.grad})


def batch_norm_cases(w):
    for name, xs in (("nchw", (3, 4, 5, 2)), ("nc", (5, 3)), ("batch1_nchw", (1, 2, 3, 4))):
        c = xs[1]
        x = rand(*xs) * 1.5 + 0.7
        gamma, beta = rand(c), rand(c)
        rm = rand(c)
        rv = rand(c).abs() + 0.5
        attrs = dict(eps=EPS, momentum=MOMENTUM, training=1)
        rm_after, rv_after = rm.clone(), rv.clone()
        xg = x.clone().requires_grad_(True)
        y = F.batch_norm(xg, rm_after, rv_after, gamma, beta, training=True, momentum=MOMENTUM,
                         eps=EPS)
        gy = rand(*xs)
        y.backward(gy)
        w.case("batch_norm_train_" + name, "batch_norm", attrs, [x, gamma, beta, rm, rv],
               {"out": y, "running_mean": rm_after, "running_var": rv_after})
        w.case("batch_norm_backward_" + name, "batch_norm_backward", dict(eps=EPS),
               [x, gamma, gy], {"out": xg.grad})

        attrs = dict(eps=EPS, momentum=MOMENTUM, training=0)
        rm_eval, rv_eval = rm.clone(), rv.clone()
        y = F.batch_norm(x, rm_eval, rv_eval, gamma, beta, training=False, momentum=MOMENTUM,
                         eps=EPS)
        w.case("batch_norm_eval_" + name, "batch_norm", attrs, [x, gamma, beta, rm, rv],
               {"out": y, "running_mean": rm_eval, "running_var": rv_eval})


def upsample_cases(w):
    for name, xs, scale in (("s32", (2, 3, 4, 5), (3, 2)), ("batch1_s13", (1, 2, 3, 2), (1, 3))):
        x = rand(*xs)
        y = F.interpolate(x, scale_factor=scale, mode="nearest")
        w.case("upsample_nearest2d_" + name, "upsample_nearest2d", dict(stride=scale), [x],
               {"out": y})


def main():
    w = Writer()
    conv_cases(w)
    pool_cases(w)
    batch_norm_cases(w)
    upsample_cases(w)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "tests", "data", "cnn_golden.txt")
    with open(path, "w") as f:
        f.write(f"# Generated by tools/gen_cnn_golden.py with torch {torch.__version__}; "
                "do not edit.\n")
        f.write("\n".join(w.lines) + "\n")
    print(f"wrote {sum(1 for l in w.lines if l.startswith('case '))} cases to {path}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
