// Per-environment state of the addon: the tensor handle table, the cached operator handles, the
// interned strings, the generators and the shared argument buffer through which JS passes operands.
//
// A JS tensor is an integer handle into `slots`. The C++ side knows nothing about JS objects or the
// garbage collector: the JS side tells it when a handle dies (dispose, scope end, or a
// FinalizationRegistry callback). Handles are per Node environment, so worker threads each get
// their own table.
#pragma once

#include <napi.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/InlineDeviceGuard.h>
#include <torch/csrc/autograd/InferenceMode.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace ts {

// Tags of the argument/result encoding in the shared Float64 buffer. Keep in sync with
// src/core/native.ts.
enum Tag : int {
  T_NONE = 0,
  T_TENSOR = 1,
  T_INT = 2,
  T_FLOAT = 3,
  T_BOOL = 4,
  T_INTLIST = 5,
  T_TENSORLIST = 6,
  T_OPTTENSORLIST = 7,
  T_FLOATLIST = 8,
  T_DTYPE = 9,
  T_STRING = 10,
  T_DEVICE = 11,
  T_GENERATOR = 12,
  T_DEFAULT = 13,
  T_ALIAS = 14,
  T_BOOLLIST = 15,
};

// Slot states: a zombie slot has had its tensor released by an explicit dispose but is still
// referenced by a pending JS finalizer, so it is not reused until that finalizer releases it.
enum SlotState : uint8_t { S_FREE = 0, S_LIVE = 1, S_ZOMBIE = 2 };

// A user-facing error: becomes a JS Error whose message is exactly `what()`.
struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct State;
struct Reader;
struct Input;

// An unboxed fast path for one operator (fastops.cc); see call.h.
using FastFn = bool (*)(State& s, Reader& r, std::vector<Input>& in, at::Tensor& out);

struct OpEntry {
  c10::OperatorHandle handle;
  std::string name;  // "aten::add.Tensor"
  size_t numArgs;
  FastFn fast;  // null when the operator has no fast path
};

constexpr size_t kBufWords = 1 << 16;  // 512 KiB of float64: operands and results of one call

struct State {
  std::vector<at::Tensor> slots;
  std::vector<uint8_t> slotState;
  std::vector<int32_t> freeList;
  size_t liveCount = 0;

  std::vector<OpEntry> ops;
  std::unordered_map<std::string, int32_t> opIndex;
  std::vector<std::string> strings;
  std::unordered_map<std::string, int32_t> stringIndex;
  std::vector<at::Generator> generators;

  double* buf = nullptr;
  Napi::Reference<Napi::ArrayBuffer> bufRef;

  int64_t reportedBytes = 0;  // native bytes reported to V8 so far by this environment
  // Depth of JS tidy() scopes. Tensors made inside a scope are freed by the scope, not by the
  // garbage collector, so their memory is not reported while a scope is open (reporting it would
  // only trigger collections that cannot free anything); the net change is reported when the
  // outermost scope closes.
  int32_t scopeDepth = 0;
  std::vector<std::unique_ptr<c10::InferenceMode>> inferenceGuards;

  int32_t put(at::Tensor t);
  at::Tensor& get(int64_t id);
  void release(int64_t id);  // frees the tensor and the slot
  void zombie(int64_t id);   // frees the tensor, keeps the slot until release()
  // The change in live native bytes to report to V8 now (0: nothing to report); marks it reported.
  int64_t takeMemoryDelta();
  void reportMemory(napi_env env);
};

// The process-wide count of live bytes allocated by libtorch's CPU allocator (see runtime.cc).
int64_t liveCpuBytes();
int64_t peakCpuBytes();
void installCountingAllocator();

// The message of the exception in flight (libtorch's without its C++ backtrace). Call from a
// catch block.
std::string currentExceptionMessage();

// Converts the exception in flight into a pending JS Error with code ERR_TORCH, its message
// prefixed by `context`. Call from a catch(...) block.
void throwJs(napi_env env, const std::string& context);

// Runs f and returns its value; an exception other than a JS one becomes a JS Error (see throwJs).
template <typename F>
Napi::Value guarded(Napi::Env env, const char* context, F&& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throwJs(env, context);
    return env.Undefined();
  }
}

at::ScalarType scalarTypeFromCode(int64_t code);
c10::Device deviceFromCode(int64_t type, int64_t index);

}  // namespace ts
