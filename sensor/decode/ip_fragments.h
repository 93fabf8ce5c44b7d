#pragma once
// Bounded IPv4/IPv6 fragment reassembly. Overlapping fragments keep the first copy of each byte
// (and are reported when their bytes differ: an evasion technique). Datagrams that never
// complete are dropped after a timeout or when the table is full, with counters.
#include <array>
#include <cstdint>
#include <list>
#include <map>
#include <span>
#include <vector>

#include "sensor/common/counters.h"
#include "sensor/common/types.h"

namespace medmon {

struct FragmentLimits {
  size_t max_datagrams = 4096;             // pending datagrams at once
  size_t max_bytes = 64ull << 20;          // all pending fragment data
  int64_t timeout_usec = 30'000'000;       // packet time
  bool operator==(const FragmentLimits&) const = default;
};

class FragmentTable {
 public:
  // A datagram's fragments share addresses, identification, protocol and the VLAN tags of the
  // link they came on: two VLANs are two networks, whose hosts may pick the same identification.
  struct Key {
    IpAddr src, dst;
    uint32_t id = 0;
    uint8_t proto = 0;
    std::array<uint16_t, 2> vlan{};  // outer first, 0 when untagged
    auto operator<=>(const Key&) const = default;
  };
  enum class Result { pending, complete, dropped };

  FragmentTable(FragmentLimits limits, Counters& c);

  // Adds a fragment. `header` is the IP header to rebuild the datagram with (IPv4 header, or
  // the 40-byte IPv6 base header); offset in bytes. When complete, `out` holds the whole IP
  // datagram (rebuilt header + payload) and stays valid until the next call.
  // `conflict` is set when an overlap carried different bytes.
  // late: the fragment comes after others of a later time (analyze --workers: held in the reader
  // for its first fragment), where one table would have taken it earlier: a datagram it begins is
  // put among the others by its time, so that it times out when the table would have timed it out.
  Result add(const Key& key, Timestamp ts, std::span<const uint8_t> header, uint32_t offset,
             bool more, std::span<const uint8_t> data, std::vector<uint8_t>& out, bool& conflict,
             bool late = false);
  void expire(Timestamp now);
  // The input ended: datagrams still waiting are dropped (counted in ip.fragments.incomplete).
  void drop_all();
  // Packet time went back to `now`: datagrams begun later wait for their timeout from `now`.
  void time_went_back(Timestamp now);
  size_t pending() const { return table_.size(); }
  // Disjoint received pieces one datagram may have; real senders make one growing piece.
  static constexpr size_t kMaxPieces = 256;
  // Adds [begin, end) to a sorted list of merged received pieces, joining those it touches.
  static void merge_piece(std::vector<std::pair<uint32_t, uint32_t>>& have, uint32_t begin, uint32_t end);
  size_t bytes() const { return bytes_; }

 private:
  struct Datagram {
    Timestamp first;
    std::vector<uint8_t> header;
    std::vector<uint8_t> data;                      // grows to the highest end seen
    std::vector<std::pair<uint32_t, uint32_t>> have; // sorted, merged [begin, end)
    uint32_t total = 0;                              // known once the last fragment arrives
    bool have_last = false;
    std::list<Key>::iterator age;
  };
  void drop(std::map<Key, Datagram>::iterator it, uint64_t& counter);

  FragmentLimits limits_;
  std::map<Key, Datagram> table_;
  std::list<Key> order_;  // oldest first
  size_t bytes_ = 0;
  uint64_t& c_complete_;
  uint64_t& c_timeout_;
  uint64_t& c_evicted_;
  uint64_t& c_too_big_;
  uint64_t& c_too_many_pieces_;
  uint64_t& c_incomplete_;
};

}  // namespace medmon
