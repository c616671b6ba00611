// Everything a training program needs: core types, graphs, ops, autodiff, runtime,
// layers, optimizers and model files.
#pragma once

#include "kiln/autodiff.hpp"
#include "kiln/core/dtype.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/graph/op.hpp"
#include "kiln/io/load_graph.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/summary.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/train_step.hpp"
#include "kiln/version.hpp"
