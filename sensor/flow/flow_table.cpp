#include "sensor/flow/flow_table.h"

#include <cstring>
#include <utility>

namespace medmon {

namespace {
inline uint64_t fnv(uint64_t h, const void* p, size_t n) {
  auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) { h ^= b[i]; h *= 1099511628211ULL; }
  return h;
}
inline uint64_t mix(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
  return x;
}
}  // namespace

size_t FlowKeyHash::operator()(const FlowKey& k) const noexcept {
  uint64_t w[5];
  std::memcpy(&w[0], k.a.b.data(), 8);
  std::memcpy(&w[1], k.a.b.data() + 8, 8);
  std::memcpy(&w[2], k.b.b.data(), 8);
  std::memcpy(&w[3], k.b.b.data() + 8, 8);
  w[4] = uint64_t(k.vlan_inner) << 48 | uint64_t(k.pa) << 32 | uint64_t(k.pb) << 16 | uint64_t(k.vlan) << 4 | k.proto;
  uint64_t h = 0x9E3779B97F4A7C15ULL;
  for (uint64_t x : w) h = mix(h ^ x) + 0x9E3779B97F4A7C15ULL;
  return static_cast<size_t>(h);
}

const char* flow_end_name(FlowEnd e) {
  switch (e) {
    case FlowEnd::closed: return "closed";
    case FlowEnd::reset: return "reset";
    case FlowEnd::idle_timeout: return "idle_timeout";
    case FlowEnd::absolute_timeout: return "absolute_timeout";
    case FlowEnd::evicted: return "evicted";
    case FlowEnd::end_of_input: return "end_of_input";
    case FlowEnd::interrupted: return "interrupted";
    case FlowEnd::reused: return "reused";
  }
  return "unknown";
}

const char* orientation_name(Orientation o) {
  switch (o) {
    case Orientation::first_packet: return "first_packet";
    case Orientation::port: return "port";
    case Orientation::content: return "content";
    case Orientation::syn: return "syn";
  }
  return "first_packet";
}

void Flow::reverse() {
  client_is_a = !client_is_a;
  std::swap(isn_seen[0], isn_seen[1]);
  std::swap(isn[0], isn[1]);
  std::swap(wscale[0], wscale[1]);
  std::swap(seq_next[0], seq_next[1]);
  std::swap(ack_next[0], ack_next[1]);
  std::swap(seq_known[0], seq_known[1]);
  std::swap(ack_known[0], ack_known[1]);
  std::swap(fin_seen[0], fin_seen[1]);
  std::swap(pkts[0], pkts[1]);
  std::swap(bytes[0], bytes[1]);
  std::swap(payload_bytes[0], payload_bytes[1]);
  std::swap(tcp_flags[0], tcp_flags[1]);
  std::swap(client_mac, server_mac);
  std::swap(l2_broadcast[0], l2_broadcast[1]);
}

namespace {
// a after b in sequence space (RFC 1982 serial arithmetic).
inline bool seq_after(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
// a within `window` of b, either way.
inline bool seq_near(uint32_t a, uint32_t b, uint32_t window) {
  int64_t diff = static_cast<int32_t>(a - b);
  return diff <= static_cast<int64_t>(window) && -diff <= static_cast<int64_t>(window);
}
}  // namespace

uint32_t Flow::max_window(int d) const {
  if (!isn_seen[0] || !isn_seen[1]) return kUnknownWindow;
  // Scaling is in effect only when both SYNs offered it (RFC 7323, 2.2).
  int scale = wscale[0] >= 0 && wscale[1] >= 0 ? wscale[d] : 0;
  return 65535u << scale;
}

TcpVerdict Flow::tcp_packet(int d, const Packet& p) {
  int other = 1 - d;
  if (p.tcp_flags & tcpflag::RST) {
    // The receiver expects the sequence number just past what this side sent: what we saw of this
    // side, or what the receiver acknowledged. Either within the receiver's window will do (we may
    // have missed packets of both). Neither known yet (picked up mid-stream, nothing seen of this
    // side nor acknowledged to it): taken as it comes.
    uint32_t window = max_window(other);
    bool known = seq_known[d] || ack_known[other];
    bool in_window = (seq_known[d] && seq_near(p.seq, seq_next[d], window)) ||
                     (ack_known[other] && seq_near(p.seq, ack_next[other], window));
    if (known && !in_window) return TcpVerdict::rst_out_of_window;
    rst_seen = true;
  }
  tcp_flags[d] |= p.tcp_flags;
  if (p.tcp_flags & tcpflag::SYN) {
    if (p.tcp_flags & tcpflag::ACK) synack_seen = true; else syn_seen = true;
    if (!isn_seen[d]) { isn_seen[d] = true; isn[d] = p.seq; wscale[d] = p.tcp_wscale; }
  }
  if (p.tcp_flags & tcpflag::FIN) fin_seen[d] = true;
  uint32_t end = p.seq + p.payload_len + ((p.tcp_flags & tcpflag::SYN) ? 1 : 0) + ((p.tcp_flags & tcpflag::FIN) ? 1 : 0);
  if (!seq_known[d] || seq_after(end, seq_next[d])) { seq_next[d] = end; seq_known[d] = true; }
  if (!(p.tcp_flags & tcpflag::ACK)) return TcpVerdict::ok;
  // The other side can have sent up to a window past what we saw of it (its data lost to the
  // capture), not beyond: the receiver's window bounds what is in flight.
  if (seq_known[other] && seq_after(p.ack, seq_next[other] + max_window(d))) return TcpVerdict::ack_out_of_window;
  if (!ack_known[d] || seq_after(p.ack, ack_next[d])) { ack_next[d] = p.ack; ack_known[d] = true; }
  return TcpVerdict::ok;
}

std::string Flow::id() const {
  uint64_t h = 14695981039346656037ULL;
  const IpAddr& c = client_ip();
  const IpAddr& s = server_ip();
  uint16_t cp = client_port(), sp = server_port();
  h = fnv(h, c.b.data(), 16);
  h = fnv(h, &cp, 2);
  h = fnv(h, s.b.data(), 16);
  h = fnv(h, &sp, 2);
  h = fnv(h, &key.proto, 1);
  h = fnv(h, &key.vlan, 2);
  if (key.vlan_inner) h = fnv(h, &key.vlan_inner, 2);  // single-tagged flows keep their ids
  h = fnv(h, &start.usec, 8);
  h = mix(h);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(17, 'F');
  for (int i = 0; i < 16; ++i) out[1 + i] = hex[(h >> (60 - 4 * i)) & 15];
  return out;
}

FlowTable::FlowTable(FlowLimits limits, Counters& counters, EndFn on_end)
    : limits_(limits),
      on_end_(std::move(on_end)),
      c_created_(counters.at("flows.created")),
      c_evicted_(counters.at("flows.evicted")),
      c_timeout_(counters.at("flows.timed_out")),
      c_closed_(counters.at("flows.closed")),
      c_peak_(counters.at("flows.peak_active")),
      c_reused_(counters.at("flows.tuple_reused")),
      c_reversed_by_port_(counters.at("flows.reversed_by_port")) {
  map_.reserve(std::min<size_t>(limits_.max_flows, 1u << 16));
}

FlowTable::~FlowTable() = default;

void FlowTable::unlink(Flow& f) {
  List& l = lists_[f.lru_class];
  if (f.lru_prev) f.lru_prev->lru_next = f.lru_next; else l.head = f.lru_next;
  if (f.lru_next) f.lru_next->lru_prev = f.lru_prev; else l.tail = f.lru_prev;
  f.lru_prev = f.lru_next = nullptr;
}

void FlowTable::push_back(Flow& f) {
  if (f.key.proto != 6) f.lru_class = 2;
  else if (f.closing()) f.lru_class = 1;
  // Nothing back from the responder and no payload yet: what a SYN flood or a scan creates.
  else if (f.pkts[1] == 0 && !f.synack_seen && f.payload_bytes[0] == 0) f.lru_class = 3;
  else f.lru_class = 0;
  List& l = lists_[f.lru_class];
  f.lru_prev = l.tail;
  f.lru_next = nullptr;
  if (l.tail) l.tail->lru_next = &f; else l.head = &f;
  l.tail = &f;
}

void FlowTable::touch(Flow& f, Timestamp now) {
  unlink(f);
  f.idle_from = now;
  push_back(f);
}

void FlowTable::time_went_back(Timestamp now) {
  // Each list is in order of idle_from: the flows to put back are at its tail, and the list
  // stays in order.
  for (auto& l : lists_)
    for (Flow* f = l.tail; f && f->idle_from.usec > now.usec; f = f->lru_prev) f->idle_from = now;
}

int64_t FlowTable::timeout_of(const Flow& f) const {
  switch (f.lru_class) {
    case 0: case 3: return limits_.tcp_idle_usec;
    case 1: return limits_.tcp_closed_usec;
    default: return limits_.udp_idle_usec;
  }
}

FlowEnd FlowTable::timed_out_as(const Flow& f) {
  if (f.lru_class == 1) return f.rst_seen ? FlowEnd::reset : FlowEnd::closed;
  return FlowEnd::idle_timeout;
}

void FlowTable::end(Flow& f, FlowEnd why) {
  if (why == FlowEnd::idle_timeout || why == FlowEnd::absolute_timeout) ++c_timeout_;
  else if (why == FlowEnd::closed || why == FlowEnd::reset) ++c_closed_;
  unlink(f);
  if (on_end_) on_end_(f, why);
  FlowKey k = f.key;  // f is destroyed by erase
  map_.erase(k);
}

void FlowTable::expire(Timestamp now) {
  // Each list is in order of activity, its due flows at its head: of the due heads, the flow
  // whose last packet came first ends first.
  for (;;) {
    Flow* first = nullptr;
    for (auto& l : lists_)
      if (l.head && due(*l.head, now) && (!first || l.head->last < first->last)) first = l.head;
    if (!first) break;
    end(*first, timed_out_as(*first));
  }
}

void FlowTable::end_all(FlowEnd why) {
  // Oldest first, so output order follows flow activity.
  for (;;) {
    Flow* oldest = nullptr;
    for (auto& l : lists_)
      if (l.head && (!oldest || l.head->last < oldest->last)) oldest = l.head;
    if (!oldest) break;
    // A connection already closed by FIN/RST is reported as such, whatever ended the input.
    FlowEnd w = oldest->closing() ? (oldest->rst_seen ? FlowEnd::reset : FlowEnd::closed) : why;
    end(*oldest, w);
  }
}

Flow& FlowTable::lookup(const Packet& p, Dir& dir, Timestamp now) {
  FlowKey k;
  bool src_is_a = (p.src < p.dst) || (p.src == p.dst && p.sport <= p.dport);
  if (src_is_a) { k.a = p.src; k.b = p.dst; k.pa = p.sport; k.pb = p.dport; }
  else { k.a = p.dst; k.b = p.src; k.pa = p.dport; k.pb = p.sport; }
  k.proto = p.proto;
  k.vlan = p.vlan_count ? p.vlan[0] : 0;
  k.vlan_inner = p.vlan_count > 1 ? p.vlan[1] : 0;

  int keep_client_is_a = -1;  // an absolute-timeout split keeps the flow's client and server
  Orientation keep_orientation = Orientation::first_packet;
  auto it = map_.find(k);
  if (it != map_.end() && due(it->second, now)) {
    // Its timeout passed before this packet, whether or not a check of timeouts came between
    // (that depends on other traffic): the flow ended then, and this packet starts a new one.
    end(it->second, timed_out_as(it->second));
    it = map_.end();
  }
  if (it != map_.end()) {
    Flow& f = it->second;
    bool from_client = (src_is_a == f.client_is_a);
    int d = from_client ? 0 : 1;
    bool new_syn = p.proto == 6 && (p.tcp_flags & (tcpflag::SYN | tcpflag::ACK)) == tcpflag::SYN;
    // A SYN with another initial sequence number than the one this side opened with, or from a
    // side seen only mid-stream, opens a new connection (a device that reconnects from the same
    // port, or a FIN the capture missed); the same SYN again is a retransmission.
    bool other_isn = new_syn && (f.isn_seen[d] ? p.seq != f.isn[d] : f.pkts[d] > 0);
    if (new_syn && f.closing()) {
      // A new connection on a closed 5-tuple: the old one ended as it closed.
      ++c_reused_;
      end(f, f.rst_seen ? FlowEnd::reset : FlowEnd::closed);
    } else if (other_isn) {
      ++c_reused_;
      end(f, FlowEnd::reused);
    } else if (p.ts.usec - f.start.usec > limits_.absolute_usec) {
      keep_client_is_a = f.client_is_a;
      keep_orientation = f.orientation;
      end(f, FlowEnd::absolute_timeout);
    } else {
      dir = from_client ? Dir::to_server : Dir::to_client;
      return f;
    }
  }
  while (map_.size() >= limits_.max_flows) {
    // Half-open flows go first, so a SYN flood cannot push established connections out.
    Flow* oldest = lists_[3].head;
    if (!oldest)
      for (auto& l : lists_)
        if (l.head && (!oldest || l.head->last < oldest->last)) oldest = l.head;
    if (!oldest) break;
    ++c_evicted_;
    end(*oldest, FlowEnd::evicted);
  }
  auto [nit, inserted] = map_.try_emplace(k);
  Flow& f = nit->second;
  f.key = k;
  f.start = f.last = f.idle_from = p.ts;
  bool synack = p.proto == 6 && (p.tcp_flags & (tcpflag::SYN | tcpflag::ACK)) == (tcpflag::SYN | tcpflag::ACK);
  bool syn = p.proto == 6 && (p.tcp_flags & tcpflag::SYN);
  // The client is the sender of the first packet, unless that packet is a SYN-ACK; without a
  // SYN (and on UDP), a service port against one that is not names the server.
  f.client_is_a = synack ? !src_is_a : src_is_a;
  f.orientation = syn ? Orientation::syn : Orientation::first_packet;
  if (keep_client_is_a >= 0) {
    f.client_is_a = keep_client_is_a == 1;
    f.orientation = keep_orientation;
    f.continued = true;
  } else if ((p.proto == 6 && !syn) || p.proto == 17) {
    // UDP has no handshake at all: an answer seen before its request (the request lost, or sent
    // before the capture began) would make the server the client.
    int server = service_ports_.server_side(k.pa, k.pb);
    // A UDP flow's first packet is its client's as a rule: the port is the evidence only when
    // it says otherwise.
    if (server >= 0 && p.proto == 17 && (server == 1) == f.client_is_a) server = -1;
    if (server >= 0) {
      bool client_is_a = server == 1;
      if (client_is_a != f.client_is_a) ++c_reversed_by_port_;
      f.client_is_a = client_is_a;
      f.orientation = Orientation::port;
    }
  }
  dir = src_is_a == f.client_is_a ? Dir::to_server : Dir::to_client;
  push_back(f);
  ++c_created_;
  if (map_.size() > c_peak_) c_peak_ = map_.size();
  return f;
}

}  // namespace medmon
