// A c10d process group as the addon holds it (dist.cc creates them; grad_reducer.cc uses them):
// its rendezvous store, the c10d ProcessGroup, and the heartbeat that lets a failure name the rank
// that stopped answering.
#pragma once

#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#if defined(TINYSEEK_NCCL)
#define USE_C10D_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "state.h"

namespace ts {

constexpr auto kBeat = std::chrono::milliseconds(250);

struct Group {
  std::string host;
  int port = 0;
  int rank = 0;
  int size = 1;
  std::string backend;
  std::chrono::milliseconds timeout{60000};
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  // heartbeat: its own store client, so that it never waits behind a collective's store traffic
  c10::intrusive_ptr<c10d::Store> beatStore;
  std::thread beat;
  std::atomic<bool> stop{false};

  ~Group() {
    stop = true;
    if (beat.joinable()) beat.join();
  }
};

// The live group with this id; a UserError when it was destroyed or never created.
std::shared_ptr<Group> groupOf(int64_t id);

// "<what> on rank r of n failed: rank k stopped answering (<cause>)": probes the heartbeats.
std::string failureMessage(Group& g, const std::string& what, const std::string& cause);

}  // namespace ts
