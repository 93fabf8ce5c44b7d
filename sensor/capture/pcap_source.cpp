#include "sensor/capture/pcap_source.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <net/if.h>
#include <stdio_ext.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

namespace medmon {

namespace {
// The window being read, for the SIGBUS handler: a file that shrinks under its mapping makes
// every read of a page past its new end fault. Files are read one at a time.
std::atomic<uint8_t*> g_window{nullptr};
std::atomic<size_t> g_window_len{0};
std::atomic<bool> g_window_lost{false};
struct sigaction g_previous_bus;

void on_sigbus(int, siginfo_t* info, void*) {
  uint8_t* w = g_window.load();
  size_t n = g_window_len.load();
  auto* a = static_cast<uint8_t*>(info->si_addr);
  if (w && a >= w && a < w + n) {
    // Zero pages in place of the lost ones: the packet being read sees zeros, and the reader,
    // seeing the flag, hands the file to libpcap, which reports it cut short.
    mmap(w, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    g_window_lost.store(true);
    return;
  }
  sigaction(SIGBUS, &g_previous_bus, nullptr);  // not ours: the fault recurs and goes there
}

// Fields of a capture file, written in either byte order.
uint32_t load32(const unsigned char* p, bool swapped) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swapped ? __builtin_bswap32(v) : v;
}
uint16_t load16(const unsigned char* p, bool swapped) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return swapped ? __builtin_bswap16(v) : v;
}

void install_sigbus_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous_bus);
  });
}
}  // namespace

std::string pcapng_unsupported(const std::string& path) {
  constexpr uint32_t kSectionHeader = 0x0a0d0d0a, kByteOrder = 0x1a2b3c4d, kIdb = 1;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return {};
  }
  // Read in large pieces (never mapped: a file cut meanwhile must not fault here).
  std::vector<unsigned char> buf(size_t(1) << 20);
  uint64_t buf_at = 0, buf_len = 0;
  auto header = [&](uint64_t at) -> const unsigned char* {
    if (at < buf_at || at + 12 > buf_at + buf_len) {
      ssize_t n = pread(fd, buf.data(), buf.size(), off_t(at));
      buf_at = at;
      buf_len = n > 0 ? uint64_t(n) : 0;
      if (buf_len < 12) return nullptr;
    }
    return buf.data() + (at - buf_at);
  };
  const uint64_t size = uint64_t(st.st_size);
  bool first_swapped = false, swapped = false;
  int first_linktype = -1;
  std::string problem;
  // Stops at anything malformed: libpcap reports that where it reads it.
  for (uint64_t at = 0; at + 12 <= size;) {
    const unsigned char* h = header(at);
    if (!h) break;
    uint32_t type = load32(h, swapped);
    if (type == kSectionHeader) {  // the same in either byte order: the section's own says which
      uint32_t bom = load32(h + 8, false);
      if (bom != kByteOrder && bom != __builtin_bswap32(kByteOrder)) break;
      bool s = bom != kByteOrder;
      if (at == 0) {
        first_swapped = s;
      } else if (s != first_swapped) {
        problem = fmt::format("{}: the section at byte {} is in another byte order than the first; sections of "
                              "mixed byte order are not supported", path, at);
        break;
      }
      swapped = s;
    } else if (at == 0) {
      break;  // not pcapng
    }
    uint32_t len = load32(h + 4, swapped);
    if (len < 12 || len % 4 || len > size - at) break;
    if (type == kIdb && len >= 20) {
      int linktype = load16(h + 8, swapped);
      if (first_linktype < 0) {
        first_linktype = linktype;
      } else if (linktype != first_linktype) {
        problem = fmt::format("{}: the interface at byte {} has link type {}, the first interface {}; interfaces of "
                              "different link types are not supported", path, at, linktype, first_linktype);
        break;
      }
    }
    at += len;
  }
  ::close(fd);
  return problem;
}

PcapSource::~PcapSource() {
  pcap_freecode(&filter_);
  unmap();
  if (fd_ >= 0) ::close(fd_);
  if (p_) pcap_close(p_);
}

std::unique_ptr<PcapSource> PcapSource::open_file(const std::string& path, size_t map_window) {
  char err[PCAP_ERRBUF_SIZE] = {0};
  std::unique_ptr<PcapSource> s(new PcapSource());
  s->name_ = path;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  s->window_size_ = std::max<size_t>(page, (std::min(map_window, size_t(1) << 30) + page - 1) / page * page);
  // Microsecond timestamps whatever the file's own precision: output is microseconds.
  if (path == "-") {
    s->p_ = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_MICRO, err);
  } else {
    // libpcap reads a record as two freads; with stdio's default 4 KiB buffer that is a read()
    // system call every few packets. A 1 MiB buffer makes it one per MiB.
    FILE* f = std::fopen(path.c_str(), "rbe");
    if (!f) throw std::runtime_error(path + ": " + std::strerror(errno));
    s->file_buffer_.reset(new char[kFileBuffer]);
    setvbuf(f, s->file_buffer_.get(), _IOFBF, kFileBuffer);
    // Only the reading thread touches the stream: no stdio lock per fread (two per packet).
    __fsetlocking(f, FSETLOCKING_BYCALLER);
    s->p_ = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_MICRO, err);
    if (!s->p_) std::fclose(f);  // on success pcap_close closes it
  }
  if (!s->p_) throw std::runtime_error(path + ": " + err);
  struct stat st;
  if (path != "-" && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) s->file_size_ = static_cast<uint64_t>(st.st_size);
  if (s->file_size_) s->open_mapping(path);
  return s;
}

// libpcap reads a file record by record through stdio: the kernel copies every byte into the
// stdio buffer and libpcap copies it again into its packet buffer. On a capture of large DICOM
// transfers those copies cost more than the whole analysis. Classic pcap files and pcapng files
// are therefore read in place from a read-only mapping, a window of a few MiB at a time so
// that resident memory stays bounded. Only records libpcap would hand over unchanged are taken
// from the mapping: at the first record that is odd in any way (capture length over the
// snapshot length or the sane maximum, a record cut by the end of the file, old format versions
// whose lengths libpcap swaps, link types whose pseudo-headers it byte-swaps) and at the end of
// what was mapped, the file is handed to libpcap at that record, so packets, errors and their
// messages are exactly libpcap's (test_pcap_source.cpp compares the two on handmade files, the
// pcapfile fuzz target on arbitrary ones).
//
// In a pcapng file the mapping takes only Enhanced Packet Blocks of interfaces libpcap has read
// the description of. At any other block (another interface's description, statistics, name
// resolution, ...) the file is lent to libpcap, which then has seen every block that changes its
// state, and taken back after the packet libpcap returns next, the interfaces it described
// being read again here (`take_back`). A new section, or an interface whose time stamps are not
// in microseconds or nanoseconds (the two that convert exactly), leaves the rest to libpcap.
void PcapSource::open_mapping(const std::string& path) {
  constexpr uint32_t kMicro = 0xa1b2c3d4, kNano = 0xa1b23c4d, kSectionHeader = 0x0a0d0d0a;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  unsigned char h[24];
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || pread(fd, h, sizeof h, 0) != ssize_t(sizeof h)) {
    ::close(fd);
    return;
  }
  uint32_t magic, magic_swapped;
  uint16_t major, minor;
  std::memcpy(&magic, h, 4);
  magic_swapped = __builtin_bswap32(magic);
  std::memcpy(&major, h + 4, 2);
  std::memcpy(&minor, h + 6, 2);
  bool swapped = magic_swapped == kMicro || magic_swapped == kNano;
  bool classic = magic == kMicro || magic == kNano || swapped;
  if (swapped) { major = __builtin_bswap16(major); minor = __builtin_bswap16(minor); }
  if (classic) {
    swapped_ = swapped;
    nsec_ = (swapped ? magic_swapped : magic) == kNano;
    pos_ = sizeof h;
  }
  bool ok = classic ? major == 2 && minor >= 4 : magic == kSectionHeader && open_mapping_ng(fd, uint64_t(st.st_size));
  // Link types libpcap hands over as stored: no pseudo-header it rewrites (USB, NFLOG, ...) and,
  // for a byte-swapped file, none it byte-swaps (the Linux cooked headers' SocketCAN case).
  int dlt = pcap_datalink(p_);
  bool as_stored = dlt == DLT_EN10MB || dlt == DLT_RAW || dlt == DLT_IPV4 || dlt == DLT_IPV6;
  if (!swapped_) as_stored = as_stored || dlt == DLT_LINUX_SLL || dlt == DLT_LINUX_SLL2 || dlt == DLT_NULL || dlt == DLT_LOOP;
  if (!ok || !as_stored || pcap_snapshot(p_) <= 0) { ::close(fd); return; }
  install_sigbus_handler();
  fd_ = fd;
  ng_ = !classic;
  snapshot_ = static_cast<uint32_t>(pcap_snapshot(p_));
  file_size_ = static_cast<uint64_t>(st.st_size);
  mapped_ = true;
}

// An Interface Description Block libpcap has accepted (`len` bytes at file offset `at`), read
// again for its time stamp options with libpcap's rules: options up to the end of the block or an
// end-of-options option (libpcap refused any other layout). False when its time stamps are not
// to be converted here.
bool PcapSource::read_interface(int fd, uint64_t at, uint64_t len, NgInterface& out) const {
  if (len < 20 || len > 65536) return false;
  std::vector<unsigned char> idb(len);
  if (pread(fd, idb.data(), len, off_t(at)) != ssize_t(len)) return false;
  auto u16 = [this](const unsigned char* p) { return load16(p, swapped_); };
  NgInterface i;
  const unsigned char* o = idb.data() + 16;
  const unsigned char* end = idb.data() + len - 4;
  while (o != end) {
    if (end - o < 4) return false;
    uint16_t code = u16(o), olen = u16(o + 2);
    size_t padded = (size_t(olen) + 3) / 4 * 4;
    if (size_t(end - o - 4) < padded) return false;
    if (code == 0) break;                    // opt_endofopt: the rest is not read
    if (code == 9) {                         // if_tsresol: 10^-6 and 10^-9 convert exactly
      if (olen != 1 || (o[4] != 6 && o[4] != 9)) return false;
      i.nsec = o[4] == 9;
    } else if (code == 14) {                 // if_tsoffset, in seconds
      if (olen != 8) return false;
      uint64_t v;
      std::memcpy(&v, o + 4, 8);
      i.offset = static_cast<int64_t>(swapped_ ? __builtin_bswap64(v) : v);
    }
    o += 4 + padded;
  }
  out = i;
  return true;
}

// libpcap's open of a pcapng file reads the Section Header Block, then blocks up to and including
// the first Interface Description Block, and leaves its FILE just past that block: mapped reading
// starts there. Sets swapped_, the first interface and pos_; false when the file is not to be
// mapped.
bool PcapSource::open_mapping_ng(int fd, uint64_t size) {
  constexpr uint32_t kByteOrder = 0x1a2b3c4d, kIdb = 1;
  FILE* f = pcap_file(p_);
  off_t start = f ? ftello(f) : -1;
  unsigned char b[16];
  if (start <= 0 || uint64_t(start) > size || pread(fd, b, 12, 0) != 12) return false;
  uint32_t order;
  std::memcpy(&order, b + 8, 4);
  bool swapped = order != kByteOrder;
  if (swapped && __builtin_bswap32(order) != kByteOrder) return false;
  if (swapped != (pcap_is_swapped(p_) == 1)) return false;
  auto u32 = [swapped](const unsigned char* p) { return load32(p, swapped); };
  // Walk the blocks libpcap read to the first IDB; it must end where libpcap's FILE is.
  uint64_t at = 0, idb_len = 0;
  uint32_t type = 0;
  while (type != kIdb) {
    if (at >= uint64_t(start) || pread(fd, b, 8, off_t(at)) != 8) return false;
    uint32_t len = u32(b + 4);
    type = at == 0 ? 0 : u32(b);
    if (len < 12 || len % 4) return false;
    idb_len = len;
    at += len;
  }
  if (at != uint64_t(start)) return false;
  swapped_ = swapped;
  NgInterface first;
  if (!read_interface(fd, at - idb_len, idb_len, first)) return false;
  interfaces_.assign(1, first);
  pos_ = uint64_t(start);
  return true;
}

void PcapSource::unmap() {
  if (!window_) return;
  uint8_t* mine = const_cast<uint8_t*>(window_);
  if (g_window.compare_exchange_strong(mine, nullptr)) g_window_len.store(0);
  munmap(const_cast<uint8_t*>(window_), window_len_);
  window_ = nullptr;
  window_len_ = 0;
}

// Maps the window holding [offset, offset + need). False when the file no longer holds it (it
// shrank: reading a page past its end would raise SIGBUS) or the mapping fails.
bool PcapSource::map_window(uint64_t offset, size_t need) {
  unmap();
  struct stat st;
  if (fstat(fd_, &st) != 0 || uint64_t(st.st_size) < offset + need) return false;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t start = offset & ~(page - 1);
  uint64_t end = std::min<uint64_t>(std::max<uint64_t>(start + window_size_, offset + need), file_size_);
  void* m = mmap(nullptr, end - start, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd_, static_cast<off_t>(start));
  if (m == MAP_FAILED) return false;
  window_ = static_cast<const uint8_t*>(m);
  window_off_ = start;
  window_len_ = end - start;
  g_window_lost.store(false);
  g_window_len.store(window_len_);
  g_window.store(static_cast<uint8_t*>(m));
  return true;
}

// The next `need` bytes from pos_, mapped; null when the file (as opened) ends before them or
// they cannot be mapped.
const uint8_t* PcapSource::in_window(size_t need) {
  if (pos_ + need > file_size_) return nullptr;
  if (pos_ + need > window_off_ + window_len_ && !map_window(pos_, need)) return nullptr;
  return window_ + (pos_ - window_off_);
}

bool PcapSource::shrank() const {
  struct stat st;
  return fstat(fd_, &st) != 0 || uint64_t(st.st_size) < file_size_;
}

// From here on libpcap reads the file, from where its FILE is.
void PcapSource::stop_mapping() {
  unmap();
  ::close(fd_);
  fd_ = -1;
  mapped_ = false;
  lent_ = false;
}

// From here on libpcap reads the file, from the record at pos_.
void PcapSource::hand_over() {
  stop_mapping();
  if (FILE* f = pcap_file(p_)) fseeko(f, static_cast<off_t>(pos_), SEEK_SET);
}

// libpcap reads the pcapng file from the block at pos_, up to its next packet; take_back may then
// read on from the mapping.
void PcapSource::lend() {
  unmap();
  mapped_ = false;
  lent_ = true;
  lent_at_ = pos_;
  if (FILE* f = pcap_file(p_)) fseeko(f, static_cast<off_t>(pos_), SEEK_SET);
}

// After libpcap returned a packet of the lent file: the blocks it read since lend() are walked
// here, the interfaces they describe added, and mapped reading goes on where libpcap stopped.
// A new section (its interfaces replace the old), an interface whose time stamps are not
// converted here, or anything odd leaves the rest of the file to libpcap.
void PcapSource::take_back() {
  constexpr uint32_t kIdb = 1, kShb = 0x0a0d0d0a;
  lent_ = false;
  FILE* f = pcap_file(p_);
  off_t end = f ? ftello(f) : -1;
  uint64_t at = lent_at_;
  bool ok = end > 0 && uint64_t(end) <= file_size_ && at < uint64_t(end);
  while (ok && at < uint64_t(end)) {
    unsigned char b[8];
    if (pread(fd_, b, 8, off_t(at)) != 8) { ok = false; break; }
    uint32_t type = load32(b, swapped_), len = load32(b + 4, swapped_);
    if (type == kShb || len < 12 || len % 4 || len > uint64_t(end) - at) { ok = false; break; }
    if (type == kIdb) {
      NgInterface i;
      if (!(ok = read_interface(fd_, at, len, i))) break;
      interfaces_.push_back(i);
    }
    at += len;
  }
  if (!ok || at != uint64_t(end)) {
    stop_mapping();
    return;
  }
  pos_ = at;
  mapped_ = true;
}

// The file lost its end under the mapping: the records read so far may end in zeros where it did.
PcapSource::Next PcapSource::cut_short() {
  struct stat st;
  uint64_t now = fstat(fd_, &st) == 0 ? uint64_t(st.st_size) : 0;
  hand_over();
  error_ = "the file was cut to " + std::to_string(now) + " bytes while being read (it had " +
           std::to_string(file_size_) + ")";
  return Next::error;
}

namespace {
constexpr uint32_t kMaxCaplen = 262144;  // libpcap's smallest sane maximum for any link type
}

PcapSource::Next PcapSource::next_mapped(const pcap_pkthdr*& hdr, const uint8_t*& data) {
  if (ng_) return next_mapped_ng(hdr, data);
  auto libpcap_reads = [&] {
    hand_over();
    return next_record(hdr, data);
  };
  const uint8_t* r = in_window(16);
  if (!r) return libpcap_reads();
  uint32_t f[4];
  for (int i = 0; i < 4; ++i) f[i] = load32(r + 4 * i, swapped_);
  uint32_t caplen = f[2];
  // A file cut under the mapping reads as zeros up to the end of its last page, then faults
  // (the handler zeroes the rest and raises the flag): either way libpcap takes over here.
  bool cut = g_window_lost.load(std::memory_order_relaxed) || ((f[0] | f[1] | f[2] | f[3]) == 0 && shrank());
  if (cut) return cut_short();
  if (caplen > snapshot_ || caplen > kMaxCaplen || !(r = in_window(16 + caplen))) return libpcap_reads();
  // The seconds are unsigned 32 bits (up to 2106), whatever the byte order; libpcap 1.10 reads
  // them signed in a file of this machine's byte order, which next_record() corrects. The
  // fraction as libpcap: signed in this machine's byte order, unsigned once byte-swapped (its
  // SWAPLONG yields an unsigned value).
  hdr_.ts.tv_sec = static_cast<time_t>(f[0]);
  if (swapped_) {
    hdr_.ts.tv_usec = nsec_ ? f[1] / 1000 : f[1];
  } else {
    int32_t frac = static_cast<int32_t>(f[1]);
    hdr_.ts.tv_usec = nsec_ ? frac / 1000 : frac;
  }
  hdr_.caplen = caplen;
  hdr_.len = f[3];
  hdr = &hdr_;
  data = r + 16;
  pos_ += 16 + caplen;
  return Next::packet;
}

// One Enhanced Packet Block of a described interface (block type and length, interface, time
// stamp high and low, captured and original lengths, the packet, padding and options, the length
// again), checked as libpcap checks it. Anything else, or anything odd, is libpcap's to read.
PcapSource::Next PcapSource::next_mapped_ng(const pcap_pkthdr*& hdr, const uint8_t*& data) {
  constexpr uint32_t kEpb = 6, kMaxBlock = 1u << 20;  // far below libpcap's maximum block size
  auto give_up = [&] {
    // A file cut under the mapping reads as zeros past its new end: no block is valid there.
    if (g_window_lost.load() || shrank()) return cut_short();
    lend();
    return next_lent(hdr, data);
  };
  const uint8_t* r = in_window(8);
  if (!r) return give_up();
  auto u32 = [this](const uint8_t* p) { return load32(p, swapped_); };
  uint32_t type = u32(r), len = u32(r + 4);
  if (type != kEpb || len < 32 || len % 4 || len > kMaxBlock || !(r = in_window(len))) return give_up();
  uint32_t caplen = u32(r + 20), iface = u32(r + 8);
  if (u32(r + len - 4) != len || iface >= interfaces_.size() || caplen > len - 32 || caplen > snapshot_ ||
      caplen > kMaxCaplen || g_window_lost.load(std::memory_order_relaxed))
    return give_up();
  // As libpcap 1.10: seconds are the time stamp over its resolution plus the offset, in 64 bits.
  const NgInterface& in = interfaces_[iface];
  uint64_t t = uint64_t(u32(r + 12)) << 32 | u32(r + 16);
  uint64_t res = in.nsec ? 1000000000 : 1000000;
  hdr_.ts.tv_sec = static_cast<time_t>(t / res + static_cast<uint64_t>(in.offset));
  hdr_.ts.tv_usec = static_cast<int>(in.nsec ? t % res / 1000 : t % res);
  hdr_.caplen = caplen;
  hdr_.len = u32(r + 24);
  hdr = &hdr_;
  data = r + 28;
  pos_ += len;
  return Next::packet;
}

std::unique_ptr<PcapSource> PcapSource::open_live(const std::string& iface, int snaplen, bool promisc,
                                                  const std::string& bpf, int buffer_mb) {
  char err[PCAP_ERRBUF_SIZE] = {0};
  std::unique_ptr<PcapSource> s(new PcapSource());
  s->name_ = iface;
  s->live_ = true;
  s->p_ = pcap_create(iface.c_str(), err);
  if (!s->p_) throw std::runtime_error(iface + ": " + err);
  pcap_set_snaplen(s->p_, snaplen);
  pcap_set_promisc(s->p_, promisc ? 1 : 0);
  pcap_set_timeout(s->p_, 100);  // ms: lets the loop flush output and check signals
  pcap_set_buffer_size(s->p_, buffer_mb << 20);
  pcap_set_tstamp_precision(s->p_, PCAP_TSTAMP_PRECISION_MICRO);
  int rc = pcap_activate(s->p_);
  if (rc < 0) throw std::runtime_error(iface + ": " + pcap_geterr(s->p_));
  if (!bpf.empty()) s->set_filter(bpf);
  s->capturing_ = true;
  return s;
}

namespace {
bpf_program compile_filter(pcap_t* p, const std::string& bpf) {
  bpf_program prog;
  if (pcap_compile(p, &prog, bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0)
    throw std::runtime_error("bad BPF filter '" + bpf + "': " + pcap_geterr(p));
  return prog;
}
}  // namespace

void PcapSource::check_filter(const std::string& bpf) {
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> dead(pcap_open_dead(DLT_EN10MB, 262144), pcap_close);
  if (!dead) throw std::runtime_error("bad BPF filter '" + bpf + "': no memory to compile it");
  bpf_program prog = compile_filter(dead.get(), bpf);
  pcap_freecode(&prog);
}

void PcapSource::set_filter(const std::string& bpf) {
  bpf_program prog = compile_filter(p_, bpf);
  if (live_ && capturing_ && read_since_setfilter_ && pcap_datalink(p_) == DLT_EN10MB) {
    // A change while capturing (a reload). libpcap would put a filter that takes nothing on the
    // socket for the moment of the change (frames arriving then are lost, counted nowhere) and
    // match the frames the ring already holds, taken under the old filter, against the new one
    // (those it refuses are dropped without a word). The kernel swaps one socket filter for
    // another at once: every frame is judged by the filter in force when it arrived. Compiled on
    // this live handle, as libpcap compiles it for the kernel (VLAN tests by ancillary loads);
    // for cooked captures (`any`) libpcap rewrites the program, so those go through libpcap.
    // libpcap matches the first block it reads after its own pcap_setfilter against that filter
    // in userland too: until a frame was read since, that block is still to come, and a filter
    // set behind libpcap's back would be matched with the old one; libpcap changes it then.
    sock_fprog fp{static_cast<unsigned short>(prog.bf_len), reinterpret_cast<sock_filter*>(prog.bf_insns)};
    int rc = setsockopt(pcap_get_selectable_fd(p_), SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp);
    pcap_freecode(&prog);
    if (rc == 0) return;
    prog = compile_filter(p_, bpf);  // the kernel refused it: libpcap filters in userland
  }
  int rc = pcap_setfilter(p_, &prog);  // what libpcap reads (live, or a file once handed over)
  read_since_setfilter_ = 0;
  if (rc < 0) {
    pcap_freecode(&prog);
    throw std::runtime_error("cannot set BPF filter: " + std::string(pcap_geterr(p_)));
  }
  if (live_) { pcap_freecode(&prog); return; }
  pcap_freecode(&filter_);
  filter_ = prog;  // what the mapping reads
}

int PcapSource::datalink() const { return pcap_datalink(p_); }

PcapSource::Next PcapSource::next(const pcap_pkthdr*& hdr, const uint8_t*& data) {
  for (;;) {
    if (lent_) return next_lent(hdr, data);
    if (!mapped_) return next_record(hdr, data);
    Next r = next_mapped(hdr, data);
    // libpcap's own reader matches a record against the filter with its captured and original
    // lengths, as here; a record libpcap read (its header is not hdr_) was matched by it already.
    if (r != Next::packet || hdr != &hdr_ || !filter_.bf_insns || pcap_offline_filter(&filter_, &hdr_, data))
      return r;
  }
}

// A record of the lent file, read by libpcap; the file is taken back after it. Its data stays
// in libpcap's buffer, which the mapping does not touch.
PcapSource::Next PcapSource::next_lent(const pcap_pkthdr*& hdr, const uint8_t*& data) {
  Next r = next_record(hdr, data);
  if (r == Next::packet) take_back();
  return r;
}

PcapSource::Next PcapSource::next_record(const pcap_pkthdr*& hdr, const uint8_t*& data) {
  if (!error_.empty()) return Next::error;
  pcap_pkthdr* h = nullptr;
  const u_char* d = nullptr;
  int rc = pcap_next_ex(p_, &h, &d);
  if (rc == 1) {
    ++read_since_setfilter_;
    // A classic pcap record's seconds are unsigned 32 bits: libpcap makes those from 2038 on
    // negative in a file of this machine's byte order (a capture of 2100 would read as 1963).
    if (!live_ && h->ts.tv_sec < 0 && pcap_major_version(p_) == 2) h->ts.tv_sec += time_t(1) << 32;
    hdr = h;
    data = d;
    return Next::packet;
  }
  if (rc == 0) return Next::timeout;
  if (rc == PCAP_ERROR_BREAK) return Next::end;
  return Next::error;
}

std::string PcapSource::error() const { return error_.empty() ? pcap_geterr(p_) : error_; }

void PcapSource::breakloop() { pcap_breakloop(p_); }

uint64_t PcapSource::position() const {
  if (mapped_) return pos_;
  if (live_ || file_size_ == 0) return 0;
  FILE* f = pcap_file(p_);
  if (!f) return 0;
  long pos = ftell(f);
  return pos > 0 ? static_cast<uint64_t>(pos) : 0;
}

bool PcapSource::stats(uint64_t& received, uint64_t& dropped, uint64_t& if_dropped) const {
  if (!live_) return false;
  pcap_stat st{};
  if (pcap_stats(p_, &st) != 0) return false;
  received = st.ps_recv;
  dropped = st.ps_drop;
  if_dropped = st.ps_ifdrop;
  return true;
}

int PcapSource::selectable_fd() const { return pcap_get_selectable_fd(p_); }

bool PcapSource::interface_up() const {
  if (!live_ || name_.size() >= IFNAMSIZ) return true;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name_.data(), name_.size());
  int fd = pcap_get_selectable_fd(p_);
  if (fd < 0 || ::ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) return true;  // "any", or gone: libpcap tells
  return (ifr.ifr_flags & IFF_UP) != 0;
}

bool PcapSource::close_intake() {
  if (!live_) return false;
  // Reads after the stop never wait: next() says `timeout` at once when nothing is ready.
  char err[PCAP_ERRBUF_SIZE] = {0};
  pcap_setnonblock(p_, 1, err);
  // On the socket itself: a filter set through libpcap would also drop, in libpcap, the frames
  // the ring already holds.
  sock_filter none = BPF_STMT(BPF_RET | BPF_K, 0);
  sock_fprog fp{1, &none};
  return setsockopt(pcap_get_selectable_fd(p_), SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) == 0;
}

}  // namespace medmon
