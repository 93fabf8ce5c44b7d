#pragma once
// Servers a protocol's own traffic announced (an SDC device's https address in a WS-Discovery
// Hello): a TLS flow to one is named after that protocol (DissectorInfo::tls_server). The
// announcing dissector keeps them, one set for the process.
//
// analyze --workers reads an announcement on one worker and may end the TLS flow on another,
// before or after it. Its workers therefore record their announcements instead of keeping them,
// with where in the input they were read, and the merge replays them on the merging thread in
// output order and names the TLS flows there (OfflineWorkers): the name is the one a single
// pipeline gives, whatever the number of workers and however the threads interleave.
#include <cstdint>

#include "sensor/common/types.h"

namespace medmon {

// True when keeping the server made the protocol forget another (its set was full): counted as
// `announced_servers.evicted`.
using RememberServer = bool (*)(const IpAddr& ip, uint16_t port);
inline constexpr const char* kAnnouncedServersEvicted = "announced_servers.evicted";

class AnnouncementRecorder {
 public:
  virtual ~AnnouncementRecorder() = default;
  // `remember(ip, port)` is what the dissector would have done; the merge calls it in its turn.
  virtual void announced(RememberServer remember, const IpAddr& ip, uint16_t port) = 0;
};

namespace detail {
inline thread_local AnnouncementRecorder* announcement_recorder = nullptr;
}  // namespace detail

// Called by a worker thread whose announcements a merge replays (null: none, the default).
inline void set_announcement_recorder(AnnouncementRecorder* r) { detail::announcement_recorder = r; }

// Called by a dissector for each server it read announced: true when the calling thread records
// announcements for a merge (which calls remember(ip, port) later, on its own thread); false when
// the dissector keeps the server now.
inline bool recorded_for_merge(RememberServer remember, const IpAddr& ip, uint16_t port) {
  if (!detail::announcement_recorder) return false;
  detail::announcement_recorder->announced(remember, ip, port);
  return true;
}

}  // namespace medmon
