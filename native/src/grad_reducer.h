// What autograd's backward tells the gradient reducers (grad_reducer.cc) before it runs.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace ts {

// Marks ready, in every armed reducer, the parameters a backward from `outputs` cannot reach.
void prepareArmedReducers(const std::vector<at::Tensor>& outputs);

}  // namespace ts
