#include "sensor/decode/ip_fragments.h"

#include <algorithm>
#include <cstring>

namespace medmon {

FragmentTable::FragmentTable(FragmentLimits limits, Counters& c)
    : limits_(limits),
      c_complete_(c.at("ip.fragments.reassembled")),
      c_timeout_(c.at("ip.fragments.timeout")),
      c_evicted_(c.at("ip.fragments.evicted")),
      c_too_big_(c.at("ip.fragments.too_big")),
      c_too_many_pieces_(c.at("ip.fragments.too_many_pieces")),
      c_incomplete_(c.at("ip.fragments.incomplete")) {}

void FragmentTable::drop_all() {
  while (!order_.empty()) drop(table_.find(order_.front()), c_incomplete_);
}

void FragmentTable::drop(std::map<Key, Datagram>::iterator it, uint64_t& counter) {
  bytes_ -= it->second.data.size();
  order_.erase(it->second.age);
  table_.erase(it);
  ++counter;
}

void FragmentTable::expire(Timestamp now) {
  while (!order_.empty()) {
    auto it = table_.find(order_.front());
    if (now.usec - it->second.first.usec < limits_.timeout_usec) break;
    drop(it, c_timeout_);
  }
}

void FragmentTable::time_went_back(Timestamp now) {
  // order_ is in order of arrival: the datagrams to put back are at its end, and it stays in order.
  for (auto k = order_.rbegin(); k != order_.rend(); ++k) {
    Datagram& d = table_.find(*k)->second;
    if (d.first.usec <= now.usec) break;
    d.first = now;
  }
}

// In place: a sort per fragment made datagrams of thousands of disjoint pieces cost ~40 us per
// fragment.
void FragmentTable::merge_piece(std::vector<std::pair<uint32_t, uint32_t>>& have, uint32_t begin, uint32_t end) {
  auto first = std::lower_bound(have.begin(), have.end(), begin,
                                [](const auto& r, uint32_t v) { return r.second < v; });
  auto last = first;
  for (; last != have.end() && last->first <= end; ++last) {
    begin = std::min(begin, last->first);
    end = std::max(end, last->second);
  }
  have.insert(have.erase(first, last), {begin, end});
}

FragmentTable::Result FragmentTable::add(const Key& key, Timestamp ts, std::span<const uint8_t> header,
                                         uint32_t offset, bool more, std::span<const uint8_t> data,
                                         std::vector<uint8_t>& out, bool& conflict, bool late) {
  conflict = false;
  expire(ts);
  uint64_t end64 = uint64_t(offset) + data.size();
  if (end64 > 65535) { ++c_too_big_; return Result::dropped; }
  uint32_t end = static_cast<uint32_t>(end64);

  auto it = table_.find(key);
  if (it == table_.end()) {
    while (table_.size() >= limits_.max_datagrams && !order_.empty()) drop(table_.find(order_.front()), c_evicted_);
    it = table_.emplace(key, Datagram{}).first;
    it->second.first = ts;
    // Oldest first: expire() stops at the first datagram not yet due.
    auto at = order_.end();
    if (late)
      while (at != order_.begin() && table_.find(*std::prev(at))->second.first.usec > ts.usec) --at;
    it->second.age = order_.insert(at, key);
  }
  Datagram& d = it->second;
  // Fragments that contradict the datagram's length: a last fragment ending before data already
  // received or elsewhere than an earlier last fragment, or a fragment with more to follow beyond
  // the end a last fragment set. The datagram is dropped, as Linux drops it, rather than rebuilt
  // shorter than some of its fragments say.
  if (!more && (end < d.data.size() || (d.have_last && d.total != end))) { drop(it, c_too_big_); return Result::dropped; }
  if (more && d.have_last && end > d.total) { drop(it, c_too_big_); return Result::dropped; }
  if (offset == 0 || d.header.empty()) d.header.assign(header.begin(), header.end());
  if (!more) {
    d.have_last = true;
    d.total = end;
  }
  if (end > d.data.size()) {
    size_t grow = end - d.data.size();
    while (bytes_ + grow > limits_.max_bytes && order_.size() > 1) {
      auto oldest = table_.find(order_.front());
      if (oldest == it) break;
      drop(oldest, c_evicted_);
    }
    if (bytes_ + grow > limits_.max_bytes) { drop(it, c_evicted_); return Result::dropped; }
    d.data.resize(end);
    bytes_ += grow;
  }
  // Copy only into holes: the first copy of every byte wins; compare overlapped bytes.
  uint32_t pos = offset;
  auto& have = d.have;
  size_t i = static_cast<size_t>(std::lower_bound(have.begin(), have.end(), pos,
                                                  [](const auto& r, uint32_t v) { return r.second <= v; }) - have.begin());
  while (pos < end) {
    while (i < have.size() && have[i].second <= pos) ++i;
    uint32_t hole_end = (i < have.size()) ? std::min(end, std::max(pos, have[i].first)) : end;
    if (hole_end > pos) {
      std::memcpy(d.data.data() + pos, data.data() + (pos - offset), hole_end - pos);
      pos = hole_end;
    } else {
      uint32_t cover_end = std::min(end, have[i].second);
      if (std::memcmp(d.data.data() + pos, data.data() + (pos - offset), cover_end - pos) != 0) conflict = true;
      pos = cover_end;
    }
  }
  merge_piece(have, offset, end);
  if (have.size() > kMaxPieces) { drop(it, c_too_many_pieces_); return Result::dropped; }

  if (d.have_last && have.size() == 1 && have[0].first == 0 && have[0].second >= d.total) {
    // An IPv4 total length counts the header too (IPv6's payload length does not).
    bool v4 = !d.header.empty() && (d.header[0] >> 4) == 4;
    if (v4 && d.header.size() + d.total > 65535) { drop(it, c_too_big_); return Result::dropped; }
    out.assign(d.header.begin(), d.header.end());
    out.insert(out.end(), d.data.begin(), d.data.begin() + d.total);
    drop(it, c_complete_);
    return Result::complete;
  }
  return Result::pending;
}

}  // namespace medmon
