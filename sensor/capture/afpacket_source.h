#pragma once
// Linux AF_PACKET capture with a TPACKET_V3 memory-mapped ring. Several sources opened on the
// same interface with the same fanout group id share the traffic by flow hash
// (PACKET_FANOUT_HASH, symmetric, with IP defragmentation), one per worker thread.
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace medmon {

struct AfPacketOptions {
  std::string iface;
  int fanout_group = 0;          // 0: no fanout (single worker)
  size_t block_size = 1u << 22;  // 4 MiB blocks
  size_t block_count = 64;       // ring = 256 MiB per worker by default
  int snaplen = 65535;
  bool promisc = true;
  std::string bpf;               // compiled with libpcap, attached to the socket
  int block_timeout_ms = 100;
};

class AfPacketSource {
 public:
  // Throws std::runtime_error with a one-line message.
  explicit AfPacketSource(const AfPacketOptions& o);
  ~AfPacketSource();
  AfPacketSource(const AfPacketSource&) = delete;
  AfPacketSource& operator=(const AfPacketSource&) = delete;

  using Handler = std::function<void(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, int64_t usec)>;
  // Waits up to timeout_ms for a block, hands every packet in ready blocks to h; returns the
  // number of packets delivered.
  size_t poll(int timeout_ms, const Handler& h);
  // Replaces the socket's kernel filter (empty: none), e.g. on a reload; the ring stays.
  // Throws std::runtime_error on an expression that does not compile. Ignored once the intake
  // is closed. May be called from another thread than poll().
  void set_filter(const std::string& bpf);
  // Stopping: the kernel puts no more frames into the ring (a filter that takes none), and
  // drain() then hands over what the ring holds: the blocks ready, then the one the kernel was
  // filling, which it hands over within the block timeout. Bounded: at most every block once
  // more. Returns the number of packets delivered.
  void close_intake();
  size_t drain(const Handler& h);
  // The interface as poll() last saw it. Taken down, the kernel stops feeding the socket (and
  // says so once, by a socket error, ENETDOWN); it feeds it again when the interface is up. A
  // deleted interface never comes back: `gone`.
  enum class Link { up, down, gone };
  Link link() const { return link_; }
  // The socket error poll() read, other than the interface going down (0: none); taken once.
  int take_error() { return std::exchange(error_, 0); }
  // The link type of the frames handed over (a pcap DLT): Ethernet, or raw IP on a tun device.
  int datalink() const { return dlt_; }
  // Kernel counters since the socket was opened.
  void stats(uint64_t& received, uint64_t& dropped, uint64_t& freeze_q);
  // Frames handed to poll()'s and drain()'s handler so far. After drain(), received - dropped
  // - delivered() is what the kernel put into the ring and was not analysed.
  uint64_t delivered() const { return delivered_; }

 private:
  int fd_ = -1;
  int dlt_ = 1;           // DLT_EN10MB
  int snaplen_ = 65535;   // frames are cut to it here (the kernel cuts them only through a filter)
  std::string iface_;     // where set_filter opens a live handle to compile on
  uint8_t* ring_ = nullptr;
  size_t ring_size_ = 0;
  size_t block_size_ = 0, block_count_ = 0, next_block_ = 0;
  int block_timeout_ms_ = 100;
  uint64_t received_ = 0, dropped_ = 0, freeze_ = 0;
  uint64_t delivered_ = 0;
  std::mutex filter_m_;   // set_filter (reload thread) against close_intake (worker)
  bool intake_closed_ = false;
  // Hands every packet of a ready block to h and gives the block back to the kernel.
  size_t read_block(const Handler& h);
  std::vector<uint8_t> vlan_buf_;
  unsigned ifindex_ = 0;
  Link link_ = Link::up;
  int error_ = 0;
  // Reads the pending socket error (clearing it, so that poll() waits again).
  void read_socket_error();
  // While down: is the interface still there, and up again?
  void check_link();
};

}  // namespace medmon
