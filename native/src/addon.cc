// Module entry: creates the per-environment State and exports the addon's functions.
// The JS side (src/core/native.ts) is the only caller; its types document each function.
#include "state.h"

namespace ts {

void installV8Calls(napi_env env, napi_value exports, State* s);
int32_t callOp(State& s);
const std::string& opName(State& s);

Napi::Value FromBytes(const Napi::CallbackInfo&);
Napi::Value ToBytes(const Napi::CallbackInfo&);
napi_value Meta(napi_env, napi_callback_info);
Napi::Value Strides(const Napi::CallbackInfo&);
napi_value Release(napi_env, napi_callback_info);
napi_value ReleaseMany(napi_env, napi_callback_info);
Napi::Value GradFnName(const Napi::CallbackInfo&);
Napi::Value SetScopeDepth(const Napi::CallbackInfo&);
Napi::Value Backward(const Napi::CallbackInfo&);
Napi::Value Grad(const Napi::CallbackInfo&);
Napi::Value SetGrad(const Napi::CallbackInfo&);
Napi::Value SetRequiresGrad(const Napi::CallbackInfo&);
Napi::Value SetGradEnabled(const Napi::CallbackInfo&);
Napi::Value IsGradEnabled(const Napi::CallbackInfo&);
Napi::Value InferenceEnter(const Napi::CallbackInfo&);
Napi::Value InferenceExit(const Napi::CallbackInfo&);
Napi::Value IsInferenceMode(const Napi::CallbackInfo&);
Napi::Value Info(const Napi::CallbackInfo&);
Napi::Value SetNumThreads(const Napi::CallbackInfo&);
Napi::Value GetNumThreads(const Napi::CallbackInfo&);
Napi::Value MemoryStats(const Napi::CallbackInfo&);
Napi::Value ManualSeed(const Napi::CallbackInfo&);
Napi::Value GeneratorNew(const Napi::CallbackInfo&);
Napi::Value GeneratorSeed(const Napi::CallbackInfo&);
Napi::Value GeneratorGetState(const Napi::CallbackInfo&);
Napi::Value GeneratorSetState(const Napi::CallbackInfo&);
Napi::Value OpId(const Napi::CallbackInfo&);
Napi::Value OpSchema(const Napi::CallbackInfo&);
Napi::Value Intern(const Napi::CallbackInfo&);
Napi::Value DistInit(const Napi::CallbackInfo&);
Napi::Value DistCollective(const Napi::CallbackInfo&);
Napi::Value DistDestroy(const Napi::CallbackInfo&);
Napi::Value DistBackends(const Napi::CallbackInfo&);
Napi::Value DistReducerCreate(const Napi::CallbackInfo&);
Napi::Value DistReducerArm(const Napi::CallbackInfo&);
Napi::Value DistReducerFinish(const Napi::CallbackInfo&);
Napi::Value DistReducerBuckets(const Napi::CallbackInfo&);
Napi::Value DistReducerDestroy(const Napi::CallbackInfo&);

namespace {

struct StateHolder {
  State* state;
  ~StateHolder() {
    while (!state->inferenceGuards.empty()) state->inferenceGuards.pop_back();
    delete state;
  }
};

// call() -> handle | -1. The hot path: raw Node-API, no argument conversion.
napi_value Call(napi_env env, napi_callback_info info) {
  void* data = nullptr;
  napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data);
  State& s = *static_cast<State*>(data);
  try {
    const int32_t r = callOp(s);
    s.reportMemory(env);
    napi_value out;
    napi_create_int32(env, r, &out);
    return out;
  } catch (...) {
    throwJs(env, opName(s));
    return nullptr;
  }
}

Napi::Value InitBuffer(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  if (!info[0].IsArrayBuffer()) throw Napi::TypeError::New(info.Env(), "init(arrayBuffer)");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.ByteLength() < kBufWords * sizeof(double)) {
    throw Napi::RangeError::New(info.Env(), "the operand buffer needs " + std::to_string(kBufWords) + " float64 words");
  }
  s.buf = static_cast<double*>(ab.Data());
  s.bufRef = Napi::Persistent(ab);
  return Napi::Number::New(info.Env(), static_cast<double>(kBufWords));
}

void addRaw(Napi::Env env, Napi::Object exports, const char* name, napi_callback cb, State* s) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, s, &fn);
  exports.Set(name, Napi::Value(env, fn));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  installCountingAllocator();
  auto* holder = new StateHolder{new State()};
  env.SetInstanceData<StateHolder>(holder);
  State* s = holder->state;
  auto add = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, fn, name, s));
  };
  addRaw(env, exports, "callNapi", Call, s);
  addRaw(env, exports, "meta", Meta, s);
  addRaw(env, exports, "releaseNapi", Release, s);
  installV8Calls(env, exports, s);  // "call" and "release", bound to V8 directly
  addRaw(env, exports, "releaseMany", ReleaseMany, s);
  add("init", InitBuffer);
  add("fromBytes", FromBytes);
  add("toBytes", ToBytes);
  add("strides", Strides);
  add("gradFn", GradFnName);
  add("setScopeDepth", SetScopeDepth);
  add("backward", Backward);
  add("grad", Grad);
  add("setGrad", SetGrad);
  add("setRequiresGrad", SetRequiresGrad);
  add("setGradEnabled", SetGradEnabled);
  add("isGradEnabled", IsGradEnabled);
  add("inferenceEnter", InferenceEnter);
  add("inferenceExit", InferenceExit);
  add("isInferenceMode", IsInferenceMode);
  add("info", Info);
  add("setNumThreads", SetNumThreads);
  add("getNumThreads", GetNumThreads);
  add("memoryStats", MemoryStats);
  add("manualSeed", ManualSeed);
  add("generatorNew", GeneratorNew);
  add("generatorSeed", GeneratorSeed);
  add("generatorGetState", GeneratorGetState);
  add("generatorSetState", GeneratorSetState);
  add("op", OpId);
  add("opSchema", OpSchema);
  add("intern", Intern);
  add("distInit", DistInit);
  add("distCollective", DistCollective);
  add("distDestroy", DistDestroy);
  add("distBackends", DistBackends);
  add("distReducerCreate", DistReducerCreate);
  add("distReducerArm", DistReducerArm);
  add("distReducerFinish", DistReducerFinish);
  add("distReducerBuckets", DistReducerBuckets);
  add("distReducerDestroy", DistReducerDestroy);
  return exports;
}

}  // namespace ts

static Napi::Object InitTinyseek(Napi::Env env, Napi::Object exports) { return ts::Init(env, exports); }

NODE_API_MODULE(tinyseek, InitTinyseek)
