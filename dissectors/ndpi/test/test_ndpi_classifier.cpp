#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <string>
#include <thread>
#include <memory>
#include <vector>

#include "dissectors/ndpi/ndpi_classifier.h"

using namespace medmon;

namespace {
// IPv4 + TCP (PSH|ACK) carrying payload, checksums left zero (nDPI does not check them).
std::vector<uint8_t> tcp_packet(std::array<uint8_t, 4> src, std::array<uint8_t, 4> dst, uint16_t sport,
                                uint16_t dport, const std::string& payload) {
  std::vector<uint8_t> p(40 + payload.size(), 0);
  p[0] = 0x45;
  size_t total = p.size();
  p[2] = static_cast<uint8_t>(total >> 8);
  p[3] = static_cast<uint8_t>(total);
  p[8] = 64;
  p[9] = 6;
  std::memcpy(&p[12], src.data(), 4);
  std::memcpy(&p[16], dst.data(), 4);
  p[20] = static_cast<uint8_t>(sport >> 8);
  p[21] = static_cast<uint8_t>(sport);
  p[22] = static_cast<uint8_t>(dport >> 8);
  p[23] = static_cast<uint8_t>(dport);
  p[32] = 0x50;  // data offset 5 words
  p[33] = 0x18;  // PSH|ACK
  p[34] = 0xff;
  std::memcpy(&p[40], payload.data(), payload.size());
  return p;
}

// One SSH flow (both banners) through n, finished.
NdpiResult classify_ssh(NdpiClassifier& n) {
  NdpiClassifier::State ssh;
  auto banner = tcp_packet({10, 0, 0, 1}, {10, 0, 0, 2}, 40000, 22, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
  auto reply = tcp_packet({10, 0, 0, 2}, {10, 0, 0, 1}, 22, 40000, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
  for (int i = 0; i < 3 && !ssh.finished; ++i) {
    n.process(ssh, banner.data(), static_cast<uint32_t>(banner.size()), 1000 + i);
    n.process(ssh, reply.data(), static_cast<uint32_t>(reply.size()), 1001 + i);
  }
  n.finish(ssh);
  return ssh.result;
}
}  // namespace

TEST_CASE("nDPI tables are built by the first flow that needs them") {
  Counters c;
  NdpiClassifier n({}, c);
  CHECK_FALSE(n.prepared());
  // Flows claimed by medmon's dissectors end without nDPI: names come without the tables, as
  // nDPI itself names an unclassified result.
  NdpiClassifier::State claimed;
  n.finish(claimed);
  CHECK_FALSE(n.prepared());
  CHECK(n.protocol_name(claimed.result) == "Unknown");
  CHECK(n.category_name(claimed.result) == "Unspecified");
  CHECK(n.app_name(claimed.result).empty());
  // A flow medmon does not claim: the tables are built and nDPI classifies it.
  NdpiResult ssh = classify_ssh(n);
  CHECK(n.prepared());
  CHECK(n.protocol_name(ssh) == "SSH");
  CHECK(n.is_encrypted(ssh));
  // The same names for an unclassified result once the tables exist.
  CHECK(n.protocol_name(claimed.result) == "Unknown");
  CHECK(n.category_name(claimed.result) == "Unspecified");
  // prepare() builds them up front (live capture).
  Counters c2;
  NdpiClassifier eager({}, c2);
  eager.prepare();
  CHECK(eager.prepared());
}

TEST_CASE("A thread can keep its nDPI module for the classifiers that follow") {
  // On a thread of its own: the setting stays with the thread.
  std::thread([] {
    NdpiClassifier::share_module_on_this_thread();
    for (int round = 0; round < 3; ++round) {
      Counters c;
      auto n = std::make_unique<NdpiClassifier>(NdpiClassifier::Limits{}, c);
      CHECK_FALSE(n->prepared());  // still built (or lent) on first need
      CHECK(n->protocol_name(classify_ssh(*n)) == "SSH");
      CHECK(n->prepared());
      n.reset();  // a borrowed module outlives its classifier (the next round uses it)
    }
  }).join();
  // This thread did not ask: its classifiers build and free their own.
  Counters c;
  NdpiClassifier n({}, c);
  CHECK(n.protocol_name(classify_ssh(n)) == "SSH");
}

TEST_CASE("A protocol guessed from the port is never taken for encryption, and a claimed flow gets no guess") {
  Counters c;
  NdpiClassifier n({}, c);
  auto cleartext = [](uint16_t port) {
    return tcp_packet({10, 0, 0, 1}, {10, 0, 0, 2}, 40000, port, "HELLO SERVER, PLAIN TEXT COMMAND 1\r\n");
  };
  // Cleartext on 443: nDPI finds nothing in the content and guesses TLS from the port.
  NdpiClassifier::State s;
  auto p = cleartext(443);
  n.process(s, p.data(), static_cast<uint32_t>(p.size()), 1000);
  n.finish(s);
  CHECK(s.result.guessed);
  CHECK(n.protocol_name(s.result) == "TLS");
  CHECK_FALSE(n.is_encrypted(s.result));
  // The same bytes in a flow a medmon dissector claimed: no guess at all.
  NdpiClassifier::State claimed;
  n.process(claimed, p.data(), static_cast<uint32_t>(p.size()), 1000);
  n.finish(claimed, true);
  CHECK_FALSE(claimed.result.guessed);
  CHECK(n.protocol_name(claimed.result) == "Unknown");
  CHECK_FALSE(n.is_encrypted(claimed.result));
  // SSH found in the content still is encrypted.
  CHECK(n.is_encrypted(classify_ssh(n)));
}

TEST_CASE("nDPI's protocol names, read from its own table") {
  CHECK(NdpiClassifier::is_protocol_name("TFTP"));
  CHECK(NdpiClassifier::is_protocol_name("tftp"));
  CHECK(NdpiClassifier::is_protocol_name("mdns"));
  CHECK(NdpiClassifier::is_protocol_name("DHCPV6"));
  CHECK(NdpiClassifier::is_protocol_name("Modbus"));
  CHECK_FALSE(NdpiClassifier::is_protocol_name("dicm"));
  CHECK_FALSE(NdpiClassifier::is_protocol_name("Unknown"));
  CHECK_FALSE(NdpiClassifier::is_protocol_name(""));
}

TEST_CASE("SMB is found by its content on any port, as nDPI finds it only on 445") {
  Counters c;
  NdpiClassifier n({}, c);
  // A NetBIOS session message holding an SMB2 NEGOTIATE header (64 bytes + a little body).
  std::string smb2("\x00\x00\x00\x66\xfeSMB\x40\x00", 10);
  smb2.resize(4 + 0x66, '\0');
  auto p = tcp_packet({10, 0, 0, 1}, {10, 0, 0, 2}, 40000, 4455, smb2);
  NdpiClassifier::State s;
  n.process(s, p.data(), static_cast<uint32_t>(p.size()), 1000, std::span<const uint8_t>(p.data() + 40, p.size() - 40));
  CHECK(s.finished);
  CHECK(s.result.detected);
  CHECK_FALSE(s.result.guessed);
  CHECK(n.protocol_name(s.result) == "SMBv23");
  CHECK(c.at("ndpi.smb_by_content") == 1);
  // SMB1 on 1445.
  std::string smb1("\x00\x00\x00\x2f\xffSMBr", 9);
  smb1.resize(4 + 0x2f, '\0');
  auto p1 = tcp_packet({10, 0, 0, 1}, {10, 0, 0, 2}, 40001, 1445, smb1);
  NdpiClassifier::State s1;
  n.process(s1, p1.data(), static_cast<uint32_t>(p1.size()), 1000, std::span<const uint8_t>(p1.data() + 40, p1.size() - 40));
  CHECK(n.protocol_name(s1.result) == "SMBv1");
  // The magic alone, with a length too short for any SMB header, or not at the start, is not SMB.
  using B = std::vector<uint8_t>;
  CHECK(NdpiClassifier::smb_by_content(B{0, 0, 0, 8, 0xfe, 'S', 'M', 'B', 0, 0, 0, 0}) == 0);
  CHECK(NdpiClassifier::smb_by_content(B{0x85, 0, 0, 0x66, 0xfe, 'S', 'M', 'B'}) == 0);
  CHECK(NdpiClassifier::smb_by_content(B{0, 0, 0, 0x66, 0xfe, 'S', 'M'}) == 0);
  CHECK(NdpiClassifier::smb_by_content(B{0, 0, 0, 0x66, 0xfd, 'S', 'M', 'B'}) != 0);
}
