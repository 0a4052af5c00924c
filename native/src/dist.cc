// c10d, libtorch's distributed engine, for JS: a TCPStore rendezvous, a process group (Gloo on the
// CPU; NCCL when built against a CUDA libtorch with NCCL headers), and collectives on tensors.
//
// Everything that waits runs on libuv's thread pool and hands JS a Promise: creating a group (the
// rendezvous waits for every rank), and each collective (its c10d Work is waited for off the event
// loop). A heartbeat thread per group bumps a counter in the store; when a collective fails, the
// error names the ranks whose counter stopped, so "rank 1 stopped answering" replaces Gloo's
// "connection closed by peer".
//
// It knows tensors by their handles in State; it does not know models, gradients or optimizers.
#include <sstream>

#include "dist_group.h"

namespace ts {

namespace {

std::mutex registryMutex;
std::vector<std::shared_ptr<Group>> registry;

std::string beatKey(int rank) { return "tinyseek/beat/" + std::to_string(rank); }
std::string failedKey(int rank) { return "tinyseek/failed/" + std::to_string(rank); }

// Reads each other rank's heartbeat counter twice, a few beats apart; a counter that did not move
// belongs to a rank that stopped (killed, hung, or gone from the network). A rank that saw the
// failure too marks itself first, so that its own exit afterwards is not mistaken for the cause.
std::string silentRanks(Group& g) {
  if (g.size <= 1) return "";
  auto connect = [&]() {
    c10d::TCPStoreOptions o;
    o.port = static_cast<uint16_t>(g.port);
    o.isServer = false;
    o.waitWorkers = false;
    o.timeout = std::chrono::milliseconds(2000);
    return c10::make_intrusive<c10d::TCPStore>(g.host, o);
  };
  std::vector<int64_t> a(g.size, -1), b(g.size, -1), failed(g.size, 0);
  try {
    auto probe = connect();
    probe->add(failedKey(g.rank), 1);
    for (int r = 0; r < g.size; ++r) a[r] = probe->add(beatKey(r), 0);
    std::this_thread::sleep_for(kBeat * 6);
    for (int r = 0; r < g.size; ++r) {
      b[r] = probe->add(beatKey(r), 0);
      failed[r] = probe->add(failedKey(r), 0);
    }
  } catch (...) {
    return g.rank == 0 ? "the rendezvous store is not answering"
                       : "rank 0 stopped answering (the rendezvous store it hosts at " + g.host + ":" + std::to_string(g.port) +
                             " is unreachable)";
  }
  std::ostringstream silent;
  int n = 0;
  for (int r = 0; r < g.size; ++r) {
    if (r == g.rank || b[r] > a[r] || failed[r] > 0) continue;
    silent << (n++ ? ", " : "") << r;
  }
  if (n == 0) return "every other rank is alive or failed the same way (a rank is slow, or the ranks called different collectives)";
  return std::string(n == 1 ? "rank " : "ranks ") + silent.str() + " stopped answering";
}

}  // namespace

std::shared_ptr<Group> groupOf(int64_t id) {
  std::lock_guard<std::mutex> lock(registryMutex);
  if (id < 0 || static_cast<size_t>(id) >= registry.size() || !registry[id]) {
    throw UserError("process group " + std::to_string(id) + " does not exist (destroyed, or never created)");
  }
  return registry[id];
}

std::string failureMessage(Group& g, const std::string& what, const std::string& cause) {
  std::string who = silentRanks(g);
  return what + " on rank " + std::to_string(g.rank) + " of " + std::to_string(g.size) + " failed: " + who + " (" + cause + ")";
}

namespace {

class InitWorker : public Napi::AsyncWorker {
 public:
  InitWorker(Napi::Env env, std::shared_ptr<Group> g) : Napi::AsyncWorker(env), g_(std::move(g)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      c10d::TCPStoreOptions o;
      o.port = static_cast<uint16_t>(g_->port);
      o.isServer = g_->rank == 0;
      o.numWorkers = static_cast<size_t>(g_->size);
      o.waitWorkers = true;
      o.timeout = g_->timeout;
      g_->store = c10::make_intrusive<c10d::TCPStore>(g_->host, o);
      c10d::TCPStoreOptions bo = o;
      bo.isServer = false;
      bo.waitWorkers = false;
      g_->beatStore = c10::make_intrusive<c10d::TCPStore>(g_->host, bo);
      g_->beatStore->add(beatKey(g_->rank), 1);
      auto prefixed = c10::make_intrusive<c10d::PrefixStore>("tinyseek/" + g_->backend, g_->store);
      if (g_->backend == "gloo") {
        auto opts = c10d::ProcessGroupGloo::Options::create(g_->timeout);
        const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
        if (ifname && *ifname) {
          opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
        } else if (g_->host == "127.0.0.1" || g_->host == "localhost") {
          opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        } else {
          opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        }
        opts->threads = 2;
        g_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, g_->rank, g_->size, opts);
#if defined(TINYSEEK_NCCL)
      } else if (g_->backend == "nccl") {
        auto opts = c10d::ProcessGroupNCCL::Options::create();
        opts->timeout = g_->timeout;
        g_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, g_->rank, g_->size, opts);
#endif
      } else {
#if defined(TINYSEEK_NCCL)
        throw UserError("unknown backend '" + g_->backend + "' (gloo, nccl)");
#else
        throw UserError("backend '" + g_->backend + "' is not built into this addon (it has gloo; nccl needs a CUDA libtorch with NCCL headers: set TINYSEEK_LIBTORCH and run npm run build:native)");
#endif
      }
      Group* raw = g_.get();
      g_->beat = std::thread([raw]() {
        while (!raw->stop) {
          std::this_thread::sleep_for(kBeat);
          try {
            raw->beatStore->add(beatKey(raw->rank), 1);
          } catch (...) {
            // the store host is gone; the next collective reports it
          }
        }
      });
    } catch (...) {
      SetError("joining the process group as rank " + std::to_string(g_->rank) + " of " + std::to_string(g_->size) + " at " + g_->host + ":" +
               std::to_string(g_->port) + " failed: " + currentExceptionMessage());
    }
  }

  void OnOK() override {
    std::lock_guard<std::mutex> lock(registryMutex);
    registry.push_back(g_);
    deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(registry.size() - 1)));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::shared_ptr<Group> g_;
  Napi::Promise::Deferred deferred_;
};

class WaitWorker : public Napi::AsyncWorker {
 public:
  WaitWorker(Napi::Env env, std::shared_ptr<Group> g, std::string what, c10::intrusive_ptr<c10d::Work> work, std::chrono::milliseconds timeout)
      : Napi::AsyncWorker(env),
        g_(std::move(g)),
        what_(std::move(what)),
        work_(std::move(work)),
        timeout_(timeout),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_->wait(timeout_);
    } catch (...) {
      SetError(failureMessage(*g_, what_, currentExceptionMessage()));
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override {
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("code", Napi::String::New(Env(), "ERR_DIST"));
    deferred_.Reject(err.Value());
  }

 private:
  std::shared_ptr<Group> g_;
  std::string what_;
  c10::intrusive_ptr<c10d::Work> work_;
  std::chrono::milliseconds timeout_;
  Napi::Promise::Deferred deferred_;
};

std::vector<at::Tensor> tensorsOf(State& s, const Napi::Value& v) {
  if (!v.IsArray()) throw UserError("expected an array of tensor handles");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(s.get(a.Get(i).As<Napi::Number>().Int64Value()));
  return out;
}

c10d::ReduceOp reduceOpOf(const std::string& op) {
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "avg") return c10d::ReduceOp::AVG;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  throw UserError("unknown reduce op '" + op + "' (sum, avg, max, min, product)");
}

}  // namespace

// distInit(host, port, worldSize, rank, timeoutMs, backend) -> Promise<group id>
Napi::Value DistInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto g = std::make_shared<Group>();
  g->host = info[0].As<Napi::String>().Utf8Value();
  g->port = info[1].As<Napi::Number>().Int32Value();
  g->size = info[2].As<Napi::Number>().Int32Value();
  g->rank = info[3].As<Napi::Number>().Int32Value();
  g->timeout = std::chrono::milliseconds(info[4].As<Napi::Number>().Int64Value());
  g->backend = info[5].As<Napi::String>().Utf8Value();
  auto* w = new InitWorker(env, g);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// distCollective(group, kind, a, b, timeoutMs) -> Promise<void>; timeoutMs 0: the group's. Kinds:
//   "allreduce", [tensors], op        in place
//   "broadcast", [tensors], root      in place
//   "allgather", [outputs], input     outputs[r] <- rank r's input
//   "barrier"
Napi::Value DistCollective(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "distributed", [&]() -> Napi::Value {
    auto g = groupOf(info[0].As<Napi::Number>().Int64Value());
    const std::string kind = info[1].As<Napi::String>().Utf8Value();
    c10::intrusive_ptr<c10d::Work> work;
    std::string what;
    const int64_t ms = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().Int64Value() : 0;
    const std::chrono::milliseconds timeout = ms > 0 ? std::chrono::milliseconds(ms) : g->timeout;
    try {
      if (kind == "allreduce") {
        std::vector<at::Tensor> ts = tensorsOf(s, info[2]);
        c10d::AllreduceOptions o;
        o.reduceOp = reduceOpOf(info[3].As<Napi::String>().Utf8Value());
        o.timeout = timeout;
        what = "all-reduce";
        work = g->pg->allreduce(ts, o);
      } else if (kind == "broadcast") {
        std::vector<at::Tensor> ts = tensorsOf(s, info[2]);
        c10d::BroadcastOptions o;
        o.rootRank = info[3].As<Napi::Number>().Int64Value();
        o.timeout = timeout;
        what = "broadcast";
        work = g->pg->broadcast(ts, o);
      } else if (kind == "allgather") {
        std::vector<std::vector<at::Tensor>> outs{tensorsOf(s, info[2])};
        std::vector<at::Tensor> in{s.get(info[3].As<Napi::Number>().Int64Value())};
        c10d::AllgatherOptions o;
        o.timeout = timeout;
        what = "all-gather";
        work = g->pg->allgather(outs, in, o);
      } else if (kind == "barrier") {
        c10d::BarrierOptions o;
        o.timeout = timeout;
        what = "barrier";
        work = g->pg->barrier(o);
      } else {
        throw UserError("unknown collective '" + kind + "'");
      }
    } catch (const UserError&) {
      throw;
    } catch (...) {
      throw UserError(failureMessage(*g, what.empty() ? kind : what, currentExceptionMessage()));
    }
    auto* w = new WaitWorker(env, g, what, work, timeout);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

// distDestroy(group): stops the heartbeat and drops the group (its connections close).
Napi::Value DistDestroy(const Napi::CallbackInfo& info) {
  const int64_t id = info[0].As<Napi::Number>().Int64Value();
  std::shared_ptr<Group> g;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    if (id >= 0 && static_cast<size_t>(id) < registry.size()) std::swap(g, registry[id]);
  }
  return info.Env().Undefined();
}

// distBackends() -> the backends built into this addon
Napi::Value DistBackends(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env());
  a.Set(uint32_t{0}, "gloo");
#if defined(TINYSEEK_NCCL)
  a.Set(uint32_t{1}, "nccl");
#endif
  return a;
}

}  // namespace ts
