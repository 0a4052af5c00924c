// Gradient all-reduce overlapped with backward, the idea of DDP's Reducer built from c10d
// collectives: the parameters are split into buckets in reverse order (the order backward finishes
// them); a post-hook on each parameter's gradient accumulator counts it ready, and as soon as the
// next bucket in order is complete its gradients are flattened and its all-reduce starts on the
// process group's threads while backward goes on with the earlier layers.
//
// Buckets start strictly in bucket order on every rank, so the ranks' collectives pair up however
// their backward passes interleave. A bucket that is still incomplete when backward ends (a
// parameter this rank gave no gradient, such as an expert no token of this rank reached) starts
// in finish(), its missing gradients as zeros. finish() waits off the event loop and copies the
// sums back into the gradients.
//
// A parameter that the armed backward cannot reach (an expert none of this micro-batch's tokens
// chose) is ready from the start: when backward begins, the graph is walked from its outputs, as
// DDP does with find_unused_parameters, so one idle expert does not hold back every later bucket.
// Its bucket carries the gradient it already has, or zeros, which finish() reports as filled.
//
// Hooks act only while armed (the last micro-batch of a step); they hold the reducer weakly, so
// a destroyed reducer's hooks do nothing. It knows parameters, their gradients and a process
// group; not models, losses or optimizers.
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <unordered_set>

#include "dist_group.h"
#include "grad_reducer.h"

namespace ts {

namespace {

struct Reducer {
  std::weak_ptr<Group> group;
  std::vector<at::Tensor> params;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: they hold the hooks
  std::vector<uintptr_t> hookKeys;
  std::vector<std::vector<size_t>> buckets;  // parameter indices, in launch order
  std::vector<size_t> bucketOf;              // parameter index -> bucket
  std::vector<int> pending;                  // per bucket: parameters not yet ready
  std::vector<char> ready;                   // per parameter
  std::vector<char> filled;                  // per parameter: zeros put in for a missing gradient
  std::vector<at::Tensor> flats;             // per bucket, once launched
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  size_t next = 0;             // the next bucket to launch
  size_t launchedInBackward = 0;
  bool armed = false;
  bool inFlight = false;       // launched buckets not yet finished
  std::mutex m;                // hooks run on autograd's threads (one per device on CUDA)

  std::shared_ptr<Group> liveGroup() {
    auto g = group.lock();
    if (!g) throw UserError("the gradient reducer's process group was destroyed");
    return g;
  }

  // Flattens bucket b's gradients (zeros where a parameter has none) and starts its all-reduce.
  void launch(size_t b) {
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> parts;
    parts.reserve(buckets[b].size());
    for (size_t i : buckets[b]) {
      at::Tensor& p = params[i];
      if (!p.grad().defined()) {
        p.mutable_grad() = at::zeros_like(p);
        filled[i] = 1;
      }
      parts.push_back(p.grad().reshape({-1}));
    }
    flats[b] = at::cat(parts);
    auto g = liveGroup();
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = g->timeout;
    std::vector<at::Tensor> ts{flats[b]};
    works[b] = g->pg->allreduce(ts, o);
    inFlight = true;
  }

  // Launches every complete bucket at the front of the order.
  void drain() {
    while (next < buckets.size() && pending[next] == 0) launch(next++);
  }

  // Under the lock.
  void markReadyLocked(size_t i) {
    if (!armed || ready[i]) return;
    ready[i] = 1;
    --pending[bucketOf[i]];
    const size_t before = next;
    drain();
    launchedInBackward += next - before;
  }

  void markReady(size_t i) {
    std::lock_guard<std::mutex> lock(m);
    markReadyLocked(i);
  }

  // Before an armed backward from `roots`: every parameter whose accumulator it cannot reach is ready.
  void prepare(const std::unordered_set<const torch::autograd::Node*>& reachable) {
    std::lock_guard<std::mutex> lock(m);
    if (!armed) return;
    for (size_t i = 0; i < params.size(); ++i) {
      if (!accumulators[i] || !reachable.count(accumulators[i].get())) markReadyLocked(i);
    }
  }

  void removeHooks() {
    for (size_t i = 0; i < accumulators.size(); ++i) {
      if (accumulators[i]) accumulators[i]->del_post_hook(hookKeys[i]);
    }
    accumulators.clear();
  }
};

std::mutex reducersMutex;
std::vector<std::shared_ptr<Reducer>> reducers;

std::shared_ptr<Reducer> reducerOf(int64_t id) {
  std::lock_guard<std::mutex> lock(reducersMutex);
  if (id < 0 || static_cast<size_t>(id) >= reducers.size() || !reducers[id]) {
    throw UserError("gradient reducer " + std::to_string(id) + " does not exist (destroyed, or never created)");
  }
  return reducers[id];
}

// Every node the backward from `outputs` can reach.
std::unordered_set<const torch::autograd::Node*> reachableFrom(const std::vector<at::Tensor>& outputs) {
  std::unordered_set<const torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> stack;
  for (const at::Tensor& t : outputs) {
    const auto& fn = t.grad_fn();
    auto* n = fn ? fn.get() : torch::autograd::impl::try_get_grad_accumulator(t).get();
    if (n && seen.insert(n).second) stack.push_back(n);
  }
  while (!stack.empty()) {
    torch::autograd::Node* n = stack.back();
    stack.pop_back();
    for (const auto& e : n->next_edges()) {
      torch::autograd::Node* f = e.function.get();
      if (f && seen.insert(f).second) stack.push_back(f);
    }
  }
  return seen;
}

class FinishWorker : public Napi::AsyncWorker {
 public:
  FinishWorker(Napi::Env env, std::shared_ptr<Reducer> r, std::shared_ptr<Group> g)
      : Napi::AsyncWorker(env), r_(std::move(r)), g_(std::move(g)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      for (auto& w : r_->works) w->wait(g_->timeout);
      at::NoGradGuard noGrad;
      for (size_t b = 0; b < r_->buckets.size(); ++b) {
        int64_t off = 0;
        for (size_t i : r_->buckets[b]) {
          at::Tensor g = r_->params[i].grad();
          const int64_t n = g.numel();
          g.copy_(r_->flats[b].narrow(0, off, n).view(g.sizes()));
          off += n;
        }
      }
    } catch (...) {
      SetError(failureMessage(*g_, "gradient all-reduce", currentExceptionMessage()));
    }
    release();
  }
  void OnOK() override {
    Napi::Object o = Napi::Object::New(Env());
    o.Set("started", Napi::Number::New(Env(), static_cast<double>(launched_)));
    Napi::Array f = Napi::Array::New(Env());
    uint32_t k = 0;
    for (size_t i = 0; i < filled_.size(); ++i) {
      if (filled_[i]) f.Set(k++, Napi::Number::New(Env(), static_cast<double>(i)));
    }
    o.Set("filled", f);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    Napi::Error err = Napi::Error::New(Env(), e.Message());
    err.Set("code", Napi::String::New(Env(), "ERR_DIST"));
    deferred_.Reject(err.Value());
  }

 private:
  void release() {
    std::lock_guard<std::mutex> lock(r_->m);
    launched_ = r_->launchedInBackward;
    filled_ = r_->filled;
    for (auto& f : r_->flats) f = at::Tensor();
    for (auto& w : r_->works) w.reset();
    r_->inFlight = false;
  }

  std::shared_ptr<Reducer> r_;
  std::shared_ptr<Group> g_;
  size_t launched_ = 0;
  std::vector<char> filled_;
  Napi::Promise::Deferred deferred_;
};

}  // namespace

void prepareArmedReducers(const std::vector<at::Tensor>& outputs) {
  std::vector<std::shared_ptr<Reducer>> armed;
  {
    std::lock_guard<std::mutex> lock(reducersMutex);
    for (const auto& r : reducers) {
      if (r && r->armed) armed.push_back(r);
    }
  }
  if (armed.empty()) return;
  const auto reachable = reachableFrom(outputs);
  for (auto& r : armed) r->prepare(reachable);
}

// distReducerCreate(group, [param handles], bucketBytes, firstBucketBytes) -> reducer id. Buckets
// hold consecutive parameters of one dtype in reverse order; the first (the last layers, whose
// gradients are ready first) is smaller so that communication starts early, as in DDP.
Napi::Value DistReducerCreate(const Napi::CallbackInfo& info) {
  State& s = *static_cast<State*>(info.Data());
  Napi::Env env = info.Env();
  return guarded(env, "gradient reducer", [&]() -> Napi::Value {
    auto g = groupOf(info[0].As<Napi::Number>().Int64Value());
    Napi::Array a = info[1].As<Napi::Array>();
    const int64_t cap = info[2].As<Napi::Number>().Int64Value();
    const int64_t firstCap = info[3].As<Napi::Number>().Int64Value();
    auto r = std::make_shared<Reducer>();
    r->group = g;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      const at::Tensor& p = s.get(a.Get(i).As<Napi::Number>().Int64Value());
      if (!p.is_leaf()) throw UserError("parameter " + std::to_string(i) + " is not a leaf tensor (its gradient is not accumulated)");
      r->params.push_back(p);
    }
    const size_t P = r->params.size();
    r->bucketOf.assign(P, 0);
    std::vector<size_t> cur;
    int64_t bytes = 0;
    for (size_t k = P; k-- > 0;) {
      const at::Tensor& p = r->params[k];
      const int64_t nb = p.numel() * static_cast<int64_t>(p.element_size());
      const int64_t limit = r->buckets.empty() ? firstCap : cap;
      if (!cur.empty() && (bytes + nb > limit || r->params[cur[0]].scalar_type() != p.scalar_type() ||
                           r->params[cur[0]].device() != p.device())) {
        r->buckets.push_back(cur);
        cur.clear();
        bytes = 0;
      }
      cur.push_back(k);
      bytes += nb;
    }
    if (!cur.empty()) r->buckets.push_back(cur);
    for (size_t b = 0; b < r->buckets.size(); ++b) {
      for (size_t i : r->buckets[b]) r->bucketOf[i] = b;
    }
    r->pending.assign(r->buckets.size(), 0);
    r->ready.assign(P, 0);
    r->filled.assign(P, 0);
    r->flats.resize(r->buckets.size());
    r->works.resize(r->buckets.size());
    r->accumulators.resize(P);
    r->hookKeys.assign(P, 0);
    std::weak_ptr<Reducer> weak = r;
    for (size_t i = 0; i < P; ++i) {
      if (!r->params[i].requires_grad()) continue;  // never ready: it starts in finish(), as zeros
      auto acc = torch::autograd::impl::grad_accumulator(r->params[i]);
      if (!acc) continue;
      r->hookKeys[i] = acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [weak, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
            if (auto live = weak.lock()) live->markReady(i);
            return outputs;
          }));
      r->accumulators[i] = std::move(acc);
    }
    std::lock_guard<std::mutex> lock(reducersMutex);
    reducers.push_back(r);
    return Napi::Number::New(env, static_cast<double>(reducers.size() - 1));
  });
}

// distReducerArm(id): the next backward launches buckets as they fill.
Napi::Value DistReducerArm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, "gradient reducer", [&]() -> Napi::Value {
    auto r = reducerOf(info[0].As<Napi::Number>().Int64Value());
    std::lock_guard<std::mutex> lock(r->m);
    if (r->inFlight) throw UserError("the gradient reducer's last all-reduce was never finished (await finish() after backward)");
    r->liveGroup();
    std::fill(r->ready.begin(), r->ready.end(), 0);
    std::fill(r->filled.begin(), r->filled.end(), 0);
    for (size_t b = 0; b < r->buckets.size(); ++b) r->pending[b] = static_cast<int>(r->buckets[b].size());
    r->next = 0;
    r->launchedInBackward = 0;
    r->armed = true;
    return env.Undefined();
  });
}

// distReducerFinish(id) -> Promise<{started, filled}>: launches the rest (missing gradients as
// zeros), waits for every bucket, and writes the sums into the gradients. started: the buckets
// launched during backward; filled: the parameters whose gradient was missing here (now zeros).
Napi::Value DistReducerFinish(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, "gradient reducer", [&]() -> Napi::Value {
    auto r = reducerOf(info[0].As<Napi::Number>().Int64Value());
    auto g = r->liveGroup();
    {
      std::lock_guard<std::mutex> lock(r->m);
      if (!r->armed) throw UserError("the gradient reducer is not armed (call arm() before the backward whose gradients it sums)");
      r->armed = false;
      try {
        while (r->next < r->buckets.size()) r->launch(r->next++);
      } catch (const UserError&) {
        throw;
      } catch (...) {
        throw UserError(failureMessage(*g, "gradient all-reduce", currentExceptionMessage()));
      }
    }
    auto* w = new FinishWorker(env, r, g);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  });
}

// distReducerBuckets(id) -> [[parameter index, …], …] in launch order.
Napi::Value DistReducerBuckets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, "gradient reducer", [&]() -> Napi::Value {
    auto r = reducerOf(info[0].As<Napi::Number>().Int64Value());
    Napi::Array out = Napi::Array::New(env, r->buckets.size());
    for (size_t b = 0; b < r->buckets.size(); ++b) {
      Napi::Array ids = Napi::Array::New(env, r->buckets[b].size());
      for (size_t k = 0; k < r->buckets[b].size(); ++k) ids.Set(static_cast<uint32_t>(k), static_cast<double>(r->buckets[b][k]));
      out.Set(static_cast<uint32_t>(b), ids);
    }
    return out;
  });
}

// distReducerDestroy(id): removes the hooks and drops the reducer.
Napi::Value DistReducerDestroy(const Napi::CallbackInfo& info) {
  const int64_t id = info[0].As<Napi::Number>().Int64Value();
  std::shared_ptr<Reducer> r;
  {
    std::lock_guard<std::mutex> lock(reducersMutex);
    if (id >= 0 && static_cast<size_t>(id) < reducers.size()) std::swap(r, reducers[id]);
  }
  if (r) {
    std::lock_guard<std::mutex> lock(r->m);
    r->armed = false;
    r->removeHooks();
  }
  return info.Env().Undefined();
}

}  // namespace ts
