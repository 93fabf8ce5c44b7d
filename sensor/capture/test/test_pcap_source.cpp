// PcapSource opens files itself (with a large stdio buffer) and reads the records of classic pcap
// files from a mapping, handing the file to libpcap at the first record it does not take: it must
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

Reading read_with_libpcap(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE];
  Reading r;
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_MICRO, err);
  REQUIRE(p);
  pcap_pkthdr* h;
  const u_char* d;
  int rc;
  while ((rc = pcap_next_ex(p, &h, &d)) == 1)
    r.packets.push_back({h->ts.tv_sec, h->ts.tv_usec, h->caplen, h->len, std::string(reinterpret_cast<const char*>(d), h->caplen)});
  if (rc != PCAP_ERROR_BREAK) { r.error = true; r.message = pcap_geterr(p); }
  pcap_close(p);
  return r;
}

Reading read_with_source(const std::string& path) {
  Reading r;
  auto s = PcapSource::open_file(path);
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

void same_reading(const std::string& path) {
  INFO(path);
  Reading a = read_with_libpcap(path), b = read_with_source(path);
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
  std::string save(const std::string& name) {
    std::string path = (fs::temp_directory_path() / ("medmon-pcap-" + std::to_string(getpid()) + "-" + name)).string();
    FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f);
    std::fwrite(bytes_.data(), 1, bytes_.size(), f);
    std::fclose(f);
    paths_.push_back(path);
    return path;
  }
  ~Writer() { for (auto& p : paths_) std::remove(p.c_str()); }

 private:
  void put32(uint32_t v) { if (swapped_) v = __builtin_bswap32(v); bytes_.append(reinterpret_cast<char*>(&v), 4); }
  void put16(uint16_t v) { if (swapped_) v = __builtin_bswap16(v); bytes_.append(reinterpret_cast<char*>(&v), 2); }
  bool swapped_;
  std::string bytes_;
  std::vector<std::string> paths_;
};

}  // namespace

TEST_CASE("file reader: every byte order and precision reads as libpcap reads it") {
  for (bool swapped : {false, true})
    for (bool nsec : {false, true}) {
      Writer w(swapped, nsec);
      for (uint32_t i = 0; i < 50; ++i) w.packet(1700000000 + i, nsec ? 999999999 - i : 999999 - i, 60 + i * 13);
      w.packet(0x80000001u, 5, 64);  // past 2038: seconds signed or not depending on byte order
      same_reading(w.save(std::string("order") + (swapped ? "-be" : "-le") + (nsec ? "-ns" : "-us")));
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

TEST_CASE("file reader: the project's own captures read as libpcap reads them") {
  size_t n = 0;
  for (auto& e : fs::recursive_directory_iterator(MEDMON_SOURCE_DIR "/pcaps")) {
    auto ext = e.path().extension();
    if (ext != ".pcap" && ext != ".pcapng") continue;
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(e.path().c_str(), err);
    if (!p) continue;  // not a capture at all: open_file refuses it the same way
    pcap_close(p);
    same_reading(e.path().string());
    ++n;
  }
  CHECK(n > 20);
}

TEST_CASE("file reader: classic pcap files are read in place, others through libpcap") {
  Writer w(false, false);
  for (uint32_t i = 0; i < 10; ++i) w.packet(1 + i, i, 100);
  auto s = PcapSource::open_file(w.save("in-place"));
  CHECK(s->reads_in_place());
  const pcap_pkthdr* h;
  const uint8_t* d;
  size_t n = 0;
  while (s->next(h, d) == PcapSource::Next::packet) ++n;
  CHECK(n == 10);
  CHECK_FALSE(s->reads_in_place());  // the end of the file is libpcap's to report

  for (auto& e : fs::recursive_directory_iterator(MEDMON_SOURCE_DIR "/pcaps")) {
    if (e.path().extension() != ".pcapng") continue;
    CHECK_FALSE(PcapSource::open_file(e.path().string())->reads_in_place());
    return;
  }
  FAIL("no pcapng capture under pcaps/");
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
  const pcap_pkthdr* h;
  const uint8_t* d;
  size_t n = 0;
  while (s->next(h, d) == PcapSource::Next::packet) ++n;
  CHECK(n == 40);  // the new records come through libpcap
  same_reading(path);

  // Cut while read, inside a page (the rest of it reads as zeros) and at a page boundary (the
  // pages after it fault): no SIGBUS; the records before the cut (the last one may end in zeros
  // where the file lost it), then an error saying what happened.
  Writer shrink(false, false);
  for (uint32_t i = 0; i < 20000; ++i) shrink.packet(1, i, 1400);  // several mapping windows
  for (uint64_t cut : {uint64_t(24 + 5000 * (16 + 1400) + 700), uint64_t(4096 * 1000)}) {
    INFO("cut at " << cut);
    path = shrink.save("shrink");
    auto t = PcapSource::open_file(path);
    n = 0;
    PcapSource::Next r;
    while ((r = t->next(h, d)) == PcapSource::Next::packet) {
      CHECK(h->caplen == 1400);
      if (++n == 100) REQUIRE(truncate(path.c_str(), off_t(cut)) == 0);
    }
    uint64_t whole = (cut - 24) / (16 + 1400);
    CHECK((n == whole || n == whole + 1));
    CHECK(r == PcapSource::Next::error);
    CHECK(t->error().find("cut to " + std::to_string(cut) + " bytes while being read") != std::string::npos);
    CHECK(t->next(h, d) == PcapSource::Next::error);
  }
}
