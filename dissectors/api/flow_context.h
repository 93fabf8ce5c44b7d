#pragma once
// What a dissector sees of the flow it is parsing: packet time, event output, anomalies, the
// pseudonymiser, and the facts it learns for the policy (application, PHI seen in clear, named
// attributes such as AE titles). Constructed by the sensor per flow; unit tests construct one
// over a MemorySink.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sensor/common/types.h"
#include "sensor/output/event_output.h"
#include "sensor/output/pseudonymiser.h"

namespace medmon {

// A device's identity as a protocol states it (HL7 OBX-18 equipment, PRT device; ...), for the
// asset inventory. Empty members were not given.
struct DeviceIdentity {
  bool client = true;  // said of the flow's client (else of its server)
  std::string source;  // where it was read, e.g. "hl7 PRT"
  std::string id, udi, serial, type, manufacturer, model, version;
  bool operator==(const DeviceIdentity&) const = default;
};

// What the dissectors learnt about a flow; read by the policy and written in the `flow` event.
struct FlowFacts {
  std::string app;                       // "dicom", "hl7", ... empty = none of ours
  bool tls = false;                      // the flow is encrypted (nDPI: TLS/DTLS/SSH...)
  std::vector<std::string> phi_fields;   // PHI fields seen in clear, unique, in first-seen order
  std::vector<std::pair<std::string, std::string>> attrs;  // e.g. {"dicom.calling_ae","CT01"}
  std::vector<DeviceIdentity> identities;                   // unique, at most kMaxIdentities
  static constexpr size_t kMaxIdentities = 16;

  void add_phi(std::string_view field) {
    for (auto& f : phi_fields) if (f == field) return;
    phi_fields.emplace_back(field);
  }
  void set_attr(std::string_view k, std::string_view v) {
    for (auto& [key, val] : attrs) if (key == k) { val.assign(v); return; }
    attrs.emplace_back(std::string(k), std::string(v));
  }
  // False when already known or the list is full.
  bool add_identity(DeviceIdentity d) {
    if (identities.size() >= kMaxIdentities) return false;
    for (auto& x : identities) if (x == d) return false;
    identities.push_back(std::move(d));
    return true;
  }
  const std::string* attr(std::string_view k) const {
    for (auto& [key, val] : attrs) if (key == k) return &val;
    return nullptr;
  }
};

class FlowContext {
 public:
  FlowContext(EventOutput& out, const Pseudonymiser& phi, const EventEndpoints& ep, FlowFacts& facts)
      : out_(out), phi_(phi), ep_(ep), facts_(facts) {}

  Timestamp now() const { return now_; }
  void set_now(Timestamp t) { now_ = t; }
  // Offset, in the current direction's byte stream, of the first byte of the data being delivered.
  uint64_t stream_offset() const { return stream_offset_; }
  void set_stream_offset(uint64_t o) { stream_offset_ = o; }

  // Starts an event with the flow's common header; finish it with end_event().
  JsonWriter& begin_event(std::string_view event_type) {
    wrote_events_ = true;
    return out_.begin(event_type, now_, &ep_);
  }
  // An event of this flow was written: its client and server are said, and stay as they are.
  bool wrote_events() const { return wrote_events_; }
  void end_event() { out_.end(); }

  // Malformed input: an `anomaly` event and a counter "anomaly.<dissector>.<name>".
  void anomaly(std::string_view dissector, std::string_view name, uint64_t offset,
               std::string_view detail = {}) {
    std::string counter = "anomaly.";
    counter.append(dissector).append(".").append(name);
    ++out_.counters().at(counter);
    auto& w = begin_event("anomaly");
    w.object("anomaly");
    w.field("dissector", dissector);
    w.field("name", name);
    w.field("offset", offset);
    if (!detail.empty()) w.field("detail", detail);
    w.end_object();
    end_event();
  }

  // Every PHI value leaves through here: a keyed pseudonym unless raw output was asked for.
  std::string pseudonym(std::string_view value) const { return phi_(value); }
  // The same into a caller's scratch string (hot paths: no allocation per value).
  std::string_view pseudonym_into(std::string_view value, std::string& out) const { return phi_.into(value, out); }
  const Pseudonymiser& pseudonymiser() const { return phi_; }

  // The most unconsumed bytes the sensor holds for a dissector per direction
  // (reassembly.max_dissector_buffer): what waits for a whole message must fit in it.
  size_t hold_limit() const { return hold_limit_; }
  void set_hold_limit(size_t n) { hold_limit_ = n; }

  // Later bytes of `dir` wait behind a hole the reassembler has not filled yet (nor declared a
  // gap): what was delivered of that direction so far may stop short of where its sender stopped.
  bool behind_hole(Dir dir) const { return behind_hole_[static_cast<int>(dir)]; }
  void set_behind_hole(Dir dir, bool b) { behind_hole_[static_cast<int>(dir)] = b; }
  // The bytes being delivered were held behind a hole the reassembler has just given up on: they
  // were sent before the packet now read, so they say nothing of what the peer did since.
  bool late(Dir dir) const { return late_[static_cast<int>(dir)]; }
  void set_late(Dir dir, bool b) { late_[static_cast<int>(dir)] = b; }
  // The direction was picked up mid-stream (its SYN not seen): its first bytes may be the middle
  // of a message, which is no anomaly of the sender's.
  bool midstream(Dir dir) const { return midstream_[static_cast<int>(dir)]; }
  void set_midstream(Dir dir, bool b) { midstream_[static_cast<int>(dir)] = b; }

  // The Ethernet source of the UDP datagram being delivered: nullptr when its frame had none (or
  // for TCP, whose bytes may come from many frames). A flow's MACs are its first frames' only,
  // and datagrams of many hosts share a flow (DHCP clients all send from 0.0.0.0:68).
  const std::array<uint8_t, 6>* frame_src_mac() const { return has_frame_mac_ ? &frame_mac_ : nullptr; }
  void set_frame_src_mac(const std::array<uint8_t, 6>* mac) {
    has_frame_mac_ = mac != nullptr;
    if (mac) frame_mac_ = *mac;
  }

  // The claimed flow travels in a protocol nDPI reads (HL7 in HTTP): nDPI goes on classifying it
  // as if it were not claimed, so that the flow event keeps nDPI's name and risks of the carrier
  // (credentials sent in clear).
  void keep_classifying() { keep_classifying_ = true; }
  bool keeps_classifying() const { return keep_classifying_; }

  FlowFacts& facts() { return facts_; }
  const EventEndpoints& endpoints() const { return ep_; }
  Counters& counters() { return out_.counters(); }

 private:
  EventOutput& out_;
  const Pseudonymiser& phi_;
  const EventEndpoints& ep_;
  FlowFacts& facts_;
  Timestamp now_{};
  uint64_t stream_offset_ = 0;
  size_t hold_limit_ = size_t(2) << 20;
  bool behind_hole_[2] = {false, false};
  bool late_[2] = {false, false};
  bool midstream_[2] = {false, false};
  bool wrote_events_ = false;
  bool keep_classifying_ = false;
  bool has_frame_mac_ = false;
  std::array<uint8_t, 6> frame_mac_{};
};

}  // namespace medmon
