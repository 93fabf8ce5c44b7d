#pragma once
// Budgets of bytes over all flows (MLLP frames, HTTP bodies being assembled) are kept per worker
// thread, each with its share of the total, as the engine splits its own caps (worker_share):
// which flow meets a budget then depends only on that worker's own flows, never on how the
// threads interleave, and the total still holds for the process.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <optional>

namespace medmon {

inline constexpr int kMaxWorkerSlots = 64;

namespace detail {
inline std::atomic<int> worker_slots{1};
inline thread_local int worker_slot = 0;
}  // namespace detail

// How many workers share the budgets: called before any worker runs a dissector.
inline void set_worker_slots(int n) {
  detail::worker_slots.store(n < 1 ? 1 : n > kMaxWorkerSlots ? kMaxWorkerSlots : n);
}
// Which worker the calling thread is (0..n-1): called by each worker thread before its first packet.
inline void set_worker_slot(int i) { detail::worker_slot = i < 0 || i >= kMaxWorkerSlots ? 0 : i; }

// The calling worker's share of a budget of `total` bytes, one per Tag and worker, made on the
// worker's first use as Budget(share). A share is never below `least` (what one message may
// hold), so that a message within its own cap is never refused for the number of workers. It
// lives as long as the process, so what holds bytes of it may give them back from any thread.
template <class Tag, class Budget>
Budget& worker_budget(size_t total, size_t least) {
  static std::array<std::optional<Budget>, kMaxWorkerSlots> budgets;
  auto& b = budgets[static_cast<size_t>(detail::worker_slot)];
  if (!b) b.emplace(std::max(least, total / static_cast<size_t>(detail::worker_slots.load())));
  return *b;
}

}  // namespace medmon
