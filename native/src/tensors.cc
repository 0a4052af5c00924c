// Tensors in and out of JS memory, their metadata, and handle lifetime.
#include <cstring>

#include <torch/csrc/autograd/function.h>

#include "state.h"

namespace ts {

// fromBytes(arrayBuffer, byteOffset, byteLength, dtypeCode, shape[]) -> handle (a CPU tensor that
// owns a copy of the bytes).
Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  if (info.Length() != 5 || !info[0].IsArrayBuffer() || !info[4].IsArray()) {
    throw Napi::TypeError::New(env, "fromBytes(arrayBuffer, byteOffset, byteLength, dtype, shape)");
  }
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  const int64_t offset = info[1].As<Napi::Number>().Int64Value();
  const int64_t length = info[2].As<Napi::Number>().Int64Value();
  if (offset < 0 || length < 0 || static_cast<size_t>(offset + length) > ab.ByteLength()) {
    throw Napi::RangeError::New(env, "fromBytes: byte range outside the buffer");
  }
  return guarded(env, "fromBytes", [&]() -> Napi::Value {
    const at::ScalarType dtype = scalarTypeFromCode(info[3].As<Napi::Number>().Int64Value());
    Napi::Array shapeArr = info[4].As<Napi::Array>();
    std::vector<int64_t> shape(shapeArr.Length());
    int64_t numel = 1;
    for (uint32_t i = 0; i < shapeArr.Length(); ++i) {
      const double d = shapeArr.Get(i).As<Napi::Number>().DoubleValue();
      if (!(d >= 0) || d != static_cast<double>(static_cast<int64_t>(d))) {
        throw UserError("shape entries must be non-negative integers");
      }
      shape[i] = static_cast<int64_t>(d);
      numel *= shape[i];
    }
    const int64_t itemsize = static_cast<int64_t>(c10::elementSize(dtype));
    if (numel * itemsize != length) {
      throw UserError("data holds " + std::to_string(length) + " bytes but shape " + c10::str(at::IntArrayRef(shape)) +
                      " of " + std::string(c10::toString(dtype)) + " needs " + std::to_string(numel * itemsize));
    }
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (length > 0) std::memcpy(t.data_ptr(), static_cast<uint8_t*>(ab.Data()) + offset, static_cast<size_t>(length));
    const int32_t id = s.put(std::move(t));
    s.reportMemory(env);
    return Napi::Number::New(env, id);
  });
}

// toBytes(handle) -> ArrayBuffer holding a copy of the elements in row-major order (on the CPU).
Napi::Value ToBytes(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "toBytes", [&]() -> Napi::Value {
    at::Tensor t = s.get(info[0].As<Napi::Number>().Int64Value());
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const size_t n = c.numel() * c.element_size();
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(env, n);
    if (n > 0) std::memcpy(out.Data(), c.data_ptr(), n);
    return out;
  });
}

// meta(handle) -> ndim, with [dtype, deviceType, deviceIndex, requiresGrad, isLeaf, ndim, sizes...]
// written from buf[0].
napi_value Meta(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  State& s = *static_cast<State*>(data);
  try {
    int64_t id = -1;
    napi_get_value_int64(env, argv[0], &id);
    const at::Tensor& t = s.get(id);
    double* b = s.buf;
    const int64_t nd = t.dim();
    if (nd + 6 > static_cast<int64_t>(kBufWords)) throw UserError("tensor has too many dimensions");
    b[0] = static_cast<double>(static_cast<int>(t.scalar_type()));
    b[1] = static_cast<double>(static_cast<int>(t.device().type()));
    b[2] = t.device().has_index() ? t.device().index() : -1;
    b[3] = t.requires_grad() ? 1 : 0;
    b[4] = t.is_leaf() ? 1 : 0;
    b[5] = static_cast<double>(nd);
    const auto sizes = t.sizes();
    for (int64_t i = 0; i < nd; ++i) b[6 + i] = static_cast<double>(sizes[i]);
    napi_value out;
    napi_create_int32(env, static_cast<int32_t>(nd), &out);
    return out;
  } catch (...) {
    throwJs(env, "meta");
    return nullptr;
  }
}

// strides(handle) -> ndim, with the strides written from buf[0].
Napi::Value Strides(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "strides", [&]() -> Napi::Value {
    const at::Tensor& t = s.get(info[0].As<Napi::Number>().Int64Value());
    const auto st = t.strides();
    for (size_t i = 0; i < st.size(); ++i) s.buf[i] = static_cast<double>(st[i]);
    return Napi::Number::New(env, static_cast<double>(st.size()));
  });
}

// release(handle): frees the tensor and its handle; release(-1 - handle) frees the tensor but keeps
// the handle as a zombie until a later release(handle). Unknown or free handles are ignored.
napi_value Release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  State& s = *static_cast<State*>(data);
  int64_t id = 0;
  napi_get_value_int64(env, argv[0], &id);
  if (id >= 0) {
    s.release(id);
  } else {
    s.zombie(-1 - id);
  }
  s.reportMemory(env);
  return nullptr;
}

// releaseMany(n): buf[0..n) holds handles; id >= 0 frees the slot, -1 - id makes it a zombie
// (tensor freed, slot kept until its finalizer calls release).
napi_value ReleaseMany(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* data;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  State& s = *static_cast<State*>(data);
  int64_t n = 0;
  napi_get_value_int64(env, argv[0], &n);
  if (n < 0 || n > static_cast<int64_t>(kBufWords)) n = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = static_cast<int64_t>(s.buf[i]);
    if (v >= 0) {
      s.release(v);
    } else {
      s.zombie(-1 - v);
    }
  }
  s.reportMemory(env);
  return nullptr;
}

// setScopeDepth(n): the number of open tidy() scopes (see State::scopeDepth).
Napi::Value SetScopeDepth(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  s.scopeDepth = static_cast<int32_t>(info[0].As<Napi::Number>().Int32Value());
  s.reportMemory(info.Env());
  return info.Env().Undefined();
}

// gradFn(handle) -> name of the autograd node that produced the tensor, or null.
Napi::Value GradFnName(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "gradFn", [&]() -> Napi::Value {
    const at::Tensor& t = s.get(info[0].As<Napi::Number>().Int64Value());
    const auto& fn = t.grad_fn();
    if (!fn) return env.Null();
    return Napi::String::New(env, fn->name());
  });
}

}  // namespace ts
