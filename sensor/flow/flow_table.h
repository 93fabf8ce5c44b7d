#pragma once
// Bidirectional flow table: 5-tuple + VLAN tags key, bounded capacity with LRU eviction, idle and
// absolute timeouts driven by packet time (never the wall clock), TCP state, per-direction
// counters. Application state hangs off each flow through FlowExtension, allocated only for
// flows that carry payload.
#include <array>
#include <bitset>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "sensor/common/counters.h"
#include "sensor/common/types.h"
#include "sensor/decode/packet.h"

namespace medmon {

struct FlowLimits {
  size_t max_flows = 1'000'000;
  int64_t tcp_idle_usec = 600'000'000;      // established / unknown TCP
  int64_t tcp_closed_usec = 10'000'000;     // after FIN both ways or RST
  int64_t udp_idle_usec = 120'000'000;      // UDP and everything else
  int64_t absolute_usec = 3'600'000'000;    // a flow record at least every hour
  bool operator==(const FlowLimits&) const = default;
};

struct FlowKey {
  IpAddr a, b;  // normalised: (a, pa) <= (b, pb)
  uint16_t pa = 0, pb = 0;
  uint16_t vlan = 0;        // outer 802.1Q id, 0 when untagged
  uint16_t vlan_inner = 0;  // the second tag of a QinQ stack: each inner VLAN is a network of its own
  uint8_t proto = 0;
  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const noexcept;
};

enum class FlowEnd : uint8_t { closed, reset, idle_timeout, absolute_timeout, evicted, end_of_input, interrupted, reused };
const char* flow_end_name(FlowEnd e);

// How a flow's client was told from its server, weakest first. A TCP flow picked up without its
// handshake (the capture started mid-connection, or a long-lived connection went on after its
// flow timed out) is oriented by the evidence it gives, as Zeek and Suricata do.
enum class Orientation : uint8_t {
  first_packet,  // no evidence: the sender of the first packet is the client
  port,          // mid-stream TCP: one side's port is a service port, the other's is not
  content,       // mid-stream TCP: a dissector recognised a message only one side sends
  syn,           // the SYN, or the SYN-ACK (its receiver is the client)
};
const char* orientation_name(Orientation o);

// The ports that name the server side of a TCP flow picked up mid-connection (and of a UDP flow
// whose first packet is an answer): the well-known ports (below 1024) and those the dissectors
// register.
class ServicePorts {
 public:
  void add(uint16_t port) { registered_.set(port); }
  // Below 1024 a port is a service's, but for the DHCP and DHCPv6 client ports: a server's
  // reply from 67 to 68 (547 to 546) is an answer, its request often not captured (broadcast).
  bool is_service(uint16_t port) const {
    if (port == 68 || port == 546) return false;
    return port < 1024 || registered_.test(port);
  }
  // 0: the side with port `pa` is the server, 1: the side with `pb`, -1: the ports do not tell.
  int server_side(uint16_t pa, uint16_t pb) const {
    bool a = is_service(pa), b = is_service(pb);
    if (a == b) return -1;
    return a ? 0 : 1;
  }

 private:
  std::bitset<65536> registered_;
};

// What flow tracking made of a TCP packet (Flow::tcp_packet).
enum class TcpVerdict : uint8_t {
  ok,
  // Its ACK acknowledges bytes the other side cannot have sent: past the highest sequence number
  // seen from that side by more than the largest window the acknowledging side can advertise.
  ack_out_of_window,
  // An RST whose sequence number is outside its receiver's window: ignored, as a TCP stack
  // ignores it (RFC 5961), so that a stray or forged RST does not end the flow.
  rst_out_of_window,
};

class FlowExtension {
 public:
  virtual ~FlowExtension() = default;
};

struct Flow {
  FlowKey key;
  bool client_is_a = true;
  Orientation orientation = Orientation::first_packet;
  bool continued = false;  // the next record of a connection split at the absolute timeout
  bool syn_seen = false, synack_seen = false, rst_seen = false;
  std::array<bool, 2> fin_seen{};
  uint8_t lru_class = 0;
  std::array<bool, 2> isn_seen{};       // per direction: SYN seen, isn valid
  std::array<uint32_t, 2> isn{};
  std::array<int8_t, 2> wscale{-1, -1};  // per direction: window scale option of its SYN, -1 none
  // Per direction, in sequence space: just past the highest sequence number seen from the side
  // (SYN and FIN count one), and the highest acknowledgment number it sent. Known once a packet
  // gave it; they tell which ACKs and RSTs are plausible.
  std::array<uint32_t, 2> seq_next{}, ack_next{};
  std::array<bool, 2> seq_known{}, ack_known{};
  Timestamp start, last;
  // The input position of its last packet (with --workers: the reader's count, which orders the
  // flows that end together over all workers as one flow table orders them).
  uint64_t last_input = 0;
  // Its last packet's time as the idle timeout counts it: put back when packet time went back.
  Timestamp idle_from;
  std::array<uint64_t, 2> pkts{}, bytes{}, payload_bytes{};
  std::array<uint8_t, 2> tcp_flags{};
  std::array<uint8_t, 6> client_mac{}, server_mac{};
  // Per direction (0: to the server): its first frame went to the Ethernet broadcast address.
  std::array<bool, 2> l2_broadcast{};
  Flow* lru_prev = nullptr;
  Flow* lru_next = nullptr;
  std::unique_ptr<FlowExtension> ext;

  const IpAddr& client_ip() const { return client_is_a ? key.a : key.b; }
  const IpAddr& server_ip() const { return client_is_a ? key.b : key.a; }
  uint16_t client_port() const { return client_is_a ? key.pa : key.pb; }
  uint16_t server_port() const { return client_is_a ? key.pb : key.pa; }
  bool closing() const { return rst_seen || (fin_seen[0] && fin_seen[1]); }
  // Tracks a TCP packet of direction d (0: to the server): handshake, FIN, RST, sequence space.
  // An RST outside its receiver's window changes nothing. An ACK for bytes the other side cannot
  // have sent is not taken as how far that side got (the caller must not take it either).
  TcpVerdict tcp_packet(int d, const Packet& p);
  // The largest receive window side d can advertise, in bytes: 65535 shifted by the window scale
  // the handshake agreed (none unless both SYNs carried the option). Without both SYNs the scale
  // is not known: kUnknownWindow.
  uint32_t max_window(int d) const;
  static constexpr uint32_t kUnknownWindow = 65535u << 8;  // about 16 MiB
  // Swaps client and server with everything counted per direction (a mid-stream flow whose
  // content shows that its first packet came from the server). The id changes with them.
  void reverse();
  // Deterministic id: a hash of the oriented 5-tuple, VLAN and start time.
  std::string id() const;
};

class FlowTable {
 public:
  using EndFn = std::function<void(Flow&, FlowEnd)>;

  FlowTable(FlowLimits limits, Counters& counters, EndFn on_end);
  ~FlowTable();

  // The ports that orient a TCP flow picked up without its handshake (else only ports < 1024).
  void set_service_ports(const ServicePorts& ports) { service_ports_ = ports; }

  // Finds or creates the flow of a decoded packet and tells the packet's direction; `now` is
  // packet time as timeouts count it. May end other flows first (capacity eviction, reuse of a
  // closed 5-tuple by a new SYN, absolute timeout), calling on_end for each. A flow idle past its
  // timeout at `now` ends (`idle_timeout`, or `closed`/`reset`) and the packet starts a new one,
  // whether or not expire() ran since. Only that flow ends here: the other flows due end at the
  // next expire(), so which flows a packet ends does not depend on what else the table holds
  // (with --workers, the other workers' flows are in other tables).
  Flow& lookup(const Packet& p, Dir& dir, Timestamp now);
  Flow& lookup(const Packet& p, Dir& dir) { return lookup(p, dir, p.ts); }
  // Marks activity at packet time `now`: moves the flow to the back of its timeout list.
  void touch(Flow& f, Timestamp now);
  // Packet time went back to `now`: flows last active later count their idle time from `now`,
  // so that they neither stay forever nor hold back the timeouts of the flows behind them.
  void time_went_back(Timestamp now);
  // Ends flows idle longer than their timeout at packet time `now`, in the order of their last
  // packets (whatever their timeout class), so that their events come out in time order.
  void expire(Timestamp now);
  // Ends every flow (end of input, shutdown).
  void end_all(FlowEnd why);

  size_t size() const { return map_.size(); }
  const FlowLimits& limits() const { return limits_; }

 private:
  struct List { Flow* head = nullptr; Flow* tail = nullptr; };
  void unlink(Flow& f);
  void push_back(Flow& f);
  int64_t timeout_of(const Flow& f) const;
  bool due(const Flow& f, Timestamp now) const { return now.usec - f.idle_from.usec > timeout_of(f); }
  // What a flow ended by its timeout is: closed by FIN or RST, or idle.
  static FlowEnd timed_out_as(const Flow& f);
  void end(Flow& f, FlowEnd why);

  FlowLimits limits_;
  ServicePorts service_ports_;
  EndFn on_end_;
  std::unordered_map<FlowKey, Flow, FlowKeyHash> map_;
  // 0: TCP open, 1: TCP closing, 2: UDP/other, 3: TCP half-open (no answer, no payload yet);
  // one timeout each (half-open uses the TCP idle timeout) and LRU order within each.
  std::array<List, 4> lists_;
  uint64_t& c_created_;
  uint64_t& c_evicted_;
  uint64_t& c_timeout_;  // idle_timeout, absolute_timeout
  uint64_t& c_closed_;   // closed, reset: ended by the endpoints
  uint64_t& c_peak_;
  uint64_t& c_reused_;
  uint64_t& c_reversed_by_port_;
};

}  // namespace medmon
