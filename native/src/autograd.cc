// Autograd from JS: backward, .grad, requires_grad, the grad-mode and inference-mode switches.
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/variable.h>

#include "grad_reducer.h"
#include "state.h"

namespace ts {

// backward(n, retainGraph, createGraph): buf[0..n) holds the output handles and buf[n..2n) their
// gradients (-1: none, which means ones for a scalar output).
Napi::Value Backward(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "backward", [&]() -> Napi::Value {
    const int64_t n = info[0].As<Napi::Number>().Int64Value();
    const bool retain = info[1].ToBoolean();
    const bool create = info[2].ToBoolean();
    if (n <= 0 || 2 * n > static_cast<int64_t>(kBufWords)) throw UserError("backward needs at least one tensor");
    std::vector<at::Tensor> outs, grads;
    for (int64_t i = 0; i < n; ++i) {
      outs.push_back(s.get(static_cast<int64_t>(s.buf[i])));
      const int64_t g = static_cast<int64_t>(s.buf[n + i]);
      grads.push_back(g < 0 ? at::Tensor() : s.get(g));
    }
    for (size_t i = 0; i < outs.size(); ++i) {
      if (!outs[i].requires_grad()) {
        throw UserError("element " + std::to_string(i) +
                        " of the tensors does not require grad and has no grad_fn (was it computed under noGrad(), or from tensors without requiresGrad?)");
      }
      if (!grads[i].defined() && outs[i].numel() != 1) {
        throw UserError("grad can be implicitly created only for scalar outputs; pass a gradient for a tensor of shape " +
                        c10::str(outs[i].sizes()));
      }
    }
    prepareArmedReducers(outs);
    torch::autograd::backward(outs, grads, retain, create);
    s.reportMemory(env);
    return env.Undefined();
  });
}

// grad(handle) -> handle of the accumulated gradient, or -1 when there is none.
Napi::Value Grad(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "grad", [&]() -> Napi::Value {
    const at::Tensor& t = s.get(info[0].As<Napi::Number>().Int64Value());
    const at::Tensor& g = t.grad();
    return Napi::Number::New(env, g.defined() ? s.put(g) : -1);
  });
}

// setGrad(handle, gradHandle | -1): replaces (or clears) the accumulated gradient.
Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "setGrad", [&]() -> Napi::Value {
    at::Tensor& t = s.get(info[0].As<Napi::Number>().Int64Value());
    const int64_t g = info[1].As<Napi::Number>().Int64Value();
    if (g < 0) {
      t.mutable_grad() = at::Tensor();
    } else {
      const at::Tensor& gt = s.get(g);
      if (!gt.sizes().equals(t.sizes())) {
        throw UserError("gradient shape " + c10::str(gt.sizes()) + " does not match tensor shape " + c10::str(t.sizes()));
      }
      t.mutable_grad() = gt;
    }
    return env.Undefined();
  });
}

// setRequiresGrad(handle, flag)
Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "requiresGrad", [&]() -> Napi::Value {
    at::Tensor& t = s.get(info[0].As<Napi::Number>().Int64Value());
    t.requires_grad_(info[1].ToBoolean());
    return env.Undefined();
  });
}

// setGradEnabled(flag) -> previous flag
Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  const bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].ToBoolean());
  return Napi::Boolean::New(info.Env(), prev);
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

// Inference mode is a RAII guard in libtorch; JS enters and exits it in strict LIFO order.
Napi::Value InferenceEnter(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  s.inferenceGuards.push_back(std::make_unique<c10::InferenceMode>(true));
  return Napi::Number::New(info.Env(), static_cast<double>(s.inferenceGuards.size()));
}

Napi::Value InferenceExit(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  if (s.inferenceGuards.empty()) throw Napi::Error::New(info.Env(), "inference mode exited more often than entered");
  s.inferenceGuards.pop_back();
  return Napi::Number::New(info.Env(), static_cast<double>(s.inferenceGuards.size()));
}

Napi::Value IsInferenceMode(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::InferenceMode::is_enabled());
}

}  // namespace ts
