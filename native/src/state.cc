// The handle table and the shared error conversion.
#include "state.h"

namespace ts {

int32_t State::put(at::Tensor t) {
  int32_t id;
  if (!freeList.empty()) {
    id = freeList.back();
    freeList.pop_back();
    slots[id] = std::move(t);
  } else {
    if (slots.size() >= static_cast<size_t>(INT32_MAX)) throw UserError("too many live tensors");
    id = static_cast<int32_t>(slots.size());
    slots.push_back(std::move(t));
    slotState.push_back(S_FREE);
  }
  slotState[id] = S_LIVE;
  ++liveCount;
  return id;
}

at::Tensor& State::get(int64_t id) {
  if (id < 0 || static_cast<size_t>(id) >= slots.size() || slotState[id] != S_LIVE) {
    throw UserError("tensor handle " + std::to_string(id) +
                    " is not live (the tensor was disposed, or freed at the end of a tidy() scope; keep() it to use it later)");
  }
  return slots[id];
}

void State::release(int64_t id) {
  if (id < 0 || static_cast<size_t>(id) >= slots.size() || slotState[id] == S_FREE) return;
  if (slotState[id] == S_LIVE) --liveCount;
  slots[id] = at::Tensor();
  slotState[id] = S_FREE;
  freeList.push_back(static_cast<int32_t>(id));
}

void State::zombie(int64_t id) {
  if (id < 0 || static_cast<size_t>(id) >= slots.size() || slotState[id] != S_LIVE) return;
  --liveCount;
  slots[id] = at::Tensor();
  slotState[id] = S_ZOMBIE;
}

int64_t State::takeMemoryDelta() {
  if (scopeDepth > 0) return 0;
  const int64_t live = liveCpuBytes();
  const int64_t delta = live - reportedBytes;
  if (delta > (1 << 20) || delta < -(1 << 20)) {
    reportedBytes = live;
    return delta;
  }
  return 0;
}

void State::reportMemory(napi_env env) {
  const int64_t delta = takeMemoryDelta();
  if (delta != 0) {
    int64_t adjusted = 0;
    napi_adjust_external_memory(env, delta, &adjusted);
  }
}

std::string currentExceptionMessage() {
  try {
    throw;
  } catch (const Napi::Error& e) {
    return e.Message();
  } catch (const UserError& e) {
    return e.what();
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown native error";
  }
}

void throwJs(napi_env env, const std::string& context) {
  std::string msg = currentExceptionMessage();
  if (!context.empty()) msg = context + ": " + msg;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  napi_throw_error(env, "ERR_TORCH", msg.c_str());
}

at::ScalarType scalarTypeFromCode(int64_t code) {
  switch (code) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
    case 9: case 10: case 11: case 15:
      return static_cast<at::ScalarType>(code);
    default:
      throw UserError("unsupported dtype code " + std::to_string(code));
  }
}

c10::Device deviceFromCode(int64_t type, int64_t index) {
  if (index < -1 || index > 255) throw UserError("invalid device index " + std::to_string(index));
  switch (type) {
    case 0:
      if (index > 0) throw UserError("the CPU device has no index " + std::to_string(index));
      return c10::Device(c10::DeviceType::CPU);
    case 1:
      if (!at::globalContext().hasCUDA()) {
        throw UserError("CUDA is not available in this libtorch build (rebuild the addon with TINYSEEK_LIBTORCH pointing at a CUDA libtorch)");
      }
      return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index));
    default:
      throw UserError("unsupported device type code " + std::to_string(type));
  }
}

}  // namespace ts
