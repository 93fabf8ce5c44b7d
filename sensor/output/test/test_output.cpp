#include <catch2/catch.hpp>
#include <cstdint>

#include "sensor/common/types.h"
#include "sensor/output/community_id.h"
#include "sensor/output/event_output.h"
#include "sensor/output/json_writer.h"
#include "sensor/output/pseudonymiser.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include <cstdio>
#include <fstream>
#include <iterator>

using namespace medmon;

TEST_CASE("JsonWriter keeps key order and nests") {
  JsonBuffer s;
  JsonWriter w(s);
  w.begin_object();
  w.field("b", 1);
  w.field("a", "x");
  w.array("list");
  w.value(uint64_t{1});
  w.value(true);
  w.null();
  w.end_array();
  w.object("o");
  w.field("k", int64_t{-5});
  w.end_object();
  w.end_object();
  CHECK(s.view() == R"({"b":1,"a":"x","list":[1,true,null],"o":{"k":-5}})");
}

TEST_CASE("JsonWriter leaves out optional text members that are empty") {
  JsonBuffer s;
  JsonWriter w(s);
  w.begin_object();
  w.field_if_nonempty("a", std::string());
  w.field_if_nonempty("b", std::string("x"));
  w.field_if_nonempty("c", "");
  w.field_if_nonempty("d", std::string_view("y\"z"));
  w.object("o");
  w.field_if_nonempty("e", "");
  w.end_object();
  w.end_object();
  CHECK(s.view() == R"({"b":"x","d":"y\"z","o":{}})");
}

TEST_CASE("JsonWriter escapes control characters and invalid UTF-8") {
  std::string s;
  JsonWriter::append_escaped(s, std::string_view("a\"b\\c\n\x01\xff\xc3\xa9", 10));
  CHECK(s == "\"a\\\"b\\\\c\\n\\u0001\\u00ff\xc3\xa9\"");
}

TEST_CASE("JsonWriter fast paths agree with the general ones") {
  // Doubles: the integer formatting matches printf's %.6f away from exact half-way cases.
  for (double v : {0.0, 1.5, 0.000001, 123.456789, 98765.4321, -2.25, 1e9 + 0.125, 3e13, -7e14}) {
    JsonBuffer out;
    JsonWriter w(out);
    w.value(v);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    CHECK(out.view() == buf);
  }
  // Strings: plain ones of every length around the SIMD block size, and one special byte at
  // every position, give the same text as the byte-by-byte escaper.
  for (size_t len = 0; len < 40; ++len) {
    std::string s(len, 'a');
    JsonBuffer fast;
    JsonWriter w(fast);
    w.begin_object();
    w.field("k", s);
    w.end_object();
    CHECK(fast.str() == "{\"k\":\"" + s + "\"}");
    for (size_t at = 0; at < len; ++at)
      for (char special : {'"', '\\', '\n', '\x01', '\x80'}) {
        std::string t = s;
        t[at] = special;
        CHECK_FALSE(JsonWriter::plain(t));
        JsonBuffer a;
        std::string b;
        JsonWriter wa(a);
        wa.begin_object();
        wa.field("x", 1);
        wa.field("k", t);
        wa.value(t);
        wa.end_object();
        JsonWriter::append_escaped(b, t);
        // The escaping path after a failed plain copy keeps the comma state.
        CHECK(a.str() == "{\"x\":1,\"k\":" + b + "," + b + "}");
      }
  }
  // Long keys and values take the general path with the same result.
  std::string long_key(100, 'k'), long_val(300, 'v');
  JsonBuffer out;
  JsonWriter w(out);
  w.begin_object();
  w.field(long_key, long_val);
  w.field("n", uint64_t{7});
  w.end_object();
  CHECK(out.str() == "{\"" + long_key + "\":\"" + long_val + "\",\"n\":7}");
}

TEST_CASE("JsonWriter writes times, addresses and numbers in place, growing the buffer") {
  JsonBuffer out;
  JsonWriter w(out);
  IpAddr a, b;
  REQUIRE(IpAddr::parse("192.168.10.254", a));
  REQUIRE(IpAddr::parse("2001:db8::1", b));
  w.begin_array();
  for (int i = 0; i < 2000; ++i) {  // several growths of the buffer
    w.value(Timestamp{1704096000123456});
    w.value(a);
    w.value(b);
    w.value(int64_t{-42});
    w.value(uint64_t{18446744073709551615ULL});
  }
  w.end_array();
  std::string one = R"("2024-01-01T08:00:00.123456Z","192.168.10.254","2001:db8::1",-42,18446744073709551615)";
  std::string want = "[";
  for (int i = 0; i < 2000; ++i) want += (i ? "," : "") + one;
  want += "]";
  CHECK(out.str() == want);
  // Years are written with four digits whatever the packet header says.
  CHECK(format_rfc3339(Timestamp{-62167219200000000LL - 1000000}).substr(0, 4) == "0000");
  CHECK(format_rfc3339(Timestamp{253402300800000000LL}).substr(0, 4) == "9999");
  CHECK(format_rfc3339(Timestamp{253402300800000000LL}).size() == kRfc3339Len);
}

TEST_CASE("Timestamps are RFC 3339 UTC with microseconds") {
  CHECK(format_rfc3339(Timestamp{0}) == "1970-01-01T00:00:00.000000Z");
  CHECK(format_rfc3339(Timestamp{1704096000123456}) == "2024-01-01T08:00:00.123456Z");
}

TEST_CASE("Packet times from damaged headers are clamped, not overflowed") {
  CHECK(packet_time(1704096000, 123456) == Timestamp{1704096000123456});
  CHECK(packet_time(0, 0) == Timestamp{0});
  // Seconds a forged pcapng block can give (the fuzzer found 18016098509481).
  CHECK(format_rfc3339(packet_time(18016098509481, 5)) == "9999-12-31T23:59:59.000005Z");
  CHECK(format_rfc3339(packet_time(INT64_MAX, INT64_MAX)) == "9999-12-31T23:59:59.999999Z");
  CHECK(format_rfc3339(packet_time(INT64_MIN, -1)) == "0000-01-01T00:00:00.000000Z");
  // Differences of any two packet times stay representable.
  Timestamp hi = packet_time(INT64_MAX, INT64_MAX), lo = packet_time(INT64_MIN, INT64_MIN);
  CHECK(hi.usec - lo.usec > 0);
}

TEST_CASE("IP addresses format and parse") {
  IpAddr a;
  REQUIRE(IpAddr::parse("10.1.2.3", a));
  CHECK(a.to_string() == "10.1.2.3");
  REQUIRE(IpAddr::parse("2001:db8::1", a));
  CHECK(a.to_string() == "2001:db8::1");
  CHECK_FALSE(IpAddr::parse("10.1.2", a));
}

TEST_CASE("Pseudonymiser is keyed, stable and never returns the value") {
  Pseudonymiser p("key-one");
  Pseudonymiser q("key-two");
  std::string a = p("DOE^JANE");
  CHECK(a.rfind("phi:", 0) == 0);
  CHECK(a.size() == 20);
  CHECK(a.find("DOE") == std::string::npos);
  CHECK(a == p("DOE^JANE  "));   // DICOM padding
  CHECK(a == p("DOE^JANE^^"));   // empty trailing components
  CHECK(a != q("DOE^JANE"));
  // Same as the one-shot HMAC of OpenSSL (RFC 2104), also for keys longer than a block.
  auto ref = [](const std::string& key, const std::string& v) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(v.data()),
         v.size(), mac, &len);
    char hex[17];
    for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return std::string("phi:") + hex;
  };
  CHECK(p("DOE^JANE") == ref("key-one", "DOE^JANE"));
  // Every length around the one-block limit (55 bytes with its padding) and past it.
  CHECK(p("") == ref("key-one", ""));
  for (size_t n = 1; n <= 140; ++n) {
    std::string v;
    for (size_t i = 0; i < n; ++i) v.push_back(static_cast<char>('A' + (i * 7 + n) % 26));
    CHECK(p(v) == ref("key-one", v));
  }
  std::string long_key(100, 'k');
  CHECK(Pseudonymiser(long_key)("MRN0001") == ref(long_key, "MRN0001"));
  Pseudonymiser copy(p);
  CHECK(copy("DOE^JANE") == a);
  Pseudonymiser raw("k", Pseudonymiser::Mode::raw);
  CHECK(raw("DOE^JANE ") == "DOE^JANE");
}

TEST_CASE("EventOutput writes the common header first and whole lines") {
  EventOutput out;
  auto sink = std::make_shared<MemorySink>();
  out.add_sink(sink);
  EventEndpoints ep;
  ep.flow_id = "F1";
  IpAddr::parse("10.0.0.1", ep.src);
  IpAddr::parse("10.0.0.2", ep.dst);
  ep.src_port = 1234;
  ep.dst_port = 104;
  ep.proto = 6;
  ep.vlan = 10;
  auto& w = out.begin("test", Timestamp{1000001}, &ep);
  w.field("x", 1);
  out.end();
  REQUIRE(sink->lines.size() == 1);
  CHECK(sink->lines[0] ==
        R"({"ts":"1970-01-01T00:00:01.000001Z","event_type":"test","flow_id":"F1","src_ip":"10.0.0.1","src_port":1234,"dst_ip":"10.0.0.2","dst_port":104,"proto":"tcp","vlan":10,"x":1})");
  CHECK(out.counters().get("events.test") == 1);
}

TEST_CASE("EventOutput reuses a flow's rendered header until the annotation changes") {
  struct Zones : HeaderAnnotator {
    std::string zone = "imaging";
    uint64_t gen = 0;
    int calls = 0;
    void annotate(const EventEndpoints&, JsonWriter& w) override { ++calls; w.field("src_zone", zone); }
    uint64_t annotation_generation() const override { return gen; }
  } zones;
  EventOutput out;
  auto sink = std::make_shared<MemorySink>();
  out.add_sink(sink);
  out.set_annotator(&zones);
  HeaderSlot slot;
  EventEndpoints ep;
  ep.flow_id = "F1";
  ep.header = &slot;
  IpAddr::parse("10.0.0.1", ep.src);
  IpAddr::parse("10.0.0.2", ep.dst);
  ep.src_port = 1234;
  ep.dst_port = 104;
  ep.proto = 6;
  EventEndpoints other = ep;  // another flow without a slot of its own
  other.header = nullptr;
  other.flow_id = "F2";
  other.dst_port = 105;
  for (int i = 0; i < 3; ++i) {
    out.begin("test", Timestamp{1000000}, &ep).field("i", i);
    out.end();
    out.begin("test", Timestamp{1000000}, &other).field("i", i);
    out.end();
  }
  CHECK(zones.calls == 2);  // once per flow: the slot, and the last-flow cache
  zones.zone = "clinical";
  ++zones.gen;  // a reload
  out.begin("test", Timestamp{1000000}, &ep).field("i", 3);
  out.end();
  out.begin("test", Timestamp{1000000}, &other).field("i", 3);
  out.end();
  CHECK(zones.calls == 4);
  REQUIRE(sink->lines.size() == 8);
  std::string head = R"({"ts":"1970-01-01T00:00:01.000000Z","event_type":"test","flow_id":"F1","src_ip":"10.0.0.1","src_port":1234,"dst_ip":"10.0.0.2","dst_port":104,"proto":"tcp","src_zone":")";
  CHECK(sink->lines[0] == head + R"(imaging","i":0})");
  CHECK(sink->lines[4] == head + R"(imaging","i":2})");
  CHECK(sink->lines[6] == head + R"(clinical","i":3})");
  CHECK(sink->lines[7].find(R"("flow_id":"F2")") != std::string::npos);
  CHECK(sink->lines[7].find(R"("dst_port":105,"proto":"tcp","src_zone":"clinical","i":3})") != std::string::npos);
}

TEST_CASE("a file sink takes the lines in runs from the output's buffer: same bytes, same order") {
  char tmpl[] = "/tmp/medmon-batch-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  close(fd);
  auto mem = std::make_shared<MemorySink>();
  std::string expect;
  {
    EventOutput out;
    out.add_sink(std::make_shared<FileSink>(tmpl));
    out.add_sink(mem);
    EventEndpoints ep;
    ep.flow_id = "F1";
    // More than one batch (1 MiB), events of varied size, and lines passed on from elsewhere.
    for (int i = 0; i < 6000; ++i) {
      if (i % 1000 == 999) {
        out.emit_line("merged", "{\"merged\":" + std::to_string(i) + "}");
        continue;
      }
      auto& w = out.begin("test", Timestamp{1700000000000000 + i}, &ep);
      w.field("i", static_cast<uint64_t>(i));
      w.field("pad", std::string(static_cast<size_t>(i % 700), 'x'));
      out.end();
    }
    out.flush();
    for (int i = 0; i < 3; ++i) {  // after a flush, then left for the destructor
      auto& w = out.begin("tail", Timestamp{1700000001000000}, nullptr);
      w.field("n", static_cast<uint64_t>(i));
      out.end();
    }
    for (auto& l : mem->lines) expect += l + "\n";
  }
  std::ifstream in(tmpl);
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(tmpl);
  CHECK(mem->lines.size() == 6003);
  CHECK(got.size() == expect.size());
  CHECK(got == expect);
}

TEST_CASE("a file sink that cannot write says so and leaves no half line") {
  SECTION("a full device: the error names the file") {
    FileSink s("/dev/full");
    CHECK(s.write_error().empty());
    s.write_line("test", R"({"a":1})");
    s.flush();
    CHECK(s.write_error() == "/dev/full: " + std::string(std::strerror(ENOSPC)));
  }
  SECTION("a file that stops growing in the middle of a line is cut back to the last whole line") {
    char tmpl[] = "/tmp/medmon-full-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    close(fd);
    // A file size limit makes the write stop part way, as a disk filling up does.
    rlimit old{};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    std::string err;
    {
      FileSink s(tmpl);
      rlimit small = old;
      small.rlim_cur = 100;
      REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
      for (int i = 0; i < 4; ++i) s.write_line("test", R"({"line":)" + std::to_string(i) + R"(,"pad":"xxxxxxxxxxxxxxxxxxxxxx"})");
      s.flush();
      err = s.write_error();
    }
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    std::ifstream in(tmpl);
    std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::remove(tmpl);
    CHECK(err == std::string(tmpl) + ": " + std::strerror(EFBIG));
    // 42 bytes a line: two whole lines fit in 100 bytes; the part of the third written is taken back.
    CHECK(got == "{\"line\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxx\"}\n{\"line\":1,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxx\"}\n");
  }
}

TEST_CASE("Community ID: Wireshark's values, the same both ways, none for ICMP") {
  IpAddr a, b, c6, d6;
  REQUIRE(IpAddr::parse("192.168.10.5", a));
  REQUIRE(IpAddr::parse("192.168.10.80", b));
  REQUIRE(IpAddr::parse("2001:db8:10::5", c6));
  REQUIRE(IpAddr::parse("2001:db8:10::80", d6));
  // Values tshark's communityid post-dissector gives for pcaps/core/ethernet_basic.pcap.
  CHECK(community_id(a, 40000, b, 80, 6) == "1:GsNaKyi6sONQIN9/tDDKj61MLTc=");
  CHECK(community_id(b, 80, a, 40000, 6) == "1:GsNaKyi6sONQIN9/tDDKj61MLTc=");
  CHECK(community_id(a, 40001, b, 53, 17) == "1:SK1dUdfCF28KT/xzecuFEi9Tn2w=");
  CHECK(community_id(c6, 40003, d6, 514, 17) == "1:K6qVbzJuXOTOgT67AXHhq3Ijzgo=");
  CHECK(community_id(c6, 40002, d6, 8080, 6) != community_id(c6, 40002, d6, 8080, 6, 1));  // the seed counts
  CHECK(community_id(a, 8, b, 0, 1).empty());
  CHECK(community_id(a, 2905, b, 2906, 132).empty());  // SCTP: its ports are not read
  CHECK(community_id(c6, 128, d6, 0, 58).empty());
  CHECK(community_id(a, 0, c6, 0, 6).empty());  // mixed families: no flow
  // Same address both ends: the lower port first.
  CHECK(community_id(a, 5000, a, 80, 6) == community_id(a, 80, a, 5000, 6));
}

TEST_CASE("Community ID in the event header, only when asked for") {
  auto sink = std::make_shared<MemorySink>();
  EventOutput out;
  out.add_sink(sink);
  EventEndpoints ep;
  ep.flow_id = "F1";
  REQUIRE(IpAddr::parse("192.168.10.5", ep.src));
  REQUIRE(IpAddr::parse("192.168.10.80", ep.dst));
  ep.src_port = 40000;
  ep.dst_port = 80;
  ep.proto = 6;
  out.begin("flow", Timestamp{1}, &ep);
  out.end();
  out.set_community_id(true);
  out.begin("flow", Timestamp{2}, &ep);
  out.end();
  REQUIRE(sink->lines.size() == 2);
  CHECK(sink->lines[0].find("community_id") == std::string::npos);
  CHECK(sink->lines[1].find(R"("proto":"tcp","community_id":"1:GsNaKyi6sONQIN9/tDDKj61MLTc=")") != std::string::npos);
}
