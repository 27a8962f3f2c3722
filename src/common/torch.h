// The one tensor header the project includes: ATen (tensors, ops) plus autograd
// (custom functions, torch::autograd::grad). <torch/torch.h> would also bring the
// nn/optim front-end, which we don't use, at three times the compile cost.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/generated/variable_factories.h>
