#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>

#include "dissectors/proprietary/signature.h"
#include "dissectors/proprietary/test/harness.h"

using namespace medmon;
using namespace medmon::proprietary;
using medmon::testing::Harness;
using medmon::testing::bytes_of;

namespace {

// A made-up TCP service protocol: "AC" magic, version, type, u16be length of the body, body.
const char* kAcme = R"YAML(name: acme-ct-service
vendor: Acme
transport: tcp
ports: [7700]
probe:
  direction: any
  bytes:
    - {offset: 0, hex: "41 43"}
    - {offset: 2, hex: "01"}
framing:
  length: {offset: 4, size: 2, endian: big, adjust: 6}
  max_message: 4096
fields:
  - {name: msg_type, offset: 3, type: u8}
  - {name: serial, offset: 6, length: 8, type: ascii}
  - {name: patient, regex: "PAT=([A-Z0-9]+)", phi: true}
report: messages
)YAML";

std::string acme(uint8_t type, const std::string& body) {
  std::string m = "AC\x01";
  m.push_back(static_cast<char>(type));
  m.push_back(static_cast<char>(body.size() >> 8));
  m.push_back(static_cast<char>(body.size() & 0xFF));
  return m + body;
}

std::shared_ptr<const Signature> parse_ok(const std::string& text) {
  LoadResult r = parse_signature(text, "t.yaml");
  INFO((r.errors.empty() ? "" : r.errors[0].str()));
  REQUIRE(r.errors.empty());
  REQUIRE(r.signatures.size() == 1);
  return r.signatures[0];
}

LoadError parse_err(const std::string& text) {
  LoadResult r = parse_signature(text, "t.yaml");
  REQUIRE(r.signatures.empty());
  REQUIRE(r.errors.size() == 1);
  return r.errors[0];
}

struct SigHarness : Harness {
  explicit SigHarness(std::shared_ptr<const Signature> s, uint8_t proto = 6) : Harness(kProprietaryInfo) {
    d = make_dissector(std::move(s));
    ep.proto = proto;
  }
};

std::string u16be(unsigned v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)}; }

}  // namespace

TEST_CASE("signatures: the shipped files load without errors") {
  LoadResult r = load_signatures(MEDMON_SIGNATURES_SRC);
  for (auto& e : r.errors) FAIL(e.str());
  REQUIRE(r.signatures.size() >= 2);
  std::vector<std::string> names;
  for (auto& s : r.signatures) names.push_back(s->name);
  CHECK(std::find(names.begin(), names.end(), "philips-intellivue-data-export") != names.end());
  CHECK(std::find(names.begin(), names.end(), "datex-ohmeda-s5") != names.end());
}

TEST_CASE("signatures: errors name the file, line and column") {
  auto e = parse_err(std::string(kAcme) + "colour: blue\n");
  CHECK(e.file == "t.yaml");
  CHECK(e.line == 18);
  CHECK(e.column == 1);
  CHECK(e.message.find("unknown key 'colour'") != std::string::npos);
  CHECK(e.str().rfind("t.yaml:18:1: unknown key", 0) == 0);

  std::string t = kAcme;
  e = parse_err(t.replace(t.find("transport: tcp"), 14, "transport: sctp"));
  CHECK(e.line == 3);
  CHECK(e.column == 12);
  CHECK(e.message.find("transport must be tcp, udp or both") != std::string::npos);

  t = kAcme;
  e = parse_err(t.replace(t.find("\"41 43\""), 7, "\"4G\""));
  CHECK(e.line == 8);
  CHECK(e.message.find("not hex") != std::string::npos);

  t = kAcme;
  e = parse_err(t.replace(t.find("PAT=([A-Z0-9]+)"), 15, "PAT=([A-Z0-9+"));
  CHECK(e.line == 16);
  CHECK(e.message.find("invalid regular expression") != std::string::npos);

  t = kAcme;
  e = parse_err(t.replace(t.find("phi: true"), 9, "group: 2, phi: true"));
  CHECK(e.message.find("group 2 asked") != std::string::npos);

  t = kAcme;
  e = parse_err(t.replace(t.find("phi: true"), 9, "phi: true, encoding: utf32"));
  CHECK(e.line == 16);
  CHECK(e.message.find("field.encoding must be bytes, latin1, utf16be or utf16le") != std::string::npos);
  t = kAcme;
  e = parse_err(t.replace(t.find("type: u8}"), 9, "type: u8, encoding: utf16be}"));
  CHECK(e.message.find("field.encoding is for text") != std::string::npos);
  t = kAcme;
  e = parse_err(t.replace(t.find("phi: true"), 9, "phi: true, identity: serial"));
  CHECK(e.message.find("a PHI field cannot be a device identity") != std::string::npos);
  t = kAcme;
  e = parse_err(t.replace(t.find("type: ascii}"), 12, "type: ascii, identity: colour}"));
  CHECK(e.line == 15);
  CHECK(e.message.find("field.identity must be id, udi, serial") != std::string::npos);

  // Numbers std::regex would overflow on or expand into too many states.
  t = kAcme;
  e = parse_err(t.replace(t.find("PAT=([A-Z0-9]+)"), 15, "PAT=\\\\33333333333([A-Z0-9]+)"));
  CHECK(e.message.find("backreference") != std::string::npos);
  t = kAcme;
  e = parse_err(t.replace(t.find("PAT=([A-Z0-9]+)"), 15, "PAT=(([A-Z]{100}){100}){100}"));
  CHECK(e.message.find("multiply") != std::string::npos);
  t = kAcme;
  e = parse_err(t.replace(t.find("PAT=([A-Z0-9]+)"), 15, "PAT=([A-Z]{99999999999})"));
  CHECK(e.message.find("repeat count too large") != std::string::npos);
  t = kAcme;
  parse_ok(t.replace(t.find("PAT=([A-Z0-9]+)"), 15, "PAT=\\\\{([A-Z]{2,8}) \\\\1 x{3}"));  // escaped brace, small counts

  t = kAcme;
  e = parse_err(t.replace(t.find("endian: big"), 11, "endian: middle"));
  CHECK(e.line == 11);
  CHECK(e.message.find("endian must be big or little") != std::string::npos);

  e = parse_err("name: x\ntransport: tcp\n");
  CHECK(e.message.find("missing 'probe'") != std::string::npos);
  e = parse_err("name: x\ntransport: tcp\nprobe: {direction: any}\n");
  CHECK(e.line == 3);
  CHECK(e.message.find("needs 'bytes' or 'regex'") != std::string::npos);
  e = parse_err("name: hl7\ntransport: tcp\nprobe: {regex: x}\n");
  CHECK(e.message.find("built-in") != std::string::npos);
  e = parse_err("name: tls\ntransport: tcp\nprobe: {regex: x}\n");
  CHECK(e.line == 1);
  CHECK(e.message.find("treats specially") != std::string::npos);
  e = parse_err("name: ssh\ntransport: tcp\nprobe: {regex: x}\n");
  CHECK(e.message.find("treats specially") != std::string::npos);
  e = parse_err("name: acme-tls\ntransport: tcp\nprobe: {regex: x}\n");
  CHECK(e.message.find("ending in -tls") != std::string::npos);
  e = parse_err("name: Bad Name\n");
  CHECK(e.line == 1);
  e = parse_err("name: x\n  transport: [tcp\n");  // YAML syntax error, located by the parser
  CHECK(e.line >= 1);
  CHECK(e.column >= 1);
  e = parse_err("");
  CHECK(e.message.find("empty") != std::string::npos);
  e = parse_err("name: x\ntransport: tcp\nprobe: {bytes: [{offset: 600, hex: '00'}]}\n");
  CHECK(e.message.find("between 0 and 511") != std::string::npos);
}

TEST_CASE("signatures: regexes that could backtrack exponentially are refused") {
  // A repeated group whose text splits into iterations in many ways: minutes on a few dozen bytes.
  for (const char* bad : {"ACME ((\\w+\\s?)*)$", "(a+)+", "(?:a*a*b)*", "(.*)*", "(a|a)*", "(?:x(?:ab|ac))+", "(a{1,3}){2,}",
                          "((\\w+\\s)*x)*", "(a)(\\1b)*",
                          // POSIX classes inside a class end at their own ']', not the class's.
                          "(?:[[:alnum:]_]+[[:space:]]?)+;", "([[:alpha:]]+)*!", "([[.a.]]+)*!", "([[=a=]]+)*!"}) {
    INFO(bad);
    std::string t = kAcme;
    auto e = parse_err(t.replace(t.find("\"PAT=([A-Z0-9]+)\""), 17, std::string("'") + bad + "'"));
    CHECK(e.line == 16);
    CHECK(e.message.find("field.regex") != std::string::npos);
    CHECK(e.message.find("exponential") != std::string::npos);
  }
  // Probes run on the first bytes of every flow.
  auto e = parse_err("name: x\ntransport: tcp\nprobe: {regex: '^(\\w+\\s?)*:ACME'}\n");
  CHECK(e.line == 3);
  CHECK(e.message.find("probe.regex") != std::string::npos);
  CHECK(e.message.find("exponential") != std::string::npos);
  // Outside a repeated group: a part that can end in many places, then another that can match
  // the same bytes and fail after them (\w*\w*! takes 15 s on 1024 bytes; a power of the length).
  for (const char* bad : {"(\\w*\\w*!)", "(.*)foo.*bar", "(.*x\\w*$)", "<a>(.*?)</a>.*?<b>", "(\\w+\\s?\\w+!)", "(a?a?aa)",
                          "SN=([^;]*);.*PAT=(\\w+);",
                          // A lookahead is tried again at each place what precedes it can end.
                          "(\\w*)(?=\\w*!)", "(\\w*)(?!\\w*!)", ".*(?=a*$)",
                          // Alternatives of different lengths that can start alike end in more than one place.
                          "(?:a|aa)(?:a|aa)(?:a|aa)!", "(x|xy)\\w*!", "(?:|a)a*!"}) {
    INFO(bad);
    std::string t = kAcme;
    auto e = parse_err(t.replace(t.find("\"PAT=([A-Z0-9]+)\""), 17, std::string("'") + bad + "'"));
    CHECK(e.line == 16);
    CHECK(e.message.find("a power of the input's length") != std::string::npos);
  }
  // Groups that can each match the same text in two ways, one after another, then a part that
  // can fail: each way of each is tried (22 of (?:a|a) take 2.5 s on 40 bytes; every flow is probed).
  for (const char* bad : {"(?:a|a)(?:a|a)(?:a|a)!", "(?:[ab]|a)x(?:b|[bc])!", "(?:ab|[a-z]b)(?:c|c)!",
                          "(?:(?:a|a)|b)(?:c|\\x63)!"}) {
    INFO(bad);
    std::string t = kAcme;
    auto e = parse_err(t.replace(t.find("\"PAT=([A-Z0-9]+)\""), 17, std::string("'") + bad + "'"));
    CHECK(e.line == 16);
    CHECK(e.message.find("more than one way") != std::string::npos);
    CHECK(e.message.find("exponential") != std::string::npos);
  }
  // What follows each repeated part fixes where it ends; lookaheads are atomic; fixed counts.
  for (const char* good : {"(\\w+\\s)*", "(?:\\s*,\\s*\\w+)*", "(?:[^,]+,)*", "(ab?)*", "(?:[a-z]+\\.)+[a-z]+",
                           "(?:\\r\\n|[^\\r\\n])*", "((?:(?!\\x00[\\x00-\\x1f]|\\x09[\\s\\S])[\\s\\S]{2})+)", "\\w+\\s*\\w+",
                           ".*foo", "<a>(.*?)</a>", "SN=([^;]*);", "\\r?\\n", "(\\w+)\\s*(\\w+)", "\\w+!",
                           "(?:[[:alpha:]_]+[[:space:]])*", "[[:digit:]]+;", "\\w+(?=;)", ".*(?=foo)",
                           "(\\w+);(?=\\w*!)", "(?:a|bb)(?:a|bb)!", "(?:\\r\\n|\\n)\\w+!", "(?:ab|ac)(?:ab|ac)!",
                           "(?:ab|a);\\w*!", "(?:a|a)!", "(?:PAT|PID)=(?:PAT|PID)!", "(?:a|a)(?:a|a)"}) {
    INFO(good);
    std::string t = kAcme;
    parse_ok(t.replace(t.find("\"PAT=([A-Z0-9]+)\""), 17, std::string("'(x)") + good + "'"));
  }
}

TEST_CASE("signatures: an empty file and an aliased node are located too") {
  auto e = parse_err("");
  CHECK(e.str() == "t.yaml:1:1: empty signature file");
  e = parse_err("# nothing but a comment\n");
  CHECK(e.str() == "t.yaml:1:1: empty signature file");
  e = parse_err("\n---\n~\n");
  CHECK(e.str() == "t.yaml:3:1: empty signature file");
  // The error is where the alias uses the node, not where the anchor defines it.
  e = parse_err("name: z\ntransport: tcp\nprobe: &p {bytes: [{offset: 0, hex: \"41\"}]}\n"
                "fields:\n  - {name: a, offset: 0, type: u8, phi: *p}\n");
  CHECK(e.str() == "t.yaml:5:41: field.phi must be true or false");
  // Inside an aliased node, the node's own place.
  e = parse_err("name: z\ntransport: tcp\nx: &h {offset: 0, hex: \"4G\"}\n");
  CHECK(e.line == 3);
  e = parse_err("name: z\ntransport: tcp\nprobe: {bytes: [&h {offset: 0, hex: \"41\"}, {offset: 1, hex: *h}]}\n");
  CHECK(e.str() == "t.yaml:3:61: probe.bytes.hex must be a string");
  // Aliases still work, and a name or field read through one is located at the alias.
  auto ok = parse_ok("name: &n z\ntransport: tcp\nprobe: &p {bytes: [{offset: 0, hex: \"41\"}]}\n"
                     "fields:\n  - {name: a, offset: 0, type: u8, phi: &t true}\n  - {name: b, offset: 1, type: u8, phi: *t}\n");
  CHECK(ok->fields.size() == 2);
  CHECK(ok->fields[1].phi);
  CHECK(ok->line == 1);
  CHECK(ok->column == 7);
  // An alias inside the node it names, and aliases that expand past reason, are refused.
  e = parse_err("name: z\ntransport: tcp\nprobe: &p {bytes: [*p]}\n");
  CHECK(e.message.find("contains it") != std::string::npos);
  std::string laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int k = 1; k < 10; ++k) laughs += ", " + prev;
    laughs += "]\n";
  }
  e = parse_err(laughs);
  CHECK(e.message.find("YAML nodes (aliases included)") != std::string::npos);
}

TEST_CASE("signatures: duplicate keys, a second document and what could never be read are errors") {
  // A second `phi:` would be ignored by yaml-cpp (the first wins): the value would go out in clear.
  std::string t = kAcme;
  auto e = parse_err(t.replace(t.find("phi: true}"), 10, "phi: false,\n      phi: true}"));
  CHECK(e.line == 17);
  CHECK(e.message.find("duplicate key 'phi' in field") != std::string::npos);
  e = parse_err(std::string(kAcme) + "name: other\n");
  CHECK(e.line == 18);
  CHECK(e.message.find("duplicate key 'name' in signature") != std::string::npos);
  e = parse_err(std::string(kAcme) + "---\nname: other\ntransport: tcp\nprobe: {bytes: [{offset: 0, hex: 'ff'}]}\n");
  CHECK(e.line == 19);
  CHECK(e.message.find("second YAML document") != std::string::npos);
  parse_ok(std::string("---\n") + kAcme);  // one document with its marker is fine

  // A field or a length header past max_message, a max_message the stream feeder cannot hold.
  t = kAcme;
  e = parse_err(t.replace(t.find("offset: 6, length: 8"), 20, "offset: 4090, length: 8"));
  CHECK(e.line == 15);
  CHECK(e.message.find("field 'serial' ends past max_message (4096)") != std::string::npos);
  t = kAcme;
  e = parse_err(t.replace(t.find("offset: 4, size: 2"), 18, "offset: 4095, size: 2"));
  CHECK(e.line == 11);
  CHECK(e.message.find("ends past max_message") != std::string::npos);
  t = kAcme;
  e = parse_err(t.replace(t.find("max_message: 4096"), 17, "max_message: 4194304"));
  CHECK(e.line == 12);
  CHECK(e.message.find("framing.max_message must be between 1 and 2031616") != std::string::npos);
  t = kAcme;
  parse_ok(t.replace(t.find("max_message: 4096"), 17, "max_message: 2031616"));
  // Unframed over TCP, only the first regex_window bytes of a direction are read.
  e = parse_err("name: x\ntransport: tcp\nprobe: {regex: '^X'}\nfields:\n  - {name: v, offset: 1024, type: u8}\n");
  CHECK(e.line == 5);
  CHECK(e.message.find("regex_window") != std::string::npos);
  parse_ok("name: x\ntransport: udp\nprobe: {regex: '^X'}\nfields:\n  - {name: v, offset: 1024, type: u8}\n");
}

TEST_CASE("signatures: regexes read bytes as Latin-1, 0x80 to 0xff included") {
  auto sig = parse_ok("name: hi\ntransport: tcp\nprobe: {regex: '^[\\x20-\\xff]{4}\\xe9'}\n"
                      "fields:\n  - {name: v, regex: '([\\x80-\\xff]+)', encoding: latin1}\n");
  CHECK(sig->probe(bytes_of("AB\xfc\x80\xe9"), Dir::to_server) == Probe::yes);
  CHECK(sig->probe(bytes_of("AB\x1f\x80\xe9"), Dir::to_server) != Probe::yes);
  SigHarness h(sig);
  h.feed(Dir::to_server, "ABCD\xe9 x\xe4\xf6\xfc y");
  h.end();
  auto ev = h.events("proprietary");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["proprietary"]["fields"]["v"][0] == "\xc3\xa9");  // the first run of high bytes: é
}

TEST_CASE("signatures: a file larger than 1 MiB is refused unread") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("medmon-sig-big-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  // Valid YAML, a long description: parsing it would take about six times its size in memory.
  std::ofstream(dir / "big.yaml") << "name: big\ntransport: tcp\nprobe: {regex: 'ab'}\ndescription: \""
                                  << std::string((1 << 20) + 1, 'a') << "\"\n";
  std::ofstream(dir / "ok.yaml") << "name: ok\ntransport: tcp\nprobe: {regex: 'ab'}\ndescription: \""
                                 << std::string((1 << 20) - 100, 'a') << "\"\n";
  LoadResult r = load_signatures(dir.string());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].str().rfind((dir / "big.yaml").string() + ":1:1: larger than 1 MiB", 0) == 0);
  REQUIRE(r.signatures.size() == 1);
  CHECK(r.signatures[0]->name == "ok");
  fs::remove_all(dir);
}

TEST_CASE("signatures: a directory with a duplicate name and a missing directory") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("medmon-sig-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "a.yaml") << kAcme;
  std::ofstream(dir / "b.yml") << kAcme;
  std::ofstream(dir / "notes.txt") << "ignored";
  LoadResult r = load_signatures(dir.string());
  CHECK(r.signatures.size() == 1);
  REQUIRE(r.errors.size() == 1);
  // At the second file's name, naming the first file.
  CHECK(r.errors[0].str() == (dir / "b.yml").string() + ":1:7: signature name 'acme-ct-service' is already used by " +
                                 (dir / "a.yaml").string());
  CHECK(load_signatures((dir / "nope").string()).errors.size() == 1);

  // Registered at run time: a registry entry for the signature's port (it names one), and the
  // proprietary entry finds it everywhere.
  fs::remove(dir / "b.yml");
  auto errs = add_signatures(dir.string());
  CHECK(errs.empty());
  bool found = false;
  for (const DissectorInfo* d : signature_dissectors()) {
    if (d->port_hints.size() != 1 || d->port_hints[0] != 7700) continue;
    found = true;
    CHECK(d->name == "proprietary");
    CHECK(d->only_on_port_hints);
    CHECK(d->probe(bytes_of(acme(1, "x")), Dir::to_server) == Probe::yes);
    Harness one(*d);
    one.ep.proto = 6;
    one.feed(Dir::to_server, acme(1, "SN000042 PAT=X1"));
    one.end();
    CHECK(one.facts.app == "acme-ct-service");
    CHECK(one.out.counters().get("proprietary.acme-ct-service.flows") == 1);
  }
  CHECK(found);
  CHECK(kProprietaryInfo.probe(bytes_of(acme(1, "x")), Dir::to_server) == Probe::yes);
  CHECK(kProprietaryUdpInfo.probe(bytes_of(acme(1, "x")), Dir::to_server) != Probe::yes);  // a TCP signature
  Harness h(kProprietaryInfo);
  h.ep.proto = 6;
  h.facts.app = "proprietary";
  h.feed(Dir::to_server, acme(1, "SN000042 PAT=X1"));
  h.end();
  CHECK(h.facts.app == "acme-ct-service");
  CHECK(h.events("proprietary").size() == 2);
  // The stream feeder counts the flow as app.proprietary.flows: the signature's count is a share
  // of it, not a second app count.
  CHECK(h.out.counters().get("proprietary.acme-ct-service.flows") == 1);
  CHECK(h.out.counters().get("app.acme-ct-service.flows") == 0);
  // Loading the same directory again reports the duplicates, at the name.
  auto again = add_signatures(dir.string());
  REQUIRE(again.size() == 1);
  CHECK(again[0].str() == (dir / "a.yaml").string() + ":1:7: signature 'acme-ct-service' is already loaded from " +
                              (dir / "a.yaml").string());
  // A shipped signature's name.
  fs::create_directories(dir / "builtin");
  std::ofstream(dir / "builtin" / "s.yaml") << "name: datex-ohmeda-s5\ntransport: tcp\nprobe: {bytes: [{offset: 0, hex: '41'}]}\n";
  auto shipped = add_signatures((dir / "builtin").string());
  REQUIRE(shipped.size() == 1);
  CHECK(shipped[0].str() == (dir / "builtin" / "s.yaml").string() + ":1:7: signature 'datex-ohmeda-s5' is already loaded from " +
                                std::string(MEDMON_SIGNATURES_SRC) + "/datex-ohmeda-s5.yaml");
  fs::remove_all(dir);
}

TEST_CASE("signatures: probes") {
  auto sig = parse_ok(kAcme);
  CHECK(sig->probe(bytes_of(acme(1, "hello")), Dir::to_server) == Probe::yes);
  CHECK(sig->probe(bytes_of("AC"), Dir::to_server) == Probe::need_more);
  CHECK(sig->probe(bytes_of("AB\x01"), Dir::to_server) == Probe::no);
  CHECK(sig->probe(bytes_of("GET / HTTP/1.1\r\n"), Dir::to_server) == Probe::no);

  auto rx = parse_ok("name: rx\ntransport: tcp\nprobe:\n  direction: to_client\n  regex: '^READY [0-9]+'\n");
  CHECK(rx->probe(bytes_of("READY 42\r\n"), Dir::to_client) == Probe::yes);
  CHECK(rx->probe(bytes_of("READY 42\r\n"), Dir::to_server) == Probe::no);
  CHECK(rx->probe(bytes_of("REA"), Dir::to_client) == Probe::need_more);
  CHECK(rx->probe(bytes_of("SSH-2.0-OpenSSH_9.2p1 Debian"), Dir::to_client) == Probe::no);

  LoadResult shipped = load_signatures(MEDMON_SIGNATURES_SRC);
  std::shared_ptr<const Signature> iv, dx;
  for (auto& s : shipped.signatures) {
    if (s->name == "philips-intellivue-data-export") iv = s;
    if (s->name == "datex-ohmeda-s5") dx = s;
  }
  REQUIRE(iv);
  REQUIRE(dx);
  std::string assoc = std::string("\x0d\xec\x05\x08\x13\x01\x00\x16\x01\x02\x80\x00\x14\x02\x00\x02", 16) + std::string(222, 0);
  CHECK(iv->probe(bytes_of(assoc), Dir::to_server) == Probe::yes);
  std::string poll = std::string("\xe1\x00\x00\x02\x00\x01", 6) + u16be(20) + std::string(20, '\x00');
  CHECK(iv->probe(bytes_of(poll), Dir::to_server) == Probe::yes);
  std::string hdr(41, '\0');
  hdr[0] = '\x7e';
  hdr[1] = 40;
  hdr[4] = 6;
  CHECK(dx->probe(bytes_of(hdr), Dir::to_server) == Probe::yes);
  // Other protocols never match the shipped signatures.
  const std::string others[] = {
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(60, 'r'),
      std::string("\x01\x00\x00\x00\x00\xcd\x00\x01\x00\x00", 10) + std::string(60, ' '),
      "\x0bMSH|^~\\&|ADT1|GHH|LAB|GHH|20240101||ADT^A01|1|P|2.5\r",
      "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
      std::string("\x00\x00\x00\x85\xffSMBr", 9) + std::string(60, '\0'),
      std::string("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07" "example" "\x03" "com" "\x00\x00\x01\x00\x01", 29),
      std::string(64, '\0'),
  };
  for (auto& o : others) {
    for (Dir d : {Dir::to_server, Dir::to_client}) {
      CHECK(iv->probe(bytes_of(o), d) != Probe::yes);
      CHECK(dx->probe(bytes_of(o), d) != Probe::yes);
    }
  }
}

TEST_CASE("signatures: length framing, fields and PHI at every split point") {
  auto sig = parse_ok(kAcme);
  std::string stream = acme(1, "SN000042 hello") + acme(2, "SN000042 PAT=DOE123 result=ok") + acme(3, "");
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SigHarness h(sig);
    h.feed(Dir::to_server, stream.substr(0, cut));
    h.feed(Dir::to_server, stream.substr(cut));
    h.end();
    INFO("cut " << cut);
    auto ev = h.events("proprietary");
    REQUIRE(ev.size() == 4);
    CHECK(ev[0]["proprietary"]["fields"]["msg_type"] == 1);
    CHECK(ev[0]["proprietary"]["fields"]["serial"] == "SN000042");
    CHECK(ev[1]["proprietary"]["fields"]["patient"] == Pseudonymiser()("DOE123"));
    CHECK(ev[1]["proprietary"]["phi_fields"] == nlohmann::json::array({"acme-ct-service.patient"}));
    CHECK(ev[2]["proprietary"]["length"] == 6);
    auto& s = ev[3]["proprietary"];
    CHECK(s["summary"] == true);
    CHECK(s["messages_toserver"] == 3);
    CHECK(s["fields"]["msg_type"] == nlohmann::json::array({1, 2, 3}));
    CHECK(h.anomalies() == 0);
    for (auto& l : h.sink->lines) CHECK(l.find("DOE123") == std::string::npos);
    CHECK(h.facts.phi_fields == std::vector<std::string>{"acme-ct-service.patient"});
    REQUIRE(h.facts.attr("acme-ct-service.serial"));
  }
}

TEST_CASE("signatures: a numeric PHI field is written as its pseudonym") {
  std::string text = kAcme;
  text.replace(text.find("{name: msg_type, offset: 3, type: u8}"), 37, "{name: msg_type, offset: 3, type: u8, phi: true}");
  auto sig = parse_ok(text);
  SigHarness h(sig);
  h.feed(Dir::to_server, acme(7, "SN000042 hello") + acme(9, "SN000042 bye"));
  h.end();
  auto ev = h.events("proprietary");
  REQUIRE(ev.size() == 3);
  CHECK(ev[0]["proprietary"]["fields"]["msg_type"] == Pseudonymiser()("7"));
  CHECK(ev[1]["proprietary"]["fields"]["msg_type"] == Pseudonymiser()("9"));
  CHECK(ev[2]["proprietary"]["fields"]["msg_type"] == nlohmann::json::array({Pseudonymiser()("7"), Pseudonymiser()("9")}));
}

TEST_CASE("signatures: a bad length stops parsing the direction, with an anomaly") {
  auto sig = parse_ok(kAcme);
  SigHarness h(sig);
  h.feed(Dir::to_server, acme(1, "ok") + "AC\x01\x01\xff\xff" + acme(1, "never"));
  h.end();
  CHECK(h.anomalies("bad_length") == 1);
  auto ev = h.events("proprietary");
  REQUIRE(ev.size() == 2);
  CHECK(ev[1]["proprietary"]["messages_toserver"] == 1);
  CHECK(ev[1]["proprietary"]["framing_errors"] == 1);
}

TEST_CASE("signatures: byte counts do not depend on how the stream was cut") {
  auto sig = parse_ok(kAcme);
  // Two messages, then half of a third (its tail never comes), or a bad length.
  std::string whole = acme(1, "SN=CT000042;SW=3.1.4") + acme(3, "SN=CT000042;PAT=PAT0099;X");
  for (std::string stream : {whole + acme(2, "cut short").substr(0, 9), whole + "AC\x01\x01\xff\xff" + acme(1, "lost")}) {
    for (size_t cut = 0; cut <= stream.size(); ++cut) {
      SigHarness h(sig);
      h.feed(Dir::to_server, stream.substr(0, cut));
      h.feed(Dir::to_server, stream.substr(cut));
      h.end();
      INFO("cut " << cut);
      auto ev = h.events("proprietary");
      REQUIRE(!ev.empty());
      CHECK(ev.back()["proprietary"]["bytes_toserver"] == stream.size());
    }
  }
}

TEST_CASE("signatures: without framing, fields come from the first regex_window bytes however they were cut") {
  auto sig = parse_ok("name: acme-noframe\ntransport: tcp\nprobe: {bytes: [{offset: 0, hex: '41 43 01'}]}\n"
                      "fields:\n  - {name: serial, offset: 6, length: 8, type: ascii}\n"
                      "  - {name: patient, regex: 'PAT=([A-Z0-9]+)', phi: true}\nregex_window: 32\n");
  std::string stream = std::string("AC\x01\x01\x00\x10", 6) + "CT000042;PAT=PAT0099;" + std::string(40, 'z') + "PAT=LATE1";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    SigHarness h(sig);
    h.feed(Dir::to_server, stream.substr(0, cut));
    h.feed(Dir::to_server, stream.substr(cut));
    h.end();
    INFO("cut " << cut);
    auto ev = h.events("proprietary");
    REQUIRE(ev.size() == 1);
    auto& p = ev[0]["proprietary"];
    CHECK(p["fields"]["serial"] == nlohmann::json::array({"CT000042"}));
    CHECK(p["fields"]["patient"] == nlohmann::json::array({Pseudonymiser()("PAT0099")}));  // not LATE1: past the window
    CHECK(h.facts.phi_fields == std::vector<std::string>{"acme-noframe.patient"});
    CHECK(p["bytes_toserver"] == stream.size());
  }
  // A direction shorter than the window is read at its end.
  SigHarness h(sig);
  h.feed(Dir::to_server, std::string("AC\x01\x01\x00\x10", 6));
  h.feed(Dir::to_server, "CT000042;PAT=P1;");
  h.end();
  auto ev = h.events("proprietary");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["proprietary"]["fields"]["patient"] == nlohmann::json::array({Pseudonymiser()("P1")}));
}

TEST_CASE("signatures: delimiter framing over TCP and UDP datagrams") {
  auto sig = parse_ok(
      "name: delim\ntransport: both\nprobe: {bytes: [{offset: 0, hex: '7e'}]}\n"
      "framing: {delimiters: {start: '7e', end: '7e'}, max_message: 64}\n"
      "fields: [{name: kind, offset: 1, type: u8}]\n");
  std::string s = "junk" + std::string("\x7e\x01" "abc\x7e\x7e\x02" "def\x7e\x7e\x03\x7e", 15);
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    SigHarness h(sig);
    h.feed(Dir::to_server, s.substr(0, cut));
    h.feed(Dir::to_server, s.substr(cut));
    h.end();
    auto ev = h.events("proprietary");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["proprietary"]["messages_toserver"] == 3);
    CHECK(ev[0]["proprietary"]["fields"]["kind"] == nlohmann::json::array({1, 2, 3}));
    CHECK(h.anomalies("bytes_outside_frame") == 1);
  }
  SigHarness big(sig);
  big.feed(Dir::to_server, "\x7e" + std::string(100, 'x'));
  big.end();
  CHECK(big.anomalies("message_too_long") == 1);

  SigHarness u(sig, 17);
  u.datagram(Dir::to_server, std::string("\x7e\x05zz\x7e", 5));
  u.datagram(Dir::to_server, std::string("\x7e\x06zz", 4));
  u.end();
  CHECK(u.anomalies("truncated_message") == 1);
  CHECK(u.events("proprietary")[0]["proprietary"]["messages_toserver"] == 1);
}

TEST_CASE("signatures: a long delimited record sent in small segments is searched once") {
  auto sig = parse_ok(
      "name: delim-long\ntransport: tcp\nprobe: {bytes: [{offset: 0, hex: '3c 3c'}]}\n"
      "framing: {delimiters: {start: '3c 3c', end: '0d 0a 1c'}, max_message: 1000000}\n"
      "fields: [{name: kind, offset: 2, type: u8}, {name: tag, regex: 'T=([a-z]+)'}]\n");
  std::string body(65536, 'x');
  for (size_t i = 0; i < body.size(); i += 97) body[i] = '\r';  // partial end delimiters all along
  std::string s = "<<\x01T=first" + body + "\r\n\x1c<<\x02T=second\r\n\x1c";
  uint64_t before = delimiter_bytes_scanned();
  SigHarness h(sig);
  for (size_t at = 0; at < s.size(); at += 64) h.feed(Dir::to_server, s.substr(at, 64));
  h.end();
  uint64_t scanned = delimiter_bytes_scanned() - before;
  auto ev = h.events("proprietary");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["proprietary"]["messages_toserver"] == 2);
  CHECK(ev[0]["proprietary"]["fields"]["kind"] == nlohmann::json::array({1, 2}));
  CHECK(ev[0]["proprietary"]["fields"]["tag"] == nlohmann::json::array({"first", "second"}));
  // Searching the held record again from its start on each segment would read ~1000 times its size.
  CHECK(scanned <= 3 * s.size());

  // The same records cut at every point of the delimiters (and a few in between) read alike.
  std::string small = "<<\x01T=abc\r\r\n\r\n\x1c<<\x02T=def\r\n\r\n\x1c";
  for (size_t cut1 = 0; cut1 <= small.size(); ++cut1)
    for (size_t cut2 = cut1; cut2 <= small.size(); ++cut2) {
      SigHarness c(sig);
      c.feed(Dir::to_server, small.substr(0, cut1));
      c.feed(Dir::to_server, small.substr(cut1, cut2 - cut1));
      c.feed(Dir::to_server, small.substr(cut2));
      c.end();
      auto e = c.events("proprietary");
      REQUIRE(e.size() == 1);
      CHECK(e[0]["proprietary"]["messages_toserver"] == 2);
      CHECK(e[0]["proprietary"]["fields"]["kind"] == nlohmann::json::array({1, 2}));
      CHECK(e[0]["proprietary"]["fields"]["tag"] == nlohmann::json::array({"abc", "def"}));
      CHECK(e[0]["proprietary"]["bytes_toserver"] == small.size());
    }
}

namespace {
// A Datex-Ohmeda S/5 record: 40-byte little-endian header (r_len, r_nbr, dri_level, plug_id,
// r_time, reserved, r_maintype, sub-record descriptors), body, checksum; 7e/7d in them escaped.
std::string datex_record(uint32_t r_time, uint16_t maintype, const std::string& body) {
  std::string rec;
  auto le = [&](uint64_t v, int n) { for (int i = 0; i < n; ++i) rec.push_back(static_cast<char>(v >> (8 * i))); };
  le(40 + body.size(), 2);
  le(1, 1);
  le(10, 1);
  le(0x0102, 2);
  le(r_time, 4);
  le(0, 4);
  le(maintype, 2);
  rec += std::string(24, '\0');
  rec += body;
  uint8_t sum = 0;
  for (char c : rec) sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  rec.push_back(static_cast<char>(sum));
  std::string out = "\x7e";
  for (char c : rec) {
    if (c == '\x7e' || c == '\x7d') { out.push_back('\x7d'); out.push_back(static_cast<char>(c ^ 0x20)); }
    else out.push_back(c);
  }
  return out + "\x7e";
}
}  // namespace

TEST_CASE("signatures: escaped bytes do not shift the fields after them (Datex-Ohmeda S/5)") {
  std::ifstream in(std::string(MEDMON_SIGNATURES_SRC) + "/datex-ohmeda-s5.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto sig = parse_ok(text);
  // r_time 0x65926D7E: its low byte goes out as 7d 5e, one byte before reserved and r_maintype.
  std::string first = datex_record(0x65926D7E, 1, std::string(8, '\x11'));
  REQUIRE(first.find("\x7d\x5e") == 7);
  CHECK(sig->probe(bytes_of(first), Dir::to_client) == Probe::yes);
  std::string s = first + datex_record(0x65926D7D, 0, std::string(8, '\x7e')) + datex_record(0x65926D88, 1, "x");
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    SigHarness h(sig);
    h.feed(Dir::to_client, s.substr(0, cut));
    h.feed(Dir::to_client, s.substr(cut));
    h.end();
    auto ev = h.events("proprietary");
    REQUIRE(ev.size() == 1);
    auto& p = ev[0]["proprietary"];
    CHECK(p["messages_toclient"] == 3);
    CHECK(p["fields"]["main_type"] == nlohmann::json::array({1, 0}));
    CHECK(p["fields"]["record_length"] == nlohmann::json::array({48, 41}));
    CHECK(p["fields"]["plug_id"] == nlohmann::json::array({0x0102}));
    CHECK(h.anomalies() == 0);
  }
  // Only one byte: an escape that is two is refused where it is written.
  auto e = parse_err("name: x\ntransport: tcp\nprobe: {bytes: [{offset: 0, hex: '7e'}]}\n"
                     "framing: {delimiters: {start: '7e', end: '7e', escape: '7d 7d'}}\n");
  CHECK(e.line == 4);
  CHECK(e.message.find("escape is one byte") != std::string::npos);
  e = parse_err("name: x\ntransport: tcp\nprobe: {bytes: [{offset: 0, hex: '7e'}]}\n"
                "framing: {delimiters: {start: '7e', end: '7e', escape_xor: '20'}}\n");
  CHECK(e.message.find("needs 'escape'") != std::string::npos);
}

TEST_CASE("signatures: a flag delimiter resynchronises after lost bytes and an over-long record") {
  auto sig = parse_ok(
      "name: flags\ntransport: tcp\nprobe: {bytes: [{offset: 0, hex: '7e'}]}\n"
      "framing: {delimiters: {start: '7e', end: '7e'}, max_message: 64}\n"
      "fields: [{name: kind, offset: 1, type: u8}]\n");
  auto rec = [](char kind, size_t body) { return "\x7e" + std::string(1, kind) + std::string(body, 'b') + "\x7e"; };
  auto kinds = [](SigHarness& h) { return h.events("proprietary").back()["proprietary"]["fields"]["kind"]; };
  using nlohmann::json;
  // Each record with its own flags, or one flag between records (shared, as HDLC): the same records.
  std::string own = rec(1, 10) + rec(2, 10) + rec(3, 10);
  std::string shared = "\x7e\x01" + std::string(10, 'b') + "\x7e\x02" + std::string(10, 'b') + "\x7e\x03" + std::string(10, 'b') + "\x7e";
  for (const std::string& st : {own, shared}) {
    for (size_t cut = 0; cut <= st.size(); ++cut) {
      SigHarness h(sig);
      h.feed(Dir::to_server, st.substr(0, cut));
      h.feed(Dir::to_server, st.substr(cut));
      h.end();
      INFO("cut " << cut);
      CHECK(kinds(h) == json::array({1, 2, 3}));
      CHECK(h.events("proprietary").back()["proprietary"]["messages_toserver"] == 3);
      CHECK(h.events("proprietary").back()["proprietary"]["bytes_toserver"] == st.size());
      CHECK(h.anomalies() == 0);
    }
  }
  // Bytes lost inside record 2 (its opening flag with them): records 3 and 4 are read.
  for (size_t lost = 1; lost < 12; ++lost) {
    SigHarness h(sig);
    h.feed(Dir::to_server, rec(1, 10));
    h.gap(Dir::to_server, lost);
    h.feed(Dir::to_server, rec(2, 10).substr(lost) + rec(3, 10) + rec(4, 10));
    h.end();
    INFO("lost " << lost);
    CHECK(kinds(h) == json::array({1, 3, 4}));
    CHECK(h.anomalies() == 0);
  }
  // A record over max_message: an anomaly, and the records after it are read.
  for (size_t cut = 1; cut < 100; cut += 7) {
    SigHarness h(sig);
    std::string st = rec(1, 10) + rec(2, 100) + rec(3, 10) + rec(4, 10);
    h.feed(Dir::to_server, st.substr(0, cut));
    h.feed(Dir::to_server, st.substr(cut));
    h.end();
    INFO("cut " << cut);
    CHECK(kinds(h) == json::array({1, 3, 4}));
    CHECK(h.anomalies("message_too_long") == 1);
    CHECK(h.anomalies() == 1);
  }
}

TEST_CASE("signatures: the IntelliVue signature reads identity and pseudonymises demographics") {
  LoadResult shipped = load_signatures(MEDMON_SIGNATURES_SRC);
  std::shared_ptr<const Signature> iv;
  for (auto& s : shipped.signatures) if (s->name == "philips-intellivue-data-export") iv = s;
  REQUIRE(iv);
  auto utf16 = [](const std::string& s) { std::string o; for (char c : s) { o.push_back('\0'); o.push_back(c); } return o; };
  auto str_attr = [&](unsigned id, const std::string& v) { return u16be(id) + u16be(v.size() * 2 + 2) + u16be(v.size() * 2) + utf16(v); };
  std::string model = u16be(0x0928) + u16be(20) + u16be(8) + std::string("Philips\0", 8) + u16be(7) + std::string("MX800\0\0", 7);
  std::string body = model + str_attr(0x095a, "MRN0042") + str_attr(0x095d, "JANE") + str_attr(0x095c, "DOE");
  std::string msg = std::string("\xe1\x00\x00\x02\x00\x02", 6) + u16be(body.size()) + body;
  SigHarness h(iv, 17);
  h.datagram(Dir::to_client, msg);
  h.end();
  auto ev = h.events("proprietary");
  REQUIRE(ev.size() == 1);
  auto& f = ev[0]["proprietary"]["fields"];
  CHECK(f["manufacturer"] == nlohmann::json::array({"Philips"}));
  CHECK(f["model"] == nlohmann::json::array({"MX800"}));
  CHECK(f["ro_type"] == nlohmann::json::array({2}));
  // UTF-16 decoded first: the same pseudonym as the MRN sent by HL7 (PID-3) or DICOM.
  CHECK(f["patient_id"] == nlohmann::json::array({Pseudonymiser()("MRN0042")}));
  CHECK(f["patient_family_name"] == nlohmann::json::array({Pseudonymiser()("DOE")}));
  CHECK(ev[0]["proprietary"]["messages_toclient"] == 1);
  for (auto& l : h.sink->lines) { CHECK(l.find("J\\u0000A") == std::string::npos); }
  CHECK(h.facts.phi_fields.size() == 3);
  // The monitor answered (server side): its system model is its identity.
  REQUIRE(h.facts.identities.size() == 1);
  CHECK_FALSE(h.facts.identities[0].client);
  CHECK(h.facts.identities[0].source == "philips-intellivue-data-export");
  CHECK(h.facts.identities[0].manufacturer == "Philips");
  CHECK(h.facts.identities[0].model == "MX800");
}

TEST_CASE("signatures: the IntelliVue signature reads non-ASCII names whole") {
  LoadResult shipped = load_signatures(MEDMON_SIGNATURES_SRC);
  std::shared_ptr<const Signature> iv;
  for (auto& s : shipped.signatures) if (s->name == "philips-intellivue-data-export") iv = s;
  REQUIRE(iv);
  // UTF-16BE code units as bytes; `nul` adds a terminator counted in the length.
  auto str_attr = [&](unsigned id, const std::u16string& v, bool nul) {
    std::string o;
    for (char16_t c : v) { o.push_back(static_cast<char>(c >> 8)); o.push_back(static_cast<char>(c & 0xff)); }
    if (nul) o.append(2, '\0');
    return u16be(id) + u16be(o.size() + 2) + u16be(o.size()) + o;
  };
  const std::string muller = "M\xc3\x9cLLER", zoe = "ZO\xc3\x8b", yamada = "\xe5\xb1\xb1\xe7\x94\xb0";  // MÜLLER, ZOË, 山田
  for (bool nul : {false, true}) {
    INFO("NUL terminated " << nul);
    // The family name last, then first, before an attribute of another partition (0xF001).
    for (bool family_last : {true, false}) {
      std::string body = str_attr(0x095a, u"MM0001", nul) + str_attr(0x095d, u"ZO\u00cb", nul);
      std::string family = str_attr(0x095c, u"M\u00dcLLER", nul);
      body = family_last ? body + family : family + body + str_attr(0xf001, u"\u5c71\u7530", nul);
      std::string msg = std::string("\xe1\x00\x00\x02\x00\x02", 6) + u16be(body.size()) + body;
      SigHarness h(iv, 17);
      h.datagram(Dir::to_client, msg);
      h.end();
      auto ev = h.events("proprietary");
      REQUIRE(ev.size() == 1);
      auto& f = ev[0]["proprietary"]["fields"];
      // The pseudonym of the UTF-8 name: what DICOM and HL7 give for MÜLLER and ZOË.
      CHECK(f["patient_family_name"] == nlohmann::json::array({Pseudonymiser()(muller)}));
      CHECK(f["patient_given_name"] == nlohmann::json::array({Pseudonymiser()(zoe)}));
      CHECK(f["patient_id"] == nlohmann::json::array({Pseudonymiser()("MM0001")}));
    }
  }
  // A name in CJK characters, and one holding a code unit whose high byte is 0x09 (Devanagari).
  for (auto [name, utf8] : {std::pair<std::u16string, std::string>{u"\u5c71\u7530", yamada},
                            {u"\u0915\u092e\u0932", "\xe0\xa4\x95\xe0\xa4\xae\xe0\xa4\xb2"}}) {
    std::string body = str_attr(0x095c, name, false) + str_attr(0x095d, u"TARO", false);
    std::string msg = std::string("\xe1\x00\x00\x02\x00\x02", 6) + u16be(body.size()) + body;
    SigHarness h(iv, 17);
    h.datagram(Dir::to_client, msg);
    h.end();
    auto ev = h.events("proprietary");
    REQUIRE(ev.size() == 1);
    auto& f = ev[0]["proprietary"]["fields"];
    CHECK(f["patient_family_name"] == nlohmann::json::array({Pseudonymiser()(utf8)}));
    CHECK(f["patient_given_name"] == nlohmann::json::array({Pseudonymiser()("TARO")}));
  }
}

TEST_CASE("signatures: IntelliVue Strings end where their length says, in any script") {
  LoadResult shipped = load_signatures(MEDMON_SIGNATURES_SRC);
  std::shared_ptr<const Signature> iv;
  for (auto& s : shipped.signatures) if (s->name == "philips-intellivue-data-export") iv = s;
  REQUIRE(iv);
  auto str_attr = [&](unsigned id, const std::u16string& v, bool nul) {
    std::string o;
    for (char16_t c : v) { o.push_back(static_cast<char>(c >> 8)); o.push_back(static_cast<char>(c & 0xff)); }
    if (nul) o.append(2, '\0');
    return u16be(id) + u16be(o.size() + 2) + u16be(o.size()) + o;
  };
  // Made-up names: Devanagari and Bengali code units (0x09xx) followed by ASCII look like the
  // start of the next attribute (id 0x09xx, then a length).
  const std::pair<std::u16string, std::string> names[] = {
      {u"\u0930\u093e\u092e \u0915\u0941\u092e\u093e\u0930", "\xe0\xa4\xb0\xe0\xa4\xbe\xe0\xa4\xae \xe0\xa4\x95\xe0\xa5\x81\xe0\xa4\xae\xe0\xa4\xbe\xe0\xa4\xb0"},
      {u"\u0930\u093e\u092e Kumar", "\xe0\xa4\xb0\xe0\xa4\xbe\xe0\xa4\xae Kumar"},
      {u"\u0930\u093e\u092e Kumari", "\xe0\xa4\xb0\xe0\xa4\xbe\xe0\xa4\xae Kumari"},
      {u"\u09b0\u09be\u09ae\x01" u"ABC", "\xe0\xa6\xb0\xe0\xa6\xbe\xe0\xa6\xae\x01" "ABC"},
      {u"Ram Kumar", "Ram Kumar"}};
  std::set<std::string> seen;
  for (bool nul : {false, true}) {
    for (auto& [name, utf8] : names) {
      INFO(utf8 << " NUL " << nul);
      // Bytes that look like the attribute id but whose length does not fit come first.
      std::string stray = u16be(0x0100) + "\x09\x5d" + u16be(2) + u16be(0x7000);
      std::string body = stray + str_attr(0x095d, name, nul) + str_attr(0x095c, u"\u0915", false);
      std::string msg = std::string("\xe1\x00\x00\x02\x00\x02", 6) + u16be(body.size()) + body;
      SigHarness h(iv, 17);
      h.datagram(Dir::to_client, msg);
      h.end();
      auto ev = h.events("proprietary");
      REQUIRE(ev.size() == 1);
      auto& f = ev[0]["proprietary"]["fields"];
      CHECK(f["patient_given_name"] == nlohmann::json::array({Pseudonymiser()(utf8)}));
      CHECK(f["patient_family_name"] == nlohmann::json::array({Pseudonymiser()("\xe0\xa4\x95")}));
      if (f["patient_given_name"].is_array() && !f["patient_given_name"].empty())
        seen.insert(f["patient_given_name"][0].get<std::string>());
    }
  }
  CHECK(seen.size() == std::size(names));  // different names, different pseudonyms
  // A length prefix on a regex field only, of a number type.
  auto e = parse_err("name: x\ntransport: udp\nprobe: {regex: x}\nfields:\n  - {name: a, regex: 'A(..)', length_prefix: u24}\n");
  CHECK(e.line == 5);
  CHECK(e.message.find("field.length_prefix must be") != std::string::npos);
  e = parse_err("name: x\ntransport: udp\nprobe: {regex: x}\nfields:\n  - {name: a, offset: 0, type: u8, length_prefix: u8}\n");
  CHECK(e.message.find("field.length_prefix needs a regex") != std::string::npos);
}

TEST_CASE("signatures: text fields decoded from UTF-16 and Latin-1") {
  std::string out;
  decode_text(std::string("\0J\0A\0N\0E", 8), TextEncoding::utf16be, out);
  CHECK(out == "JANE");
  decode_text(std::string("J\0A\0\0\0X\0", 8), TextEncoding::utf16le, out);
  CHECK(out == "JA");  // to the NUL character
  decode_text(std::string("\x00\xe9\xd8\x3d\xde\x00", 6), TextEncoding::utf16be, out);
  CHECK(out == "\xc3\xa9\xf0\x9f\x98\x80");  // e-acute and a character beyond the BMP
  decode_text(std::string("\xd8\x3d\x00\x41\x00", 5), TextEncoding::utf16be, out);
  CHECK(out == "\xef\xbf\xbd" "A" "\xef\xbf\xbd");  // lone surrogate, trailing odd byte
  decode_text(std::string("M\xfcller\0x", 9), TextEncoding::latin1, out);
  CHECK(out == "M\xc3\xbcller");
  decode_text(std::string("AB\0C", 4), TextEncoding::bytes, out);
  CHECK(out == "AB");
  // A UTF-16 ascii-type field at an offset, as a device identity.
  std::string text = kAcme;
  const std::string from = "{name: serial, offset: 6, length: 8, type: ascii}";
  text.replace(text.find(from), from.size(), "{name: serial, offset: 6, length: 8, type: ascii, encoding: utf16le, identity: serial}");
  auto sig = parse_ok(text);
  SigHarness h(sig);
  h.feed(Dir::to_server, acme(1, std::string("S\0N\0" "1\0\0\0", 8)));
  h.end();
  CHECK(h.events("proprietary")[0]["proprietary"]["fields"]["serial"] == "SN1");
  REQUIRE(h.facts.identities.size() == 1);
  CHECK(h.facts.identities[0].client);
  CHECK(h.facts.identities[0].serial == "SN1");
}

TEST_CASE("signatures: a regex capture read as bytes ends at the first NUL") {
  std::string text = kAcme;
  const std::string from = "{name: patient, regex: \"PAT=([A-Z0-9]+)\", phi: true}";
  text.replace(text.find(from), from.size(), "{name: tag, regex: 'TAG=([\\s\\S]{6})'}");
  auto sig = parse_ok(text);
  SigHarness h(sig);
  h.feed(Dir::to_server, acme(1, std::string("SN000001TAG=AB\0CDE", 19)));
  h.end();
  auto ev = h.events("proprietary");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["proprietary"]["fields"]["tag"] == "AB");
}

TEST_CASE("signatures: hostile input") {
  auto sig = parse_ok(kAcme);
  std::mt19937 rng(11);
  for (int round = 0; round < 300; ++round) {
    std::string m = acme(1, "SN1 PAT=A") + acme(2, std::string(rng() % 300, 'x'));
    for (int k = 0; k < 6; ++k) m[rng() % m.size()] = static_cast<char>(rng());
    SigHarness h(sig);
    h.feed(Dir::to_server, m);
    h.gap(Dir::to_server, 10);
    h.feed(Dir::to_server, m);
    h.end();
  }
}

TEST_CASE("signatures: an IntelliVue String is read only within its attribute") {
  LoadResult shipped = load_signatures(MEDMON_SIGNATURES_SRC);
  std::shared_ptr<const Signature> iv;
  for (auto& s : shipped.signatures) if (s->name == "philips-intellivue-data-export") iv = s;
  REQUIRE(iv);
  auto utf16 = [](const std::string& s) { std::string o; for (char c : s) { o.push_back('\0'); o.push_back(c); } return o; };
  // Made-up patient. The given name's String says 14 bytes but its attribute holds 6 (2 for the
  // length, 4 of text): read as the String says, it would take in the next attribute's bytes.
  std::string family = u16be(0x095c) + u16be(2 + 6) + u16be(6) + utf16("ZZQ");
  std::string given = u16be(0x095d) + u16be(2 + 4) + u16be(14) + utf16("AL");
  std::string body = given + family + u16be(0x095a) + u16be(2 + 10) + u16be(10) + utf16("MRNZ9");
  std::string msg = std::string("\xe1\x00\x00\x02\x00\x02", 6) + u16be(body.size()) + body;
  SigHarness h(iv, 17);
  h.datagram(Dir::to_client, msg);
  h.datagram(Dir::to_client, msg);
  h.end();
  auto ev = h.events("proprietary");
  REQUIRE(ev.size() == 1);
  auto& p = ev[0]["proprietary"];
  CHECK_FALSE(p["fields"].contains("patient_given_name"));
  CHECK(p["fields"]["patient_family_name"] == nlohmann::json::array({Pseudonymiser()("ZZQ")}));
  CHECK(p["fields"]["patient_id"] == nlohmann::json::array({Pseudonymiser()("MRNZ9")}));
  CHECK(p["field_errors"] == 2);
  CHECK(h.anomalies("field_past_length") == 2);
  CHECK(h.anomalies() == 2);
  // A String that fills its attribute exactly, and one shorter than it, are read.
  for (unsigned spare : {0u, 4u}) {
    std::string b = u16be(0x095d) + u16be(2 + 4 + spare) + u16be(4) + utf16("AL") + std::string(spare, '\0') + family;
    SigHarness g(iv, 17);
    g.datagram(Dir::to_client, std::string("\xe1\x00\x00\x02\x00\x02", 6) + u16be(b.size()) + b);
    g.end();
    auto e = g.events("proprietary");
    REQUIRE(e.size() == 1);
    CHECK(e[0]["proprietary"]["fields"]["patient_given_name"] == nlohmann::json::array({Pseudonymiser()("AL")}));
    CHECK(g.anomalies() == 0);
  }
  // within is another group of a length-prefixed regex field.
  auto e = parse_err("name: x\ntransport: udp\nprobe: {regex: x}\nfields:\n  - {name: a, regex: 'A(..)(..)', group: 2, within: 2, length_prefix: u16be}\n");
  CHECK(e.message.find("within names group 2") != std::string::npos);
  e = parse_err("name: x\ntransport: udp\nprobe: {regex: x}\nfields:\n  - {name: a, regex: 'A(..)(..)', group: 2, within: 1}\n");
  CHECK(e.message.find("field.within needs a length_prefix") != std::string::npos);
}
