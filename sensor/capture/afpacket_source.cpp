#include "sensor/capture/afpacket_source.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "sensor/common/diag.h"

namespace medmon {

namespace {
[[noreturn]] void fail(const std::string& iface, const std::string& what) {
  throw std::runtime_error(iface + ": " + what + ": " + std::strerror(errno));
}

// A libpcap handle activated on the interface (of link type dlt), so that pcap_compile
// generates code as for a live Linux capture; null when it cannot be opened. Not promiscuous,
// with a small buffer: it is closed as soon as the filter is compiled.
pcap_t* open_live_for_compile(const std::string& iface, int snaplen, int dlt) {
  char err[PCAP_ERRBUF_SIZE] = {0};
  pcap_t* p = pcap_create(iface.c_str(), err);
  if (!p) return nullptr;
  pcap_set_snaplen(p, snaplen);
  pcap_set_promisc(p, 0);
  pcap_set_buffer_size(p, 1 << 16);
  // > 0 is a warning: the handle is usable. This socket reads frames as they are on the link,
  // which the code of another link type (libpcap's cooked mode) would misread.
  if (pcap_activate(p) < 0 || pcap_datalink(p) != dlt) {
    pcap_close(p);
    return nullptr;
  }
  return p;
}

// The link type of what a SOCK_RAW packet socket reads on an interface of this ARP hardware
// type: as libpcap maps it, for the types whose frames the socket hands over as on the link.
// -1: not one of them.
int linktype_of(int arphrd) {
  switch (arphrd) {
    case ARPHRD_ETHER:
    case ARPHRD_LOOPBACK:  // Linux puts an Ethernet header of zeros on loopback frames
      return DLT_EN10MB;
    case ARPHRD_NONE:      // tun devices: the IP packet, no link header
    case ARPHRD_RAWIP:     // cellular modems
      return DLT_RAW;
    default:
      return -1;
  }
}
}  // namespace

AfPacketSource::AfPacketSource(const AfPacketOptions& o) {
  // Protocol 0: no packet is queued before bind() below. With ETH_P_ALL here the socket would
  // take every interface's traffic (a veth's sent frames and its peer's received ones: twice)
  // while the ring is being set up.
  fd_ = ::socket(AF_PACKET, SOCK_RAW, 0);
  if (fd_ < 0) fail(o.iface, "AF_PACKET socket (needs CAP_NET_RAW)");
  // Frames are read as they are on the link: only link types the decoder reads that way are
  // taken (a tun device's raw IP read as Ethernet would give no flow at all).
  ifreq ifr{};
  if (o.iface.size() >= sizeof ifr.ifr_name) throw std::runtime_error(o.iface + ": interface name too long");
  std::memcpy(ifr.ifr_name, o.iface.data(), o.iface.size());
  if (ioctl(fd_, SIOCGIFHWADDR, &ifr) < 0) fail(o.iface, errno == ENODEV ? "no such interface" : "link type");
  dlt_ = linktype_of(ifr.ifr_hwaddr.sa_family);
  if (dlt_ < 0)
    throw std::runtime_error(fmt::format("{}: unsupported link type (ARP hardware type {}) for --capture afpacket, which "
                                         "reads Ethernet, loopback and raw IP interfaces; try --capture pcap",
                                         o.iface, ifr.ifr_hwaddr.sa_family));
  int v = TPACKET_V3;
  if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) fail(o.iface, "TPACKET_V3");

  tpacket_req3 req{};
  req.tp_block_size = static_cast<unsigned>(o.block_size);
  req.tp_block_nr = static_cast<unsigned>(o.block_count);
  req.tp_frame_size = 2048;
  req.tp_frame_nr = static_cast<unsigned>(o.block_size / 2048 * o.block_count);
  req.tp_retire_blk_tov = static_cast<unsigned>(o.block_timeout_ms);
  req.tp_feature_req_word = TP_FT_REQ_FILL_RXHASH;
  if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) fail(o.iface, "PACKET_RX_RING");
  block_size_ = o.block_size;
  block_count_ = o.block_count;
  block_timeout_ms_ = o.block_timeout_ms;
  ring_size_ = block_size_ * block_count_;
  void* m = mmap(nullptr, ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, fd_, 0);
  if (m == MAP_FAILED) m = mmap(nullptr, ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (m == MAP_FAILED) fail(o.iface, "mmap ring");
  ring_ = static_cast<uint8_t*>(m);

  snaplen_ = o.snaplen;
  iface_ = o.iface;
  if (!o.bpf.empty()) set_filter(o.bpf);

  unsigned idx = if_nametoindex(o.iface.c_str());
  if (!idx) fail(o.iface, "no such interface");
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(idx);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) fail(o.iface, "bind");
  ifindex_ = idx;
  if (ifr.ifr_hwaddr.sa_family == ARPHRD_LOOPBACK) {
    // On loopback every frame passes the socket twice, sent and received: only the received copy
    // is taken (libpcap drops the sent one too), else each packet counted twice in its flow.
    // Kernels before 4.20 do not know the option: the copies come as before.
    int on = 1;
    setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, sizeof on);
  }
  if (o.promisc) {
    packet_mreq mr{};
    mr.mr_ifindex = static_cast<int>(idx);
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(fd_, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) fail(o.iface, "promiscuous mode");
  }
  if (o.fanout_group) {
    // Symmetric flow hash; the kernel defragments IP first so fragments follow their flow.
    int arg = (o.fanout_group & 0xFFFF) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
    if (setsockopt(fd_, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) < 0) fail(o.iface, "PACKET_FANOUT");
  }
}

void AfPacketSource::set_filter(const std::string& bpf) {
  std::lock_guard<std::mutex> lock(filter_m_);
  if (intake_closed_) return;
  if (bpf.empty()) {
    // The kernel wants an int-sized option value, whatever it holds (a null, 0-length one is
    // EINVAL); ENOENT: there was no filter, which is what is asked.
    int unused = 0;
    if (setsockopt(fd_, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused) < 0 && errno != ENOENT)
      throw std::runtime_error(std::string("detach BPF filter: ") + std::strerror(errno));
    return;
  }
  // The handle only compiles: the filter runs in the kernel on this socket, which sees frames
  // whose 802.1Q tag the kernel has already taken out. libpcap compiles a filter for a live
  // Linux socket with the kernel's ancillary loads for VLAN tests; on a handle of a capture
  // file ("dead") it reads the tag from the frame bytes, and `vlan 10` matches nothing. So the
  // filter is compiled on a live handle of the same interface, opened for the moment; when that
  // cannot be (the privilege to open one dropped, say), as for a file, with a warning.
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> handle(open_live_for_compile(iface_, snaplen_, dlt_), pcap_close);
  if (!handle) {
    print_err(
               "medmon: warning: {}: no live handle to compile the BPF filter on: compiled as for a capture file, "
               "where VLAN tests read the 802.1Q tag from the frame (the kernel has taken it out)\n",
               iface_);
    handle.reset(pcap_open_dead(dlt_, static_cast<int>(snaplen_)));
  }
  if (!handle) throw std::runtime_error("cannot compile BPF filter: out of memory");
  bpf_program prog;
  if (pcap_compile(handle.get(), &prog, bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0)
    throw std::runtime_error("bad BPF filter '" + bpf + "': " + pcap_geterr(handle.get()));
  sock_fprog fp{static_cast<unsigned short>(prog.bf_len), reinterpret_cast<sock_filter*>(prog.bf_insns)};
  int rc = setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp);
  pcap_freecode(&prog);
  if (rc < 0) throw std::runtime_error(std::string("attach BPF filter: ") + std::strerror(errno));
}

AfPacketSource::~AfPacketSource() {
  if (ring_) munmap(ring_, ring_size_);
  if (fd_ >= 0) ::close(fd_);
}

size_t AfPacketSource::poll(int timeout_ms, const Handler& h) {
  size_t n = 0;
  for (size_t spins = 0; spins < block_count_; ++spins) {
    auto* bd = reinterpret_cast<tpacket_block_desc*>(ring_ + next_block_ * block_size_);
    if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
      if (n > 0) return n;
      pollfd pfd{fd_, POLLIN, 0};
      int ready = ::poll(&pfd, 1, timeout_ms);
      // An error stays pending (poll() says POLLERR at once, again and again) until it is read.
      if (ready > 0 && (pfd.revents & POLLERR)) read_socket_error();
      if (link_ == Link::down) check_link();
      if (ready <= 0) return 0;
      if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) return 0;
    }
    n += read_block(h);
  }
  return n;
}

void AfPacketSource::read_socket_error() {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0) return;
  if (err == ENETDOWN) link_ = Link::down;  // down or being deleted: check_link() tells
  else error_ = err;
}

void AfPacketSource::check_link() {
  char name[IF_NAMESIZE] = {0};
  if (!if_indextoname(ifindex_, name)) {
    if (errno == ENXIO || errno == ENODEV) link_ = Link::gone;
    return;
  }
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name, sizeof name);
  if (ioctl(fd_, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP)) link_ = Link::up;
}

void AfPacketSource::close_intake() {
  std::lock_guard<std::mutex> lock(filter_m_);
  if (intake_closed_) return;
  intake_closed_ = true;
  sock_filter none = BPF_STMT(BPF_RET | BPF_K, 0);  // accept no byte of any frame
  sock_fprog fp{1, &none};
  if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) < 0) {
    // The ring keeps filling: drain() still ends, after every block once, but what came after
    // the stop is analysed too.
    print_err("medmon: warning: {}: cannot close the capture ring to new frames: {}\n", iface_, std::strerror(errno));
  }
}

size_t AfPacketSource::drain(const Handler& h) {
  size_t n = 0;
  // The block the kernel was filling is handed over when its timeout retires it (an empty one
  // is not): waiting twice that long is enough.
  for (size_t blocks = 0; blocks <= block_count_; ++blocks) {
    auto* bd = reinterpret_cast<tpacket_block_desc*>(ring_ + next_block_ * block_size_);
    if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
      pollfd pfd{fd_, POLLIN | POLLERR, 0};
      if (::poll(&pfd, 1, 2 * block_timeout_ms_) <= 0) break;
      if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
    }
    n += read_block(h);
  }
  return n;
}

size_t AfPacketSource::read_block(const Handler& h) {
  size_t n = 0;
  auto* bd = reinterpret_cast<tpacket_block_desc*>(ring_ + next_block_ * block_size_);
  uint32_t count = bd->hdr.bh1.num_pkts;
  auto* ph = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(bd) + bd->hdr.bh1.offset_to_first_pkt);
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* frame = reinterpret_cast<const uint8_t*>(ph) + ph->tp_mac;
    uint32_t caplen = ph->tp_snaplen, wirelen = ph->tp_len;
    int64_t usec = int64_t(ph->tp_sec) * 1000000 + ph->tp_nsec / 1000;
    // The snapshot length is kept here, whatever the kernel delivered: without a filter (or
    // with one whose return value allows more) the kernel gives the whole frame. The frame's
    // own length stays its wire length.
    const uint32_t snap = static_cast<uint32_t>(snaplen_);
    if ((ph->tp_status & TP_STATUS_VLAN_VALID) && dlt_ == DLT_EN10MB && caplen >= 12) {
      // The kernel stripped the 802.1Q tag: put it back, zones are often VLANs.
      vlan_buf_.assign(frame, frame + 12);
      uint16_t tpid = (ph->tp_status & TP_STATUS_VLAN_TPID_VALID) ? ph->hv1.tp_vlan_tpid : ETH_P_8021Q;
      uint16_t tci = static_cast<uint16_t>(ph->hv1.tp_vlan_tci);
      uint8_t tag[4] = {uint8_t(tpid >> 8), uint8_t(tpid), uint8_t(tci >> 8), uint8_t(tci)};
      vlan_buf_.insert(vlan_buf_.end(), tag, tag + 4);
      vlan_buf_.insert(vlan_buf_.end(), frame + 12, frame + caplen);
      h(vlan_buf_.data(), std::min(caplen + 4, snap), wirelen + 4, usec);
    } else {
      h(frame, std::min(caplen, snap), wirelen, usec);
    }
    ++n;
    ph = reinterpret_cast<tpacket3_hdr*>(reinterpret_cast<uint8_t*>(ph) + ph->tp_next_offset);
  }
  __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
  next_block_ = (next_block_ + 1) % block_count_;
  delivered_ += n;
  return n;
}

void AfPacketSource::stats(uint64_t& received, uint64_t& dropped, uint64_t& freeze_q) {
  tpacket_stats_v3 st{};
  socklen_t len = sizeof st;
  if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {  // resets on read
    received_ += st.tp_packets;
    dropped_ += st.tp_drops;
    freeze_ += st.tp_freeze_q_cnt;
  }
  received = received_;
  dropped = dropped_;
  freeze_q = freeze_;
}

}  // namespace medmon
