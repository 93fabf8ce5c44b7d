// libFuzzer target: medmon's pcap file reader against libpcap's. PcapSource reads the records
// of a classic pcap file and the packet blocks of a pcapng file in place from a mapping and hands
// the file to libpcap at the first record it does not take (sensor/capture/pcap_source.cpp);
// whatever the file holds, it must read what libpcap's own reader reads from it: both refuse the
// file or both open it, with the same link type, then the same packets (time stamp, lengths,
// bytes) and the same ending, and on an error the same message. Any difference is printed and
// aborts. The image is written to one temporary file per process (rewritten for every input),
// which both readers open by name. The reader maps one page of the file at a time (its smallest
// window), so that records of inputs of a few KiB already cross windows; every third input is
// read through a BPF filter on both sides.
//
// Input: byte 0 is the mode.
// - Top bit clear: a classic pcap file header (version 2.4) is written before the rest, so that
//   most inputs are record streams: bit 0 big-endian, bit 1 nanosecond magic, bits 2-4 the link
//   type (kLinks), bits 5-6 the snapshot length (kSnaplens).
// - 0x80-0xbf: the rest is the file image as it is (any magic, pcapng too).
// - 0xc0-0xff: a pcapng Section Header Block and Interface Description Block are written before
//   the rest (from byte 2), so that most inputs are block streams: bit 0 big-endian, bits 1-3 the
//   link type (kLinks), bit 4 a second IDB after the first (same link type and snapshot length,
//   the other time stamp options: byte 1 with bits 2-5 inverted, no if_name), so that packet
//   blocks of interface 1 are read in place too. Byte 1 sets the IDB: bits 0-1 the snapshot
//   length (kSnaplens), bits 2-3 if_tsresol (kResols), bits 4-5 if_tsoffset (kOffsets), bit 6 an
//   if_name option first, bit 7 no end-of-options option.
#include <fcntl.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "sensor/capture/pcap_source.h"

namespace {

// Link types: those read in place (in either byte order or only in this machine's), and one
// whose pseudo-header libpcap rewrites (USB_LINUX_MMAPPED), which must never be.
constexpr uint32_t kLinks[8] = {1, 101, 228, 229, 113, 276, 0, 220};
// 0 and 0xffffffff: libpcap takes the link type's maximum (262144) instead.
constexpr uint32_t kSnaplens[4] = {65535, 64, 0, 0xffffffffu};
// if_tsresol: none (microseconds), microseconds, nanoseconds, 2^-20 s; if_tsoffset in seconds.
constexpr int kResols[4] = {-1, 6, 9, 0x80 | 20};
constexpr int64_t kOffsets[4] = {-2, 0, 3600, -1};  // -2: none

// Never destroyed: the exit handler below, registered while it is built, runs after its destructor would.
const std::string& file_path() {
  static const std::string* path = [] {
    auto* p = new std::string((std::filesystem::temp_directory_path() /
                               ("medmon-fuzz-pcapfile-" + std::to_string(getpid()) + ".pcap")).string());
    std::atexit([] { ::unlink(file_path().c_str()); });
    return p;
  }();
  return *path;
}

void put32(std::string& s, uint32_t v, bool big) {
  unsigned char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<unsigned char>(v >> (big ? 24 - 8 * i : 8 * i));
  s.append(reinterpret_cast<char*>(b), 4);
}

void put16(std::string& s, uint16_t v, bool big) {
  unsigned char b[2] = {static_cast<unsigned char>(big ? v >> 8 : v), static_cast<unsigned char>(big ? v : v >> 8)};
  s.append(reinterpret_cast<char*>(b), 2);
}

void write_file(const std::string& path, const uint8_t* data, size_t size, const std::string& head) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) { std::perror(path.c_str()); std::abort(); }  // the harness itself is broken
  auto put = [&](const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      ssize_t w = ::write(fd, c, n);
      if (w <= 0) { std::perror(path.c_str()); std::abort(); }
      c += w;
      n -= static_cast<size_t>(w);
    }
  };
  put(head.data(), head.size());
  put(data, size);
  ::close(fd);
}

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "pcapfile: %s\n%s\n", what, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string describe(const pcap_pkthdr* h) {
  char b[128];
  std::snprintf(b, sizeof b, "ts %" PRId64 ".%06" PRId64 " caplen %u len %u", int64_t(h->ts.tv_sec),
                int64_t(h->ts.tv_usec), h->caplen, h->len);
  return b;
}

void put_block(std::string& h, uint32_t type, const std::string& body, bool big) {
  put32(h, type, big);
  put32(h, uint32_t(12 + body.size()), big);
  h += body;
  put32(h, uint32_t(12 + body.size()), big);
}

// An Interface Description Block, as mode and `idb` (byte 1) say.
std::string pcapng_idb(uint8_t mode, uint8_t idb) {
  bool big = mode & 1;
  std::string opts;
  if (idb & 0x40) {
    put16(opts, 2, big);  // if_name
    put16(opts, 4, big);
    opts += "eth0";
  }
  if (int r = kResols[(idb >> 2) & 3]; r >= 0) {
    put16(opts, 9, big);
    put16(opts, 1, big);
    opts += std::string(1, char(r)) + std::string(3, '\0');
  }
  if (int64_t o = kOffsets[(idb >> 4) & 3]; o != -2) {
    put16(opts, 14, big);
    put16(opts, 8, big);
    for (int i = 0; i < 8; ++i) opts.push_back(char(uint64_t(o) >> (big ? 56 - 8 * i : 8 * i)));
  }
  if (!opts.empty() && !(idb & 0x80)) put32(opts, 0, big);  // opt_endofopt
  std::string body, h;
  put16(body, uint16_t(kLinks[(mode >> 1) & 7]), big);
  put16(body, 0, big);
  put32(body, kSnaplens[idb & 3], big);
  put_block(h, 1, body + opts, big);
  return h;
}

// A pcapng Section Header Block and one or two Interface Description Blocks, as mode and byte 1
// say.
std::string pcapng_head(uint8_t mode, uint8_t idb) {
  bool big = mode & 1;
  std::string h, shb;
  put32(shb, 0x1a2b3c4d, big);
  put16(shb, 1, big);
  put16(shb, 0, big);
  put32(shb, 0xffffffffu, big);  // section length unknown
  put32(shb, 0xffffffffu, big);
  put_block(h, 0x0a0d0d0a, shb, big);
  h += pcapng_idb(mode, idb);
  if (mode & 0x10) h += pcapng_idb(mode, uint8_t((idb ^ 0x3c) & ~0x40));
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  std::string head;
  size_t skip = 1;
  if ((mode & 0xc0) == 0xc0) {
    if (size < 2) return 0;
    head = pcapng_head(mode, data[1]);
    skip = 2;
  } else if (!(mode & 0x80)) {
    bool big = mode & 1;
    put32(head, (mode & 2) ? 0xa1b23c4d : 0xa1b2c3d4, big);
    put16(head, 2, big);
    put16(head, 4, big);
    put32(head, 0, big);  // thiszone
    put32(head, 0, big);  // sigfigs
    put32(head, kSnaplens[(mode >> 5) & 3], big);
    put32(head, kLinks[(mode >> 2) & 7], big);
  }
  const std::string& path = file_path();
  write_file(path, data + skip, size - skip, head);

  char err[PCAP_ERRBUF_SIZE] = {0};
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_MICRO, err);
  std::unique_ptr<medmon::PcapSource> s;
  std::string source_err;
  try {
    s = medmon::PcapSource::open_file(path, 1);  // one page mapped at a time: inputs cross windows
  } catch (const std::runtime_error& e) {
    source_err = e.what();
  }
  if (!p || !s) {
    if (p || s)
      fail("PcapSource and libpcap differ: open",
           std::string("libpcap: ") + (p ? "opened" : err) + "\nPcapSource: " + (s ? "opened" : source_err));
    return 0;
  }
  if (pcap_datalink(p) != s->datalink())
    fail("PcapSource and libpcap differ: link type",
         "libpcap " + std::to_string(pcap_datalink(p)) + ", PcapSource " + std::to_string(s->datalink()));
  // Every third input is read through a BPF filter (by length: it compiles for any link type),
  // set on both sides as `analyze --filter` sets it.
  if (size % 3 == 0) {
    constexpr const char* kFilter = "greater 60";
    bpf_program prog;
    bool libpcap_ok = pcap_compile(p, &prog, kFilter, 1, PCAP_NETMASK_UNKNOWN) == 0;
    if (libpcap_ok) {
      libpcap_ok = pcap_setfilter(p, &prog) == 0;
      pcap_freecode(&prog);
    }
    bool source_ok = true;
    try {
      s->set_filter(kFilter);
    } catch (const std::runtime_error&) {
      source_ok = false;
    }
    if (libpcap_ok != source_ok) fail("PcapSource and libpcap differ: filter", libpcap_ok ? "PcapSource refused it" : "libpcap refused it");
    if (!libpcap_ok) {  // a link type libpcap cannot filter: both refused, nothing to read
      pcap_close(p);
      return 0;
    }
  }

  for (size_t n = 0;; ++n) {
    pcap_pkthdr* ha = nullptr;
    const u_char* da = nullptr;
    int rc = pcap_next_ex(p, &ha, &da);
    const pcap_pkthdr* hb = nullptr;
    const uint8_t* db = nullptr;
    auto r = s->next(hb, db);
    std::string where = "record " + std::to_string(n);
    if (s->position() > s->file_size())
      fail("PcapSource past the end of the file",
           where + ": at " + std::to_string(s->position()) + " of " + std::to_string(s->file_size()));
    if (rc == 1 && r == medmon::PcapSource::Next::packet) {
      // A classic pcap record's seconds are unsigned 32 bits: PcapSource reads them so, where
      // libpcap gives seconds past 2038 as negative. They are compared as 32-bit values.
      if (static_cast<uint32_t>(ha->ts.tv_sec) != static_cast<uint32_t>(hb->ts.tv_sec) ||
          ha->ts.tv_usec != hb->ts.tv_usec || ha->caplen != hb->caplen || ha->len != hb->len)
        fail("PcapSource and libpcap differ: packet header",
             where + ": libpcap " + describe(ha) + ", PcapSource " + describe(hb));
      if (ha->caplen && std::memcmp(da, db, ha->caplen) != 0)
        fail("PcapSource and libpcap differ: packet bytes", where + " (" + describe(ha) + ")");
      continue;
    }
    std::string a = rc == 1 ? "packet " + describe(ha)
                    : rc == PCAP_ERROR_BREAK ? "end"
                    : rc == 0 ? "timeout"
                    : std::string("error: ") + pcap_geterr(p);  // every error of the file reader is -1
    std::string b = r == medmon::PcapSource::Next::packet ? "packet " + describe(hb)
                    : r == medmon::PcapSource::Next::end ? "end"
                    : r == medmon::PcapSource::Next::timeout ? "timeout"
                    : "error: " + s->error();
    if (rc == 1 || r == medmon::PcapSource::Next::packet || a != b)
      fail("PcapSource and libpcap differ: ending", where + ":\nlibpcap    " + a + "\nPcapSource " + b);
    break;
  }
  pcap_close(p);
  return 0;
}
