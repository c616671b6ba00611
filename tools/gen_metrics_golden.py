#!/usr/bin/python3
"""Writes tests/data/metrics_golden.txt: classification and regression metrics computed by
scikit-learn, for tests/metrics_test.cpp.

Run with Debian's python3 (python3-sklearn):  /usr/bin/python3 tools/gen_metrics_golden.py

Inputs are fixed pseudo-random cases (numpy RandomState seeds), stored in the file with the
values; every number is printed to round-trip exactly.

Format (one record per line, '#' starts a comment line):
  case <name>
  pred <dtype> <rank> <dims...> <values...>      dtype: f32 | f64 | i64
  target <dtype> <rank> <dims...> <values...>
  value <metric> <v>        kiln::metrics::compute(metric, pred, target); "log_loss_direct"
                            is kiln::metrics::log_loss(pred, target)
  vector <key> <values...>  key: confusion (row-major [true][pred]), precision, recall, f1,
                            support (precision_recall_f1(confusion_matrix(pred, target)))
  end
Classification metrics use labels=range(C), C = score columns (2 for one logit column) or
one more than the largest class: every class counts, present or not.
"""

import os
import sys

import numpy as np
import sklearn
from sklearn import metrics as skm

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                   "metrics_golden.txt")


def fmt(v):
    return repr(float(v))


def tensor_line(kind, arr, dtype):
    arr = np.asarray(arr)
    vals = " ".join(str(int(v)) if dtype == "i64" else fmt(v) for v in arr.reshape(-1))
    dims = " ".join(str(d) for d in arr.shape)
    return f"{kind} {dtype} {arr.ndim} {dims} {vals}"


def softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def classification(lines, name, pred, pred_dtype, y, with_log_loss=True, topk=()):
    """pred: scores [N, C], one logit column [N] / [N, 1], or classes [N] (i64)."""
    pred = np.asarray(pred)
    y = np.asarray(y)
    if pred_dtype == "i64":
        y_pred = pred.reshape(-1)
        c = int(max(y.max(), y_pred.max())) + 1
    elif pred.ndim == 1 or pred.shape[1] == 1:
        y_pred = (pred.reshape(-1) > 0).astype(np.int64)
        c = 2
    else:
        y_pred = np.argmax(pred, axis=1)  # the first on ties
        c = pred.shape[1]
    labels = list(range(c))
    lines.append(f"case {name}")
    lines.append(tensor_line("pred", pred, pred_dtype))
    lines.append(tensor_line("target", y, "i64"))
    lines.append(f"value accuracy {fmt(skm.accuracy_score(y, y_pred))}")
    for k in topk:
        v = skm.top_k_accuracy_score(y, pred, k=k, labels=labels)
        lines.append(f"value top{k}_accuracy {fmt(v)}")
    cm = skm.confusion_matrix(y, y_pred, labels=labels)
    lines.append("vector confusion " + " ".join(str(int(v)) for v in cm.reshape(-1)))
    p, r, f, s = skm.precision_recall_fscore_support(y, y_pred, labels=labels, zero_division=0)
    for key, v in (("precision", p), ("recall", r), ("f1", f)):
        lines.append(f"vector {key} " + " ".join(fmt(x) for x in v))
    lines.append("vector support " + " ".join(str(int(x)) for x in s))
    for avg in ("macro", "micro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, y_pred, labels=labels, average=avg,
                                                         zero_division=0)
        lines.append(f"value precision_{avg} {fmt(p)}")
        lines.append(f"value recall_{avg} {fmt(r)}")
        lines.append(f"value f1_{avg} {fmt(f)}")
    f = skm.f1_score(y, y_pred, labels=labels, average="weighted", zero_division=0)
    lines.append(f"value f1_weighted {fmt(f)}")
    if with_log_loss and pred_dtype != "i64":
        scores = pred.astype(np.float64)
        if scores.ndim == 1 or scores.shape[1] == 1:
            prob = 1 / (1 + np.exp(-scores.reshape(-1)))
        elif (scores >= 0).all() and (scores <= 1).all() and \
                (np.abs(scores.sum(axis=1) - 1) <= 1e-6).all():
            prob = scores  # already probabilities: used as they are
        else:
            prob = softmax(scores)
        lines.append(f"value log_loss {fmt(skm.log_loss(y, prob, eps=1e-15, labels=labels))}")
    lines.append("end")


def probabilities(lines, name, prob, y):
    prob = np.asarray(prob, dtype=np.float64)
    labels = [0, 1] if prob.ndim == 1 or prob.shape[1] == 1 else list(range(prob.shape[1]))
    lines.append(f"case {name}")
    lines.append(tensor_line("pred", prob, "f64"))
    lines.append(tensor_line("target", y, "i64"))
    lines.append(f"value log_loss_direct {fmt(skm.log_loss(y, prob, eps=1e-15, labels=labels))}")
    lines.append("end")


def regression(lines, name, pred, target, dtype="f64"):
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    lines.append(f"case {name}")
    lines.append(tensor_line("pred", pred, dtype))
    lines.append(tensor_line("target", target, dtype))
    p2 = pred if pred.shape == target.shape else pred.reshape(-1)
    t2 = target if pred.shape == target.shape else target.reshape(-1)
    lines.append(f"value mse {fmt(skm.mean_squared_error(t2, p2))}")
    lines.append(f"value mae {fmt(skm.mean_absolute_error(t2, p2))}")
    lines.append(f"value r2 {fmt(skm.r2_score(t2, p2))}")
    lines.append("end")


def main():
    lines = [f"# Metrics golden values from scikit-learn {sklearn.__version__} "
             f"(numpy {np.__version__}), float64.",
             "# Generated by tools/gen_metrics_golden.py; do not edit."]

    rs = np.random.RandomState(1)
    logits = rs.normal(size=(40, 4))
    logits[:, 3] -= 10  # class 3 is never predicted
    y = rs.randint(0, 4, 40)
    assert (y == 3).any() and not (np.argmax(logits, axis=1) == 3).any()
    classification(lines, "multiclass_unpredicted_class", logits, "f64", y, topk=(1, 2, 3, 4))

    rs = np.random.RandomState(2)
    scores = rs.randint(0, 3, (30, 5)).astype(np.float64)  # many ties
    y = rs.randint(0, 5, 30)
    classification(lines, "topk_ties", scores, "f64", y, topk=(1, 2, 3, 5))

    rs = np.random.RandomState(3)
    logits = rs.normal(scale=2.0, size=50)
    y = rs.randint(0, 2, 50)
    classification(lines, "binary_logits", logits, "f64", y)

    rs = np.random.RandomState(4)
    logits = rs.normal(size=(25, 1)).astype(np.float32)
    y = rs.randint(0, 2, 25)
    classification(lines, "binary_logit_column_f32", logits, "f32", y)

    rs = np.random.RandomState(5)
    y = rs.randint(0, 4, 30)  # class 4 is predicted but never a label
    classes = rs.randint(0, 5, 30)
    classes[classes == 2] = 4  # class 2 is never predicted
    classification(lines, "given_classes", classes, "i64", y)

    rs = np.random.RandomState(6)
    prob = rs.dirichlet([1.0, 0.5, 2.0], size=20)
    prob[0] = [1.0, 0.0, 0.0]  # clipping: log(0) would be infinite
    prob[1] = [0.0, 0.0, 1.0]
    y = rs.randint(0, 3, 20)
    y[0], y[1] = 1, 2
    probabilities(lines, "probabilities_with_zeros", prob, y)
    classification(lines, "probability_scores", prob, "f64", y, topk=(2,))

    rs = np.random.RandomState(7)
    p1 = rs.uniform(size=30)
    p1[0], p1[1] = 0.0, 1.0
    y = rs.randint(0, 2, 30)
    y[0], y[1] = 1, 0
    probabilities(lines, "binary_probabilities", p1, y)

    rs = np.random.RandomState(8)
    target = rs.normal(size=(60, 1)) * 3 + 1
    pred = target.reshape(-1) + rs.normal(size=60)
    regression(lines, "regression", pred, target)

    rs = np.random.RandomState(9)
    target = rs.normal(size=(40, 3)) * np.array([1.0, 10.0, 0.1])
    pred = target + rs.normal(size=(40, 3)) * np.array([0.5, 3.0, 0.2])
    regression(lines, "regression_multioutput", pred, target)

    target = np.full(20, 2.5)
    regression(lines, "regression_constant_exact", target.copy(), target)
    rs = np.random.RandomState(10)
    regression(lines, "regression_constant_inexact", target + rs.normal(size=20) * 0.1, target)

    rs = np.random.RandomState(11)
    target = rs.normal(size=33).astype(np.float32).astype(np.float64)
    pred = (target + rs.normal(size=33) * 0.3).astype(np.float32).astype(np.float64)
    regression(lines, "regression_f32", pred, target, dtype="f32")

    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
