// The two calls made once per tensor op, `call` and `release`, bound directly to V8 instead of
// through Node-API: Node-API's per-call bookkeeping costs about as much as the rest of our side of
// an op. Everything else in the addon stays on Node-API. The addon is always compiled on the
// machine that runs it, against the running Node's headers, so the V8 ABI matches.
#include <node.h>
#include <v8.h>

#include <cstring>

#include "state.h"

namespace ts {

int32_t callOp(State& s);
const std::string& opName(State& s);

namespace {

// Node-API values are V8 local handles (this is how Node implements napi_value).
static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>), "napi_value is not a V8 handle");

v8::Local<v8::Value> toV8(napi_value v) {
  v8::Local<v8::Value> local;
  std::memcpy(static_cast<void*>(&local), &v, sizeof(v));
  return local;
}

State* stateOf(const v8::FunctionCallbackInfo<v8::Value>& info) {
  return static_cast<State*>(info.Data().As<v8::External>()->Value());
}

void reportMemory(v8::Isolate* isolate, State& s) {
  const int64_t delta = s.takeMemoryDelta();
  if (delta != 0) isolate->AdjustAmountOfExternalAllocatedMemory(delta);
}

// As throwJs (state.cc), through V8 directly. Call from a catch(...) block.
void throwTorch(v8::Isolate* isolate, const std::string& context) {
  const std::string msg = context + ": " + currentExceptionMessage();
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::String> text = v8::String::NewFromUtf8(isolate, msg.c_str()).ToLocalChecked();
  v8::Local<v8::Object> err = v8::Exception::Error(text).As<v8::Object>();
  err->Set(ctx, v8::String::NewFromUtf8Literal(isolate, "code"), v8::String::NewFromUtf8Literal(isolate, "ERR_TORCH")).Check();
  isolate->ThrowException(err);
}

// call() -> handle | -1 (see callOp)
void Call(const v8::FunctionCallbackInfo<v8::Value>& info) {
  State& s = *stateOf(info);
  v8::Isolate* isolate = info.GetIsolate();
  try {
    const int32_t r = callOp(s);
    reportMemory(isolate, s);
    info.GetReturnValue().Set(r);
  } catch (...) {
    throwTorch(isolate, opName(s));
  }
}

// release(handle) frees a tensor; release(-1 - handle) frees it but keeps the handle as a zombie.
void Release(const v8::FunctionCallbackInfo<v8::Value>& info) {
  State& s = *stateOf(info);
  if (info.Length() < 1 || !info[0]->IsNumber()) return;
  const double v = info[0].As<v8::Number>()->Value();
  const int64_t id = static_cast<int64_t>(v);
  if (id >= 0) {
    s.release(id);
  } else {
    s.zombie(-1 - id);
  }
  reportMemory(info.GetIsolate(), s);
}

}  // namespace

void installV8Calls(napi_env env, napi_value exports, State* s) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  v8::Local<v8::Context> ctx = isolate->GetCurrentContext();
  v8::Local<v8::Object> target = toV8(exports).As<v8::Object>();
  v8::Local<v8::External> data = v8::External::New(isolate, s);
  auto add = [&](const char* name, v8::FunctionCallback cb) {
    v8::Local<v8::FunctionTemplate> tpl = v8::FunctionTemplate::New(isolate, cb, data);
    v8::Local<v8::Function> fn = tpl->GetFunction(ctx).ToLocalChecked();
    v8::Local<v8::String> key = v8::String::NewFromUtf8(isolate, name).ToLocalChecked();
    fn->SetName(key);
    target->Set(ctx, key, fn).Check();
  };
  add("call", Call);
  add("release", Release);
  (void)env;
}

}  // namespace ts
