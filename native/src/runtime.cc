// Process-level facts and settings: versions, library paths, threads, BLAS, devices, seeds and
// generators, the counting CPU allocator behind the memory statistics, operator and string ids.
#include <dlfcn.h>
#include <malloc.h>

#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/version.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <sstream>

#include "state.h"

namespace ts {

int32_t resolveOp(State& s, const std::string& name, const std::string& overload);

// ---- counting allocator ----------------------------------------------------------------------
// Wraps libtorch's default CPU allocator so that live native bytes are known exactly (reported to
// V8 as external memory, and shown by memoryStats). Blocks keep the default allocator's layout
// (data == context), so raw_allocate/raw_deallocate keep working.
namespace {
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};
c10::Allocator* g_base = nullptr;
c10::DeleterFnPtr g_baseDeleter = nullptr;
bool g_counting = false;

void countingDelete(void* p) {
  if (p != nullptr) g_live.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  g_baseDeleter(p);
}

#if (TORCH_VERSION_MAJOR > 2) || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define TS_ALLOCATE_CONST
#define TS_ALLOCATOR_HAS_COPY_DATA 1
#else
#define TS_ALLOCATE_CONST const
#define TS_ALLOCATOR_HAS_COPY_DATA 0
#endif

struct CountingAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) TS_ALLOCATE_CONST override {
    c10::DataPtr inner = g_base->allocate(n);
    void* p = inner.get();
    if (p == nullptr || inner.get_context() != p || inner.get_deleter() != g_baseDeleter) return inner;
    const c10::Device device = inner.device();
    inner.release_context();
    const int64_t size = static_cast<int64_t>(malloc_usable_size(p));
    const int64_t now = g_live.fetch_add(size, std::memory_order_relaxed) + size;
    int64_t peak = g_peak.load(std::memory_order_relaxed);
    while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
    return {p, p, &countingDelete, device};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &countingDelete; }
#if TS_ALLOCATOR_HAS_COPY_DATA
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#endif
};

CountingAllocator g_counter;
std::once_flag g_once;
std::mutex g_seedMutex;
}  // namespace

void installCountingAllocator() {
  std::call_once(g_once, [] {
    g_base = c10::GetCPUAllocator();
    g_baseDeleter = g_base->raw_deleter();
    if (g_baseDeleter == nullptr) return;  // an allocator we do not know: leave it alone
    c10::SetCPUAllocator(&g_counter, /*priority=*/1);
    g_counting = true;
  });
}

int64_t liveCpuBytes() { return g_live.load(std::memory_order_relaxed); }
int64_t peakCpuBytes() { return g_peak.load(std::memory_order_relaxed); }

// ---- facts -------------------------------------------------------------------------------------
namespace {
std::string libraryOf(const void* symbol) {
  Dl_info info;
  if (symbol != nullptr && dladdr(symbol, &info) != 0 && info.dli_fname != nullptr) return info.dli_fname;
  return "";
}

void* findBlasSymbol(const char* name) {
  for (const char* lib : {"libblas.so.3", "libopenblas.so.0", "libopenblasp-r0.3.so", "libopenblas.so"}) {
    void* h = dlopen(lib, RTLD_NOLOAD | RTLD_LAZY);
    if (h == nullptr) continue;
    void* sym = dlsym(h, name);
    dlclose(h);
    if (sym != nullptr) return sym;
  }
  return dlsym(RTLD_DEFAULT, name);
}

int cudaDeviceCount() {
  if (!at::globalContext().hasCUDA()) return 0;
  try {
    return static_cast<int>(c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->deviceCount());
  } catch (...) {
    return 0;
  }
}

uint64_t seedArg(const Napi::Value& v) {
  if (v.IsBigInt()) {
    bool lossless = true;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw UserError("a seed must be a non-negative integer (or a BigInt)");
  }
  return static_cast<uint64_t>(d);
}
}  // namespace

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("torchVersion", TORCH_VERSION);
  o.Set("libtorchPath", libraryOf(reinterpret_cast<const void*>(&at::globalContext)));
  o.Set("c10Path", libraryOf(reinterpret_cast<const void*>(&c10::GetCPUAllocator)));
  o.Set("cudaAvailable", at::globalContext().hasCUDA());
  o.Set("cudaDeviceCount", cudaDeviceCount());
  o.Set("parallelInfo", at::get_parallel_info());
  o.Set("countingAllocator", g_counting);
  auto corename = reinterpret_cast<char* (*)()>(findBlasSymbol("openblas_get_corename"));
  auto config = reinterpret_cast<char* (*)()>(findBlasSymbol("openblas_get_config"));
  auto nthreads = reinterpret_cast<int (*)()>(findBlasSymbol("openblas_get_num_threads"));
  o.Set("blasLibrary", libraryOf(findBlasSymbol("sgemm_")));
  o.Set("openblasCore", corename ? Napi::Value(Napi::String::New(env, corename())) : env.Null());
  o.Set("openblasConfig", config ? Napi::Value(Napi::String::New(env, config())) : env.Null());
  o.Set("openblasThreads", nthreads ? Napi::Value(Napi::Number::New(env, nthreads())) : env.Null());
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const int64_t n = info[0].As<Napi::Number>().Int64Value();
  if (n < 1 || n > 4096) throw Napi::RangeError::New(info.Env(), "threads must be between 1 and 4096");
  at::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("liveBytes", static_cast<double>(liveCpuBytes()));
  o.Set("peakBytes", static_cast<double>(peakCpuBytes()));
  o.Set("liveTensors", static_cast<double>(s.liveCount));
  o.Set("handleSlots", static_cast<double>(s.slots.size()));
  return o;
}

// ---- seeds and generators ------------------------------------------------------------------------
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, "manualSeed", [&]() -> Napi::Value {
    const uint64_t seed = seedArg(info[0]);
    std::lock_guard<std::mutex> guard(g_seedMutex);
    {
      at::Generator g = at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CPU));
      std::lock_guard<std::mutex> lock(g.mutex());
      g.set_current_seed(seed);
    }
    for (int i = 0; i < cudaDeviceCount(); ++i) {
      at::Generator g = at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(g.mutex());
      g.set_current_seed(seed);
    }
    return env.Undefined();
  });
}

// generatorNew(seed, deviceType, deviceIndex) -> generator id
Napi::Value GeneratorNew(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "Generator", [&]() -> Napi::Value {
    const uint64_t seed = seedArg(info[0]);
    const c10::Device device = deviceFromCode(info[1].As<Napi::Number>().Int64Value(), info[2].As<Napi::Number>().Int64Value());
    at::Generator g = at::globalContext().defaultGenerator(device).clone();
    {
      std::lock_guard<std::mutex> lock(g.mutex());
      g.set_current_seed(seed);
    }
    s.generators.push_back(std::move(g));
    return Napi::Number::New(env, static_cast<double>(s.generators.size() - 1));
  });
}

at::Generator& generatorAt(State& s, const Napi::Value& v) {
  const int64_t id = v.As<Napi::Number>().Int64Value();
  if (id < 0 || static_cast<size_t>(id) >= s.generators.size()) throw UserError("unknown generator id");
  return s.generators[static_cast<size_t>(id)];
}

Napi::Value GeneratorSeed(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "Generator.seed", [&]() -> Napi::Value {
    at::Generator& g = generatorAt(s, info[0]);
    std::lock_guard<std::mutex> lock(g.mutex());
    if (info.Length() > 1) g.set_current_seed(seedArg(info[1]));
    return Napi::BigInt::New(env, g.current_seed());
  });
}

// generatorGetState(id) -> handle of a uint8 tensor; generatorSetState(id, handle)
Napi::Value GeneratorGetState(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "Generator.getState", [&]() -> Napi::Value {
    at::Generator& g = generatorAt(s, info[0]);
    std::lock_guard<std::mutex> lock(g.mutex());
    return Napi::Number::New(env, s.put(g.get_state()));
  });
}

Napi::Value GeneratorSetState(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "Generator.setState", [&]() -> Napi::Value {
    at::Generator& g = generatorAt(s, info[0]);
    const at::Tensor& state = s.get(info[1].As<Napi::Number>().Int64Value());
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(state);
    return env.Undefined();
  });
}

// ---- ids -------------------------------------------------------------------------------------------
Napi::Value OpId(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "op", [&]() -> Napi::Value {
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    const std::string overload = info.Length() > 1 ? info[1].As<Napi::String>().Utf8Value() : "";
    return Napi::Number::New(env, resolveOp(s, name, overload));
  });
}

Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  const int64_t id = info[0].As<Napi::Number>().Int64Value();
  if (id < 0 || static_cast<size_t>(id) >= s.ops.size()) throw Napi::RangeError::New(info.Env(), "unknown operator id");
  std::ostringstream out;
  out << s.ops[static_cast<size_t>(id)].handle.schema();
  return Napi::String::New(info.Env(), out.str());
}

Napi::Value Intern(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  const std::string str = info[0].As<Napi::String>().Utf8Value();
  auto it = s.stringIndex.find(str);
  if (it != s.stringIndex.end()) return Napi::Number::New(info.Env(), it->second);
  const int32_t id = static_cast<int32_t>(s.strings.size());
  s.strings.push_back(str);
  s.stringIndex.emplace(str, id);
  return Napi::Number::New(info.Env(), id);
}

}  // namespace ts
