// PcapSource opens files itself (with a large stdio buffer) and reads the records of classic pcap
// files and the packet blocks of pcapng files from a mapping, handing the file to libpcap at the
// first record it does not take: it must
// read exactly what libpcap's own open reads from the same file: the same packets, timestamps and
// lengths, and the same error at the same place, whatever the byte order, precision or damage.
#include <pcap/pcap.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "sensor/capture/pcap_source.h"

namespace fs = std::filesystem;
using medmon::PcapSource;

namespace {

struct Packet {
  int64_t sec, usec;
  uint32_t caplen, len;
  std::string data;
  bool operator==(const Packet&) const = default;
};
struct Reading {
  std::vector<Packet> packets;
  bool error = false;
  std::string message;
};

Reading read_with_libpcap(const std::string& path, const std::string& bpf = {}) {
  char err[PCAP_ERRBUF_SIZE];
  Reading r;
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_MICRO, err);
  REQUIRE(p);
  if (!bpf.empty()) {
    bpf_program prog;
    REQUIRE(pcap_compile(p, &prog, bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) == 0);
    REQUIRE(pcap_setfilter(p, &prog) == 0);
    pcap_freecode(&prog);
  }
  pcap_pkthdr* h;
  const u_char* d;
  int rc;
  // libpcap reads a classic record's seconds as signed in this machine's byte order; they are
  // unsigned 32 bits (up to 2106), as PcapSource reads them.
  const bool classic = pcap_major_version(p) == 2;
  while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
    int64_t sec = h->ts.tv_sec;
    if (classic && sec < 0) sec += int64_t(1) << 32;
    r.packets.push_back({sec, h->ts.tv_usec, h->caplen, h->len, std::string(reinterpret_cast<const char*>(d), h->caplen)});
  }
  if (rc != PCAP_ERROR_BREAK) { r.error = true; r.message = pcap_geterr(p); }
  pcap_close(p);
  return r;
}

Reading read_with_source(const std::string& path, size_t map_window = PcapSource::kDefaultMapWindow,
                         const std::string& bpf = {}) {
  Reading r;
  auto s = PcapSource::open_file(path, map_window);
  if (!bpf.empty()) s->set_filter(bpf);
  const pcap_pkthdr* h;
  const uint8_t* d;
  PcapSource::Next n;
  while ((n = s->next(h, d)) == PcapSource::Next::packet) {
    r.packets.push_back({h->ts.tv_sec, h->ts.tv_usec, h->caplen, h->len, std::string(reinterpret_cast<const char*>(d), h->caplen)});
    CHECK(s->position() <= s->file_size());
  }
  if (n == PcapSource::Next::error) { r.error = true; r.message = s->error(); }
  return r;
}

void same_reading_with(const std::string& path, size_t map_window, const std::string& bpf = {}) {
  INFO(path << ", mapping window " << map_window << ", filter '" << bpf << "'");
  Reading a = read_with_libpcap(path, bpf), b = read_with_source(path, map_window, bpf);
  CHECK(a.packets.size() == b.packets.size());
  for (size_t i = 0; i < std::min(a.packets.size(), b.packets.size()); ++i) {
    const Packet &x = a.packets[i], &y = b.packets[i];
    if (x == y) continue;
    INFO("packet " << i << ": libpcap " << x.sec << "." << x.usec << " " << x.caplen << "/" << x.len << ", PcapSource "
                   << y.sec << "." << y.usec << " " << y.caplen << "/" << y.len);
    CHECK(x == y);
    break;
  }
  CHECK(a.error == b.error);
  CHECK(a.message == b.message);
}

// Read with the default mapping window and with one page at a time (records then cross
// windows all the time): both must read what libpcap reads.
void same_reading(const std::string& path) {
  for (size_t window : {PcapSource::kDefaultMapWindow, size_t(1)})
    same_reading_with(path, window);
}

// Reads s to its end; the number of packets, and how many of them came from the mapping.
struct Count { size_t packets = 0, in_place = 0; };
Count count_packets(PcapSource& s) {
  Count c;
  const pcap_pkthdr* h;
  const uint8_t* d;
  while (s.next(h, d) == PcapSource::Next::packet) {
    ++c.packets;
    if (s.reads_in_place()) ++c.in_place;
  }
  return c;
}

// Reads the file at path (records of 1400 bytes, each `record` bytes on disk, the first at
// `first`), cuts it to `cut` bytes after the 100th packet, and checks what a cut must give: no
// SIGBUS, the records before the cut (the last one may end in zeros where the file lost it),
// then an error saying what happened, and again on the next call.
void check_cut_while_read(const std::string& path, uint64_t first, uint64_t record, uint64_t cut) {
  INFO("cut at " << cut);
  auto t = PcapSource::open_file(path);
  CHECK(t->reads_in_place());
  const pcap_pkthdr* h;
  const uint8_t* d;
  size_t n = 0;
  PcapSource::Next r;
  while ((r = t->next(h, d)) == PcapSource::Next::packet) {
    CHECK(h->caplen == 1400);
    if (++n == 100) REQUIRE(truncate(path.c_str(), off_t(cut)) == 0);
  }
  uint64_t whole = (cut - first) / record;
  CHECK((n == whole || n == whole + 1));
  CHECK(r == PcapSource::Next::error);
  CHECK(t->error().find("cut to " + std::to_string(cut) + " bytes while being read") != std::string::npos);
  CHECK(t->next(h, d) == PcapSource::Next::error);
}

// Files the writers below save, removed with them.
class TempFiles {
 public:
  std::string save(const std::string& name, const std::string& bytes) {
    std::string path = (fs::temp_directory_path() / (name + "-" + std::to_string(getpid()))).string();
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    paths_.push_back(path);
    return path;
  }
  ~TempFiles() { for (auto& p : paths_) std::remove(p.c_str()); }

 private:
  std::vector<std::string> paths_;
};

// Writes a classic pcap file by hand, so that every header field can be set (and broken).
class Writer {
 public:
  Writer(bool swapped, bool nsec, uint32_t snaplen = 65535, uint16_t minor = 4) : swapped_(swapped) {
    put32(nsec ? 0xa1b23c4d : 0xa1b2c3d4);
    put16(2); put16(minor);
    put32(0); put32(0); put32(snaplen); put32(1);
  }
  void record(uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t len, size_t body) {
    put32(sec); put32(frac); put32(caplen); put32(len);
    for (size_t i = 0; i < body; ++i) bytes_.push_back(static_cast<char>((i * 31 + sec) & 0xff));
  }
  void packet(uint32_t sec, uint32_t frac, uint32_t n) { record(sec, frac, n, n, n); }
  void raw(size_t n) { bytes_.append(n, '\x5a'); }
  // Appends the records written since the last save to the file saved last.
  void append_to(const std::string& path, size_t from) {
    FILE* f = std::fopen(path.c_str(), "ab");
    REQUIRE(f);
    std::fwrite(bytes_.data() + from, 1, bytes_.size() - from, f);
    std::fclose(f);
  }
  size_t size() const { return bytes_.size(); }
  std::string save(const std::string& name) { return files_.save("medmon-pcap-" + name, bytes_); }

 private:
  void put32(uint32_t v) { if (swapped_) v = __builtin_bswap32(v); bytes_.append(reinterpret_cast<char*>(&v), 4); }
  void put16(uint16_t v) { if (swapped_) v = __builtin_bswap16(v); bytes_.append(reinterpret_cast<char*>(&v), 2); }
  bool swapped_;
  std::string bytes_;
  TempFiles files_;
};

// Writes a pcapng file by hand: a Section Header Block, then blocks as asked.
class NgWriter {
 public:
  explicit NgWriter(bool swapped) : swapped_(swapped) {
    std::string b;
    put32(b, 0x1a2b3c4d); put16(b, 1); put16(b, 0); put32(b, 0xffffffff); put32(b, 0xffffffff);
    block(0x0a0d0d0a, b);
  }
  // Options: code and value, each padded to 4 bytes; an end-of-options option closes them.
  using Options = std::vector<std::pair<uint16_t, std::string>>;
  std::string options(const Options& o) {
    std::string b;
    for (auto& [code, value] : o) {
      put16(b, code); put16(b, static_cast<uint16_t>(value.size()));
      b += value;
      b.append((4 - value.size() % 4) % 4, '\0');
    }
    if (!o.empty()) { put32(b, 0); }
    return b;
  }
  std::string u64(uint64_t v) {
    std::string b;
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>(v >> (swapped_ ? 56 - 8 * i : 8 * i)));
    return b;
  }
  void idb(uint16_t link, uint32_t snaplen, const Options& o = {}) {
    std::string b;
    put16(b, link); put16(b, 0); put32(b, snaplen);
    block(1, b + options(o));
  }
  void epb(uint32_t iface, uint64_t ts, uint32_t caplen, uint32_t len, size_t body, const Options& o = {}) {
    std::string b;
    put32(b, iface); put32(b, uint32_t(ts >> 32)); put32(b, uint32_t(ts)); put32(b, caplen); put32(b, len);
    for (size_t i = 0; i < body; ++i) b.push_back(static_cast<char>((i * 7 + ts) & 0xff));
    b.append((4 - body % 4) % 4, '\0');
    block(6, b + options(o));
  }
  void packet(uint64_t ts, uint32_t n) { epb(0, ts, n, n, n); }
  void block(uint32_t type, const std::string& body) {
    put32(bytes_, type); put32(bytes_, uint32_t(12 + body.size()));
    bytes_ += body;
    put32(bytes_, uint32_t(12 + body.size()));
  }
  void raw(const std::string& b) { bytes_ += b; }
  const std::string& bytes() const { return bytes_; }
  void cut(size_t n) { bytes_.resize(bytes_.size() - n); }
  std::string save(const std::string& name) { return files_.save("medmon-pcapng-" + name, bytes_); }

 private:
  void put32(std::string& s, uint32_t v) { if (swapped_) v = __builtin_bswap32(v); s.append(reinterpret_cast<char*>(&v), 4); }
  void put16(std::string& s, uint16_t v) { if (swapped_) v = __builtin_bswap16(v); s.append(reinterpret_cast<char*>(&v), 2); }
  bool swapped_;
  std::string bytes_;
  TempFiles files_;
};

}  // namespace

TEST_CASE("file reader: every byte order and precision reads as libpcap reads it") {
  for (bool swapped : {false, true})
    for (bool nsec : {false, true}) {
      Writer w(swapped, nsec);
      for (uint32_t i = 0; i < 50; ++i) w.packet(1700000000 + i, nsec ? 999999999 - i : 999999 - i, 60 + i * 13);
      w.packet(0x80000001u, 5, 64);  // past 2038: libpcap reads it signed in this byte order
      same_reading(w.save(std::string("order") + (swapped ? "-be" : "-le") + (nsec ? "-ns" : "-us")));
    }
}

TEST_CASE("file reader: record seconds are unsigned 32 bits, in place and through libpcap") {
  for (bool swapped : {false, true}) {
    Writer w(swapped, false);
    w.packet(4102444800u, 7, 60);  // 2100-01-01
    w.packet(0xFFFFFFFFu, 8, 60);
    w.record(4102444801u, 9, 60, 60, 0);  // cut short: libpcap reads the rest
    w.raw(10);
    std::string path = w.save(std::string("unsigned") + (swapped ? "-be" : "-le"));
    for (size_t window : {PcapSource::kDefaultMapWindow, size_t(1)}) {
      Reading r = read_with_source(path, window);
      REQUIRE(r.packets.size() == 2);
      CHECK(r.packets[0].sec == 4102444800);
      CHECK(r.packets[1].sec == 4294967295);
    }
    // Through libpcap from the first record on (an odd first record hands the file over).
    Writer odd(swapped, false);
    odd.packet(4102444800u, 7, 70000);  // longer than the snapshot length: libpcap reads on
    odd.packet(4102444802u, 7, 60);
    Reading r = read_with_source(odd.save(std::string("unsigned-odd") + (swapped ? "-be" : "-le")));
    REQUIRE(r.packets.size() == 2);
    CHECK(r.packets[0].sec == 4102444800);
    CHECK(r.packets[1].sec == 4102444802);
  }
}

TEST_CASE("file reader: empty capture, cut record header, cut record") {
  Writer empty(false, false);
  same_reading(empty.save("empty"));

  Writer cut_header(false, false);
  cut_header.packet(1, 2, 100);
  cut_header.raw(9);
  std::string cut_header_path = cut_header.save("cut-header");
  CHECK(read_with_source(cut_header_path).error);
  same_reading(cut_header_path);

  Writer cut_body(true, false);
  cut_body.packet(1, 2, 100);
  cut_body.record(3, 4, 200, 200, 150);
  std::string cut_body_path = cut_body.save("cut-body");
  Reading r = read_with_source(cut_body_path);
  CHECK(r.packets.size() == 1);
  CHECK(r.error);
  same_reading(cut_body_path);
}

TEST_CASE("file reader: odd records and versions") {
  // A capture length over the file's snapshot length, in the middle of the file.
  Writer over(false, false, 128);
  over.packet(1, 0, 100);
  over.record(2, 0, 300, 300, 300);
  over.packet(3, 0, 50);
  same_reading(over.save("over-snaplen"));

  // A capture length that no link type allows.
  Writer huge(false, true, 65535);
  huge.packet(1, 0, 100);
  huge.record(2, 0, 0x7fffffff, 0x7fffffff, 16);
  same_reading(huge.save("huge"));

  // A version 2.2 file: libpcap's own quirks for old versions apply.
  Writer old(false, false, 65535, 2);
  old.record(1, 0, 80, 60, 80);
  old.packet(2, 0, 60);
  same_reading(old.save("v22"));
}

TEST_CASE("file reader: a file many times the stdio buffer") {
  Writer big(false, false);
  for (uint32_t i = 0; i < 30000; ++i) big.packet(1000 + i / 1000, i % 1000000, 1000 + i % 500);
  same_reading(big.save("big"));
}

// Calls f(path, handle) for every capture under pcaps/ that libpcap opens (the others are not
// captures at all: open_file refuses them the same way).
template <class F>
void each_bundled_capture(F f) {
  for (auto& e : fs::recursive_directory_iterator(MEDMON_SOURCE_DIR "/pcaps")) {
    auto ext = e.path().extension();
    if (ext != ".pcap" && ext != ".pcapng") continue;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(e.path().c_str(), err);
    if (!p) continue;
    f(e.path().string(), p);
    pcap_close(p);
  }
}

TEST_CASE("file reader: the project's own captures read as libpcap reads them") {
  size_t n = 0;
  each_bundled_capture([&](const std::string& path, pcap_t*) {
    same_reading(path);
    ++n;
  });
  CHECK(n > 20);
}

TEST_CASE("file reader: a BPF filter keeps the packets libpcap's filter keeps") {
  size_t n = 0;
  each_bundled_capture([&](const std::string& path, pcap_t* p) {
    for (const char* bpf : {"tcp", "udp or icmp", "ip[6:2] & 0x3fff != 0", "greater 1000", "not tcp port 104"}) {
      bpf_program prog;
      if (pcap_compile(p, &prog, bpf, 1, PCAP_NETMASK_UNKNOWN) != 0) continue;  // not for this link type
      pcap_freecode(&prog);
      for (size_t window : {PcapSource::kDefaultMapWindow, size_t(1)}) same_reading_with(path, window, bpf);
      ++n;
    }
  });
  CHECK(n > 100);
  Writer w(false, false);
  w.packet(1, 0, 100);
  auto s = PcapSource::open_file(w.save("bad-filter"));
  CHECK_THROWS_WITH(s->set_filter("tcp port"), Catch::Contains("bad BPF filter 'tcp port'"));
}

TEST_CASE("file reader: classic pcap files are read in place") {
  Writer w(false, false);
  for (uint32_t i = 0; i < 10; ++i) w.packet(1 + i, i, 100);
  auto s = PcapSource::open_file(w.save("in-place"));
  CHECK(s->reads_in_place());
  CHECK(count_packets(*s).packets == 10);
  CHECK_FALSE(s->reads_in_place());  // the end of the file is libpcap's to report
}

TEST_CASE("file reader: records that cross mapping windows stay in place") {
  // Records of 1500 and 9000 bytes against one-page windows: most start in one window and end
  // in the next, some are longer than a window.
  for (bool ng : {false, true}) {
    INFO((ng ? "pcapng" : "pcap"));
    Writer w(false, false);
    NgWriter g(false);
    g.idb(1, 65535);
    for (uint32_t i = 0; i < 40; ++i) {
      uint32_t len = i % 5 == 4 ? 9000 : 1500;
      if (ng) g.packet(1700000000000000ull + i, len); else w.packet(1 + i, i, len);
    }
    const std::string path = ng ? g.save("windows-ng") : w.save("windows");
    Count c = count_packets(*PcapSource::open_file(path, 1));
    CHECK(c.packets == 40);
    CHECK(c.in_place == 40);
    same_reading(path);
  }
}

TEST_CASE("file reader: fractions with the top bit set, in both byte orders") {
  for (bool swapped : {false, true})
    for (bool nsec : {false, true}) {
      Writer w(swapped, nsec);
      w.packet(5, 0xFFFFFFFFu, 60);
      w.packet(6, 0x80000000u, 60);
      w.packet(0xFFFFFFFFu, 0x7FFFFFFFu, 60);
      same_reading(w.save(std::string("frac") + (swapped ? "-be" : "-le") + (nsec ? "-ns" : "-us")));
    }
}

TEST_CASE("file reader: a file that grows or shrinks while it is read") {
  Writer grow(false, false);
  for (uint32_t i = 0; i < 20; ++i) grow.packet(1, i, 1000);
  std::string path = grow.save("grow");
  size_t saved = grow.size();
  for (uint32_t i = 20; i < 40; ++i) grow.packet(2, i, 1000);
  auto s = PcapSource::open_file(path);
  grow.append_to(path, saved);  // written after the open, as by a capture still running
  CHECK(count_packets(*s).packets == 40);  // the new records come through libpcap
  same_reading(path);

  // Cut while read, inside a page (the rest of it reads as zeros) and at a page boundary (the
  // pages after it fault).
  Writer shrink(false, false);
  for (uint32_t i = 0; i < 20000; ++i) shrink.packet(1, i, 1400);  // several mapping windows
  for (uint64_t cut : {uint64_t(24 + 5000 * (16 + 1400) + 700), uint64_t(4096 * 1000)})
    check_cut_while_read(shrink.save("shrink"), 24, 16 + 1400, cut);
}

TEST_CASE("file reader: pcapng packet blocks are read in place, other blocks by libpcap") {
  NgWriter w(false);
  w.idb(1, 65535);
  for (uint32_t i = 0; i < 10; ++i) w.packet(1700000000000000ull + i, 100 + i);
  auto s = PcapSource::open_file(w.save("in-place"));
  CHECK(s->reads_in_place());
  Count c = count_packets(*s);
  CHECK(c.packets == 10);
  CHECK(c.in_place == 10);
  CHECK_FALSE(s->reads_in_place());

  // Two interfaces (dumpcap -i eth0 -i eth1): libpcap reads the second IDB and the packet after
  // it, the mapping the rest.
  const std::string two_path = MEDMON_SOURCE_DIR "/pcaps/core/two_interfaces.pcapng";
  const pcap_pkthdr* h;
  const uint8_t* d;
  auto two = PcapSource::open_file(two_path);
  REQUIRE(two->next(h, d) == PcapSource::Next::packet);
  CHECK(two->reads_in_place());
  Count rest = count_packets(*two);
  CHECK(rest.packets > 0);
  CHECK(rest.in_place == rest.packets);
  same_reading(two_path);
}

// Interfaces described before the first packet and between packets, with their own time stamp
// resolutions and offsets, and blocks libpcap must see between the packets: libpcap reads each
// such block and the packet after it, the mapping everything else, and together they read what
// libpcap alone reads (with and without a filter).
TEST_CASE("file reader: pcapng with several interfaces reads as libpcap reads it, mostly in place") {
  for (bool swapped : {false, true}) {
    std::string order = swapped ? "-be" : "-le";
    NgWriter w(swapped);
    w.idb(1, 65535, {{2, "eth0"}});
    w.idb(1, 65535, {{2, "eth1"}, {9, std::string(1, '\x09')}, {14, w.u64(3600)}});
    uint64_t n = 0;
    auto burst = [&](uint32_t ifaces, uint64_t count) {
      for (uint64_t i = 0; i < count; ++i, ++n) {
        uint32_t k = uint32_t(n % ifaces);
        uint64_t ts = k == 1 ? 1700000000123456789ull + n * 1000003 : 1700000000000000ull + n * 1001;
        w.epb(k, ts, 60 + uint32_t(n % 90), 60 + uint32_t(n % 90) + uint32_t(k), 60 + n % 90);
      }
    };
    burst(2, 50);
    w.block(4, std::string(4, '\0'));  // name resolution
    burst(2, 50);
    w.idb(1, 65535, {{9, std::string(1, '\x06')}, {14, w.u64(uint64_t(-5))}});  // a third, described late
    burst(3, 60);
    w.block(0x40000bad, std::string(8, '\x11'));  // custom
    burst(3, 60);
    w.block(5, std::string(20, '\0'));  // interface statistics
    const std::string path = w.save("three-ifaces" + order);
    same_reading(path);
    same_reading_with(path, PcapSource::kDefaultMapWindow, "len > 100");
    auto s = PcapSource::open_file(path);
    Count c = count_packets(*s);
    CHECK(c.packets == n);
    // After every packet the mapping reads on: libpcap read only the blocks it must see and the
    // packet after each, and the file was taken back every time.
    CHECK(c.in_place == n);

    // Then an interface whose time stamps are in milliseconds: libpcap reads the rest.
    NgWriter ms = w;
    ms.idb(1, 65535, {{9, std::string(1, '\x03')}});
    ms.epb(3, 1700000000123ull, 80, 80, 80);
    ms.epb(0, 1700000000999999ull, 80, 80, 80);
    const std::string ms_path = ms.save("ms-iface" + order);
    same_reading(ms_path);
    auto m = PcapSource::open_file(ms_path);
    count_packets(*m);
    CHECK_FALSE(m->reads_in_place());

    // A packet of an interface described in no block: libpcap's error, in place or not.
    NgWriter unknown = w;
    unknown.epb(3, 1700000000000000ull, 80, 80, 80);
    same_reading(unknown.save("unknown-iface" + order));
  }
}

TEST_CASE("file reader: pcapng in both byte orders and time stamp resolutions reads as libpcap reads it") {
  for (bool swapped : {false, true})
    for (int res : {-1, 6, 9, 3, 0x80 | 20}) {  // none (microseconds), 10^-6, 10^-9, 10^-3, 2^-20
      NgWriter w(swapped);
      NgWriter::Options o;
      if (res >= 0) o.push_back({9, std::string(1, char(res))});
      w.idb(1, 65535, o);
      uint64_t scale = res == 9 ? 1000000000ull : res == 3 ? 1000 : res == (0x80 | 20) ? (1u << 20) : 1000000;
      for (uint64_t i = 0; i < 40; ++i) w.packet((1700000000ull + i) * scale + (scale - 1 - i * 7919 % scale), 60 + uint32_t(i) * 13);
      w.packet(0xFFFFFFFFFFFFFFFFull, 64);  // the largest time stamp
      w.packet(0, 64);
      std::string name = std::string("order") + (swapped ? "-be" : "-le") + "-res" + std::to_string(res);
      std::string path = w.save(name);
      auto s = PcapSource::open_file(path);
      CHECK(s->reads_in_place() == (res == -1 || res == 6 || res == 9));
      same_reading(path);
    }
}

TEST_CASE("file reader: pcapng time stamp offsets, options and link types read as libpcap reads them") {
  for (bool swapped : {false, true}) {
    for (int64_t offset : {int64_t(0), int64_t(3600), int64_t(-1700000000), int64_t(-1)}) {
      NgWriter w(swapped);
      w.idb(1, 65535, {{2, "eth0"}, {14, w.u64(uint64_t(offset))}, {9, std::string(1, '\x09')}, {12, "Linux"}});
      for (uint64_t i = 0; i < 20; ++i) w.packet(1700000000123456789ull + i * 1000001, 100);
      std::string path = w.save("offset-" + std::to_string(offset) + (swapped ? "-be" : "-le"));
      CHECK(PcapSource::open_file(path)->reads_in_place());
      same_reading(path);
    }
    // Options on packets (a comment, flags), and blocks before the first IDB.
    NgWriter w(swapped);
    w.block(0x00000004, std::string(16, '\0'));  // a name resolution block (empty records)
    w.idb(1, 65535, {{2, "eth0"}});
    w.epb(0, 1000000, 60, 1500, 60, {{1, "a comment"}, {2, std::string(4, '\x01')}});
    w.epb(0, 2000000, 61, 61, 61, {{1, "x"}});
    w.packet(3000000, 62);
    same_reading(w.save(std::string("options") + (swapped ? "-be" : "-le")));
    // Options after an end-of-options option are not read.
    NgWriter after_end(swapped);
    after_end.idb(1, 65535, {{0, ""}, {9, std::string(1, '\x09')}, {14, after_end.u64(100)}});
    for (uint64_t i = 0; i < 5; ++i) after_end.packet(1700000000123456789ull + i, 100);
    same_reading(after_end.save(std::string("after-end") + (swapped ? "-be" : "-le")));
    // Link types: read in place or not, as for classic files.
    for (uint16_t link : {101, 113, 276, 0, 108, 228, 220}) {
      NgWriter l(swapped);
      l.idb(link, 65535);
      for (uint64_t i = 0; i < 5; ++i) l.packet(1000000 * i, 40);
      same_reading(l.save("link-" + std::to_string(link) + (swapped ? "-be" : "-le")));
    }
  }
}

TEST_CASE("file reader: odd pcapng blocks are libpcap's to read") {
  for (bool swapped : {false, true}) {
    std::string order = swapped ? "-be" : "-le";
    auto start = [&](NgWriter& w, uint32_t snaplen = 65535) {
      w.idb(1, snaplen);
      for (uint64_t i = 0; i < 5; ++i) w.packet(1000000 * i + 17, 100);
    };
    NgWriter second_idb(swapped);  // same link type and snapshot length: libpcap goes on
    start(second_idb);
    second_idb.idb(1, 65535, {{9, std::string(1, '\x09')}});
    second_idb.epb(1, 5000000123ull, 80, 80, 80);
    second_idb.packet(6000000, 90);
    same_reading(second_idb.save("second-idb" + order));

    NgWriter other_link(swapped);  // a different link type: libpcap's error
    start(other_link);
    other_link.idb(101, 65535);
    other_link.packet(6000000, 90);
    same_reading(other_link.save("other-link" + order));

    NgWriter no_iface(swapped);  // a packet of an interface never described
    start(no_iface);
    no_iface.epb(1, 6000000, 90, 90, 90);
    same_reading(no_iface.save("no-iface" + order));

    NgWriter over(swapped);  // a capture length over the snapshot length
    start(over, 128);
    over.epb(0, 6000000, 300, 300, 300);
    over.packet(7000000, 90);
    same_reading(over.save("over-snaplen" + order));

    NgWriter past(swapped);  // a capture length past the end of its block
    start(past);
    past.epb(0, 6000000, 200, 200, 100);
    past.packet(7000000, 90);
    same_reading(past.save("past-block" + order));

    NgWriter cut(swapped);  // a block cut by the end of the file, then its header
    start(cut);
    cut.packet(6000000, 90);
    cut.cut(30);
    same_reading(cut.save("cut-block" + order));
    NgWriter cut_header(swapped);
    start(cut_header);
    cut_header.raw(std::string(5, '\x06'));
    same_reading(cut_header.save("cut-header" + order));

    NgWriter trailer(swapped);  // a trailer that does not match the header
    start(trailer);
    trailer.packet(6000000, 90);
    trailer.cut(4);
    trailer.raw(std::string("\x01\x02\x03\x04", 4));
    trailer.packet(7000000, 90);
    same_reading(trailer.save("trailer" + order));

    NgWriter odd_len(swapped);  // a length that is not a multiple of 4
    start(odd_len);
    odd_len.raw(swapped ? std::string("\0\0\0\x06\0\0\0\x21", 8) : std::string("\x06\0\0\0\x21\0\0\0", 8));
    odd_len.raw(std::string(29, '\0'));
    same_reading(odd_len.save("odd-len" + order));

    NgWriter others(swapped);  // statistics, simple packets, a custom block, a new section
    start(others);
    others.block(5, std::string(12, '\0'));
    others.packet(6000000, 90);
    others.block(3, std::string(4, '\0') + std::string(4, '\0'));
    others.packet(7000000, 90);
    others.block(0x40000bad, std::string(8, '\x11'));
    others.packet(8000000, 90);
    others.raw(NgWriter(swapped).bytes());
    others.idb(1, 65535);
    others.packet(9000000, 90);
    same_reading(others.save("others" + order));
  }
}

TEST_CASE("file reader: a pcapng file cut while it is read") {
  NgWriter w(false);
  w.idb(1, 65535);
  for (uint32_t i = 0; i < 20000; ++i) w.packet(1000000ull * i, 1400);
  const uint64_t start = 28 + 20;  // after the SHB and IDB: the first packet block
  for (uint64_t cut : {start + 5000 * (32 + 1400) + 700, uint64_t(4096 * 1000)})
    check_cut_while_read(w.save("shrink"), start, 32 + 1400, cut);
}
