#include "sensor/engine/pipeline.h"

#include <algorithm>

#include "dissectors/http/http_reader.h"
#include "dissectors/registry.h"
#include "sensor/engine/stream_feeder.h"

namespace medmon {

// Everything a flow carries beyond its counters; allocated on the first packet with payload.
struct Pipeline::FlowState : FlowExtension {
  FlowState(Pipeline& p, Flow& f)
      : flow_id(f.id()), ctx(p.out_, p.phi_, ep, facts) {
    ctx.set_hold_limit(p.cfg_.feeder.max_buffer);
    ep.flow_id = flow_id;
    ep.header = &header;
    ep.src = f.client_ip();
    ep.dst = f.server_ip();
    ep.src_port = f.client_port();
    ep.dst_port = f.server_port();
    ep.proto = f.key.proto;
    ep.vlan = f.key.vlan;
    ep.vlan_inner = f.key.vlan_inner;
    ep.src_mac = f.client_mac;
    ep.dst_mac = f.server_mac;
  }
  std::string flow_id;
  HeaderSlot header;
  EventEndpoints ep;
  FlowFacts facts;
  FlowContext ctx;
  std::unique_ptr<TcpReassembler> reasm[2];
  std::unique_ptr<StreamFeeder> feeder;
  NdpiClassifier::State ndpi;
};

// Adapts the reassembler's output of one direction to the stream feeder.
class Pipeline::DirSink : public StreamSink {
 public:
  DirSink(Pipeline& p, FlowState& st, Dir dir) : p_(p), st_(st), dir_(dir) {}
  void data(std::span<const uint8_t> bytes, uint64_t offset) override {
    if (!st_.feeder) return;
    tell_context();
    // Bytes drained after a gap were queued behind it: sent before this packet, at the time of
    // the packet that carried them.
    if (!after_gap_) {
      st_.feeder->data(dir_, bytes, offset, st_.ctx);
      return;
    }
    st_.ctx.set_late(dir_, true);
    const Timestamp now = st_.ctx.now();
    const auto& mine = st_.reasm[static_cast<int>(dir_)];
    if (mine && mine->queued_time()) st_.ctx.set_now(Timestamp{mine->queued_time()});
    st_.feeder->data(dir_, bytes, offset, st_.ctx);
    st_.ctx.set_now(now);
    st_.ctx.set_late(dir_, false);
  }
  void gap(uint64_t offset, uint64_t length) override {
    ++p_.c_tcp_gaps_;
    after_gap_ = true;
    if (st_.feeder) st_.feeder->gap(dir_, length, st_.ctx);
  }
  void overlap_conflict(uint64_t offset) override {
    ++p_.c_overlap_conflicts_;
    st_.ctx.anomaly("tcp", "overlap_conflict", offset, dir_name(dir_));
  }
  // The direction ended cleanly with its FIN: the dissector completes what the close completes
  // (a body read to the close, a bare message, an association released both ways) now, not
  // when the flow record ends (the closed timeout, or the idle timeout of a half-closed flow).
  void end(uint64_t) override {
    if (!st_.feeder) return;
    tell_context();
    st_.feeder->end(dir_, st_.ctx);
  }

 private:
  void tell_context() {
    // A dissector may read the other direction's end from these bytes (a bare HL7 sender waits
    // for the reply): tell it whether that direction still waits for a lost segment, or for
    // bytes its peer has acknowledged that the capture has not shown yet.
    Dir other = reverse(dir_);
    const auto& r = st_.reasm[static_cast<int>(other)];
    st_.ctx.set_behind_hole(other, r && (r->queued_bytes() > 0 || r->acked_unseen()));
    // Held bytes of either direction may be replayed now: both say whether they began mid-stream.
    for (Dir d : {Dir::to_server, Dir::to_client})
      if (const auto& rd = st_.reasm[static_cast<int>(d)]) st_.ctx.set_midstream(d, rd->midstream());
  }

  Pipeline& p_;
  FlowState& st_;
  Dir dir_;
  bool after_gap_ = false;  // a gap was given in this sink's life (one packet, or the flow's end)
};

Pipeline::Pipeline(const SensorConfig& cfg, Depth depth, EventOutput& out, const Pseudonymiser& phi,
                   std::vector<FlowJudge*> judges)
    : cfg_(cfg),
      depth_(depth),
      out_(out),
      phi_(phi),
      judges_(depth >= Depth::policy ? std::move(judges) : std::vector<FlowJudge*>{}),
      probes_(probe_candidates()),
      hold_mem_(cfg.feeder.probe_hold_memcap, out.counters()),
      held_mem_(cfg.feeder.held_memcap, out.counters()),
      reasm_mem_(cfg.reassembly_memcap, out.counters()),
      c_tcp_gaps_(out.counters().at("tcp.gaps")),
      c_overlap_conflicts_(out.counters().at("tcp.overlap_conflicts")),
      c_reversed_by_content_(out.counters().at("flows.reversed_by_content")),
      c_orientation_kept_(out.counters().at("flows.orientation_kept")),
      c_time_backwards_(out.counters().at("time.backwards")),
      c_decode_anomalies_suppressed_(out.counters().at("anomaly.decode.suppressed")),
      c_ack_out_of_window_(out.counters().at("tcp.ack_out_of_window")),
      c_rst_out_of_window_(out.counters().at("tcp.rst_out_of_window")),
      c_tcp_anomalies_suppressed_(out.counters().at("anomaly.tcp.suppressed")) {
  flows_ = std::make_unique<FlowTable>(cfg_.flows, out_.counters(),
                                       [this](Flow& f, FlowEnd why) { on_flow_end(f, why); });
  // The dissectors' registered ports name the server of a flow picked up mid-connection.
  ServicePorts service_ports;
  for (const DissectorInfo* d : probes_) {
    if ((static_cast<uint8_t>(d->transport) & static_cast<uint8_t>(Transport::tcp)) == 0) continue;
    for (uint16_t port : d->port_hints) service_ports.add(port);
    for (uint16_t port : d->tls_ports) service_ports.add(port);
  }
  flows_->set_service_ports(service_ports);
  if (depth_ >= Depth::ndpi) ndpi_ = std::make_unique<NdpiClassifier>(cfg_.ndpi, out_.counters());
}

Pipeline::~Pipeline() = default;

void Pipeline::set_linktype(int dlt) {
  // Fragments are an IP matter: those of a datagram split over files (a rotated capture) still
  // meet, whatever link type each file has.
  if (decoder_) {
    decoder_->set_linktype(dlt);
    return;
  }
  decoder_ = std::make_unique<Decoder>(
      dlt, out_.counters(),
      [this](std::string_view name, uint32_t offset, const Packet& p) { on_decode_anomaly(name, offset, p); },
      cfg_.fragments);
}

// One event per hostile packet would let any host on the mirrored link fill the output:
// kMaxDecodeAnomalies of each name per window of packet time, the rest only counted.
bool Pipeline::AnomalyWindow::admit(Timestamp ts) {
  if (count == 0 || ts.usec - start.usec >= kDecodeAnomalyWindowUsec || ts.usec < start.usec) {
    start = ts;
    count = 0;
  }
  return ++count <= kMaxDecodeAnomalies;
}

void Pipeline::on_decode_anomaly(std::string_view name, uint32_t offset, const Packet& p) {
  std::string counter = "anomaly.decode.";
  counter.append(name);
  ++out_.counters().at(counter);
  if (!decode_anomaly_windows_[std::string(name)].admit(p.ts)) {
    ++c_decode_anomalies_suppressed_;
    return;
  }
  EventEndpoints ep;
  if (p.src.family) {
    ep.src = p.src; ep.dst = p.dst; ep.src_port = p.sport; ep.dst_port = p.dport; ep.proto = p.proto;
    ep.has_ports = p.has_ports;  // an IP-layer anomaly has no ports to tell
    ep.vlan = p.vlan_count ? p.vlan[0] : 0;
    ep.vlan_inner = p.vlan_count > 1 ? p.vlan[1] : 0;
  }
  auto& w = out_.begin("anomaly", p.ts, p.src.family ? &ep : nullptr);
  w.object("anomaly");
  w.field("dissector", "decode");
  w.field("name", name);
  w.field("offset", offset);
  w.end_object();
  out_.end();
}

Pipeline::FlowState& Pipeline::state_of(Flow& f) {
  if (!f.ext) {
    auto st = std::make_unique<FlowState>(*this, f);
    if (depth_ >= Depth::dissect && (f.key.proto == 6 || f.key.proto == 17)) {
      st->feeder = std::make_unique<StreamFeeder>(probes_, f.key.proto == 6 ? Transport::tcp : Transport::udp,
                                                  f.server_port(), cfg_.feeder, &hold_mem_, &held_mem_);
    }
    if (f.key.proto == 6 && depth_ >= Depth::reassembly) {
      for (int d = 0; d < 2; ++d) {
        st->reasm[d] = std::make_unique<TcpReassembler>(cfg_.reassembly, reasm_mem_);
        if (f.isn_seen[d]) st->reasm[d]->syn(f.isn[d]);
      }
    }
    f.ext = std::move(st);
  }
  return static_cast<FlowState&>(*f.ext);
}

void Pipeline::packet(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts) {
  ++packets_;
  bytes_ += wirelen;
  if (ts.usec > last_ts_.usec) last_ts_ = ts;
  move_clock(ts);
  if (!decoder_) return;
  // Every frame moves packet time on, decoded or not: on a quiet link ARP, STP or LLDP frames
  // are what end idle flows and bring the periodic stats. Before the packet's own events, as
  // with --workers, where the reader moves every worker's clock before it hands the packet on.
  tick();
  handle(frame, caplen, wirelen, ts);
}

void Pipeline::held_packet(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts,
                           Timestamp frag_ts) {
  if (frag_ts.usec > clock_.usec) return packet(frame, caplen, wirelen, ts);
  ++packets_;
  bytes_ += wirelen;
  if (ts.usec > last_ts_.usec) last_ts_ = ts;
  if (!decoder_) return;
  decoder_->set_fragment_time(&frag_ts);  // also says the fragment comes late (FragmentTable::add)
  handle(frame, caplen, wirelen, ts);
  decoder_->set_fragment_time(nullptr);
}

void Pipeline::handle(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts) {
  Packet p;
  DecodeStatus ds = decoder_->decode(frame, caplen, wirelen, ts, p);
  if (ds != DecodeStatus::ok || depth_ == Depth::decode) return;

  Dir dir;
  Flow& f = flows_->lookup(p, dir, clock_);
  int d = static_cast<int>(dir);
  if (ts.usec > f.last.usec) f.last = ts;
  ++f.pkts[d];
  f.bytes[d] += wirelen;
  f.payload_bytes[d] += p.payload_len;
  if (p.has_mac && f.pkts[d] == 1) {
    // A group address (I/G bit: broadcast, multicast) is where a frame went, never whose it is: a
    // reply sent to the broadcast address must not take the asker's MAC away.
    auto individual = [](const std::array<uint8_t, 6>& m) { return (m[0] & 1) == 0; };
    if (individual(p.src_mac)) (dir == Dir::to_server ? f.client_mac : f.server_mac) = p.src_mac;
    if (p.has_dst_mac && individual(p.dst_mac)) (dir == Dir::to_server ? f.server_mac : f.client_mac) = p.dst_mac;
  }
  if (f.pkts[d] == 1) f.l2_broadcast[d] = p.l2_broadcast;
  TcpVerdict verdict = p.proto == 6 ? f.tcp_packet(d, p) : TcpVerdict::ok;
  flows_->touch(f, clock_);
  f.last_input = input_pos_;
  if (verdict == TcpVerdict::rst_out_of_window) {
    // The receiver drops it: so does reassembly.
    ++c_rst_out_of_window_;
    tcp_anomaly(f, dir, p, "rst_out_of_window");
    return;
  }
  if (verdict == TcpVerdict::ack_out_of_window) {
    ++c_ack_out_of_window_;
    tcp_anomaly(f, dir, p, "ack_out_of_window");
  }
  if (depth_ == Depth::flow) return;

  if (p.proto == 6) tcp(f, dir, p, verdict != TcpVerdict::ack_out_of_window);
  else if (p.proto == 17) udp(f, dir, p);
}

void Pipeline::tcp_anomaly(Flow& f, Dir dir, const Packet& p, std::string_view name) {
  if (!tcp_anomaly_windows_[std::string(name)].admit(p.ts)) {
    ++c_tcp_anomalies_suppressed_;
    return;
  }
  FlowState& st = state_of(f);
  st.ctx.set_now(p.ts);
  // The offset is the packet's sequence number (RST) or acknowledgment number (ACK): what was
  // out of the window.
  st.ctx.anomaly("tcp", name, name == "rst_out_of_window" ? p.seq : p.ack, dir_name(dir));
}

void Pipeline::tick() {
  // Timeouts of the flows no packet comes for are checked once per second of packet time (a
  // flow's own packet checks its timeout at once: FlowTable::lookup).
  if (clock_.usec >= next_expire_usec_) expire_now();
  if (cfg_.stats_interval_usec > 0) {
    if (next_stats_usec_ == 0) next_stats_usec_ = clock_.usec + cfg_.stats_interval_usec;
    else if (clock_.usec >= next_stats_usec_) {
      write_stats(clock_);
      next_stats_usec_ = clock_.usec + cfg_.stats_interval_usec;
    }
  }
}

// Packet time went back (files given out of time order, a merged capture of clocks that
// disagree, a clock stepped back): timeouts and stats go on from the earlier time, instead of
// waiting until packet time passes the latest time seen.
void Pipeline::time_went_back(Timestamp ts) {
  ++c_time_backwards_;
  clock_ = ts;
  flows_->time_went_back(ts);
  if (decoder_) decoder_->fragments().time_went_back(ts);
  next_expire_usec_ = std::min(next_expire_usec_, ts.usec + 1'000'000);
  if (next_stats_usec_ != 0) next_stats_usec_ = std::min(next_stats_usec_, ts.usec + cfg_.stats_interval_usec);
}

void Pipeline::prepare() {
  if (ndpi_) ndpi_->prepare();
}

void Pipeline::orient_by_content(Flow& f, Dir& dir, const Packet& p) {
  int d = static_cast<int>(dir);
  // Only the first bytes of a direction the capture saw: where a message most likely starts. A
  // record that continues a connection split at the absolute timeout keeps its orientation.
  if (f.continued) return;
  auto* st = static_cast<FlowState*>(f.ext.get());
  std::span<const uint8_t> bytes(p.payload, p.payload_len);
  if (f.payload_bytes[d] != p.payload_len) {
    // Those first bytes may come in more than one packet (DCMTK sends the 12 bytes of a
    // P-DATA-TF's PDU and PDV headers on their own, then the command): while no probe has
    // decided and the few bytes the direction sent so far are all held, they and this packet's
    // are its start.
    constexpr size_t kMaxJoined = 64;
    std::span<const uint8_t> held = st && st->feeder ? st->feeder->probing_held(dir) : std::span<const uint8_t>();
    if (held.empty() || held.size() > kMaxJoined || held.size() + p.payload_len != f.payload_bytes[d]) return;
    joined_.assign(held.begin(), held.end());
    joined_.insert(joined_.end(), p.payload, p.payload + p.payload_len);
    bytes = joined_;
  }
  StreamSender said = StreamSender::unknown;
  for (const DissectorInfo* info : all_dissectors()) {
    if (!info->sender || (static_cast<uint8_t>(info->transport) & static_cast<uint8_t>(Transport::tcp)) == 0) continue;
    said = info->sender(bytes);
    if (said != StreamSender::unknown) break;
  }
  if (said == StreamSender::unknown) said = http::sender(bytes);
  if (said == StreamSender::unknown) return;
  // A usual case (an HL7 ACK from the listening side) does not outweigh the ports.
  bool certain = said == StreamSender::client || said == StreamSender::server;
  if (!certain && f.orientation != Orientation::first_packet) return;
  bool from_server = said == StreamSender::server || said == StreamSender::likely_server;
  if (from_server != (dir == Dir::to_server)) {
    f.orientation = Orientation::content;
    return;
  }
  // Events already name the flow's sides, or a dissector reads it as it is: keep them.
  if (st && (st->ctx.wrote_events() || (st->feeder && st->feeder->claimed()))) {
    ++c_orientation_kept_;
    return;
  }
  f.reverse();
  f.orientation = Orientation::content;
  dir = reverse(dir);
  ++c_reversed_by_content_;
  if (st) {
    // Nothing was written of the flow yet, so its id can follow the new orientation.
    std::swap(st->reasm[0], st->reasm[1]);
    if (st->feeder) st->feeder->swap_sides();
    st->flow_id = f.id();
    st->ep.flow_id = st->flow_id;
    std::swap(st->ep.src, st->ep.dst);
    std::swap(st->ep.src_port, st->ep.dst_port);
    st->ep.src_mac = f.client_mac;
    st->ep.dst_mac = f.server_mac;
    st->header.valid = false;
  }
  flows_->touch(f, clock_);
}

namespace {
// A flow without payload so far (no state yet) whose packet shows that bytes were sent, so lost
// to the capture: a FIN past the sender's first byte, or a plausible ACK past the other side's
// first byte and a FIN's phantom byte. Known only from a side whose SYN was seen; a FIN
// further ahead than its receiver's window is not believed (TcpReassembler::flush).
bool shows_lost_bytes(const Flow& f, int d, const Packet& p, bool ack_plausible) {
  auto after = [](uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; };
  int o = 1 - d;
  if ((p.tcp_flags & tcpflag::FIN) && f.isn_seen[d] && after(p.seq, f.isn[d] + 1) &&
      p.seq - (f.isn[d] + 1) <= f.max_window(o))
    return true;
  // An ACK of one byte past the first may cover only a FIN, seen or lost.
  return (p.tcp_flags & tcpflag::ACK) && ack_plausible && f.isn_seen[o] && after(p.ack, f.isn[o] + 2);
}
}  // namespace

void Pipeline::tcp(Flow& f, Dir dir, const Packet& p, bool ack_plausible) {
  if (p.payload_len > 0 && depth_ >= Depth::dissect &&
      (f.orientation == Orientation::first_packet || f.orientation == Orientation::port))
    orient_by_content(f, dir, p);
  // Nothing to reassemble or classify yet, unless the packet shows bytes the capture lost.
  if (!f.ext && p.payload_len == 0 && !shows_lost_bytes(f, static_cast<int>(dir), p, ack_plausible)) return;
  FlowState& st = state_of(f);
  int d = static_cast<int>(dir);
  st.ctx.set_now(p.ts);
  TcpReassembler& r = *st.reasm[d];
  TcpReassembler& other = *st.reasm[1 - d];
  DirSink sink(*this, st, dir);
  DirSink other_sink(*this, st, reverse(dir));
  if ((p.tcp_flags & tcpflag::SYN) && !(p.tcp_flags & tcpflag::RST)) r.syn(p.seq);
  // An ACK for bytes the other side cannot have sent would make everything it sends up to there
  // look delivered already.
  if ((p.tcp_flags & tcpflag::ACK) && ack_plausible) other.peer_ack(p.ack);
  // Data carried in a SYN (TCP Fast Open) starts after the SYN's own sequence number.
  uint32_t data_seq = (p.tcp_flags & tcpflag::SYN) ? p.seq + 1 : p.seq;
  r.set_time(p.ts.usec);
  r.segment(data_seq, std::span<const uint8_t>(p.payload, p.payload_len), p.tcp_flags & tcpflag::FIN, sink);
  other.tick(other_sink);

  if (ndpi_ && !st.ndpi.finished) {
    const bool claimed = st.feeder && st.feeder->claimed();
    if (claimed && !st.ctx.keeps_classifying()) {
      ndpi_->finish(st.ndpi, true);  // medmon's own dissector knows better: no guess by port
    } else if (p.payload_len > 0 || st.ndpi.flow) {
      ndpi_->process(st.ndpi, p.l3, p.l3_len, static_cast<uint64_t>(p.ts.usec / 1000),
                     std::span<const uint8_t>(p.payload, p.payload_len), claimed);
    }
  }
}

void Pipeline::udp(Flow& f, Dir dir, const Packet& p) {
  FlowState& st = state_of(f);
  st.ctx.set_now(p.ts);
  st.ctx.set_frame_src_mac(p.has_mac ? &p.src_mac : nullptr);
  if (st.feeder && p.payload_len > 0)
    st.feeder->data(dir, std::span<const uint8_t>(p.payload, p.payload_len), 0, st.ctx);
  st.ctx.set_frame_src_mac(nullptr);
  if (ndpi_ && !st.ndpi.finished) {
    if (st.feeder && st.feeder->claimed()) ndpi_->finish(st.ndpi, true);
    else ndpi_->process(st.ndpi, p.l3, p.l3_len, static_cast<uint64_t>(p.ts.usec / 1000));
  }
}

void Pipeline::on_flow_end(Flow& f, FlowEnd why) {
  if (flow_end_observer_) flow_end_observer_(f);
  auto* st = static_cast<FlowState*>(f.ext.get());
  if (st) {
    st->ctx.set_now(f.last);
    for (int d = 0; d < 2; ++d) {
      if (st->reasm[d]) {
        DirSink sink(*this, *st, static_cast<Dir>(d));
        st->reasm[d]->flush(sink, f.max_window(1 - d));
      }
    }
    if (st->feeder) st->feeder->flow_end(st->ctx);
    if (ndpi_) ndpi_->finish(st->ndpi, st->feeder && st->feeder->claimed());
  }
  write_flow_event(f, why, st);
}

namespace {
// The flow event's `tls` object: what nDPI read of the handshake (Suricata's tls and Zeek's
// ssl.log keep the same facts). Only for flows nDPI named TLS or DTLS from their content.
void write_tls(JsonWriter& w, const NdpiResult& r, std::string_view ndpi_proto) {
  if ((ndpi_proto != "TLS" && ndpi_proto != "DTLS") || r.guessed) return;
  const TlsHandshake& t = r.tls;
  if (r.sni.empty() && t.ja3.empty() && t.ja3s.empty()) return;
  w.object("tls");
  w.field_if_nonempty("sni", r.sni);
  w.field_if_nonempty("version", NdpiClassifier::tls_version_name(t.version));
  w.field_if_nonempty("cipher", NdpiClassifier::tls_cipher_name(t.cipher));
  w.field_if_nonempty("alpn", t.alpn);
  w.field_if_nonempty("ja3", t.ja3);
  w.field_if_nonempty("ja3s", t.ja3s);
  w.field_if_nonempty("subject", t.subject);
  w.field_if_nonempty("issuer", t.issuer);
  if (t.not_before || t.not_after) {
    w.field("not_before", Timestamp{static_cast<int64_t>(t.not_before) * 1000000});
    w.field("not_after", Timestamp{static_cast<int64_t>(t.not_after) * 1000000});
  }
  w.end_object();
}
}  // namespace

void Pipeline::write_flow_event(Flow& f, FlowEnd why, FlowState* st) {
  std::string local_id;
  EventEndpoints local_ep;
  const EventEndpoints* ep = st ? &st->ep : nullptr;
  if (!ep) {
    local_id = f.id();
    local_ep.flow_id = local_id;
    local_ep.src = f.client_ip(); local_ep.dst = f.server_ip();
    local_ep.src_port = f.client_port(); local_ep.dst_port = f.server_port();
    local_ep.proto = f.key.proto; local_ep.vlan = f.key.vlan; local_ep.vlan_inner = f.key.vlan_inner;
    local_ep.src_mac = f.client_mac; local_ep.dst_mac = f.server_mac;
    ep = &local_ep;
  } else if (st->ep.src_mac != f.client_mac || st->ep.dst_mac != f.server_mac) {
    // The server's own first frame may name another MAC than the client's frames did: the header
    // (device names of MAC-bound devices) follows the flow's final MACs.
    st->ep.src_mac = f.client_mac;
    st->ep.dst_mac = f.server_mac;
    st->header.valid = false;
  }
  std::string ndpi_proto, ndpi_app, ndpi_cat;
  bool name_at_merge = false;  // analyze --workers: the merge names this TLS flow (tls_deferral_)
  if (st && ndpi_) {
    ndpi_proto = ndpi_->protocol_name(st->ndpi.result);
    ndpi_app = ndpi_->app_name(st->ndpi.result);
    ndpi_cat = ndpi_->category_name(st->ndpi.result);
    if (ndpi_->is_encrypted(st->ndpi.result)) {
      st->facts.tls = true;
      if (st->facts.app.empty() && ndpi_proto == "TLS") {
        st->facts.app = tls_app_by_port(f.server_port());
        if (st->facts.app.empty() && tls_deferral_) name_at_merge = true;
        else if (st->facts.app.empty() && shared_app_servers_)
          st->facts.app = shared_app_servers_->tls_app(f.server_ip(), f.server_port());
        else if (st->facts.app.empty()) st->facts.app = tls_app_by_server(f.server_ip(), f.server_port(), app_servers_);
      }
    }
  }
  if (st && !st->facts.tls && !st->facts.app.empty()) {
    if (tls_deferral_) tls_deferral_->spoke_in_clear(f, st->facts.app);
    else if (!shared_app_servers_) remember_app_server(app_servers_, f.server_ip(), st->facts.app);
    else if (app_servers_.size() >= 65536 || app_servers_.emplace(f.server_ip(), st->facts.app).second)
      shared_app_servers_->remember(f.server_ip(), st->facts.app);  // new to this worker
  }
  FlowVerdict verdict;
  if (!judges_.empty()) {
    FlowSummary s;
    s.ep = *ep;
    s.ep.header = nullptr;  // judges may keep the summary past the flow's state
    s.client_mac = f.client_mac;
    s.server_mac = f.server_mac;
    s.to_l2_broadcast = f.l2_broadcast[0];
    s.start = f.start;
    s.end = f.last;
    s.pkts = f.pkts;
    s.bytes = f.bytes;
    s.payload_bytes = f.payload_bytes;
    s.syn_seen = f.syn_seen;
    // A SYN-ACK or payload: an RST answering a SYN is a closed port, not an answer.
    s.server_answered = f.synack_seen || f.payload_bytes[1] > 0;
    s.end_state = flow_end_name(why);
    s.ndpi_protocol = ndpi_proto;
    s.ndpi_app = ndpi_app;
    s.ndpi_category = ndpi_cat;
    s.ndpi_guessed = st && st->ndpi.result.guessed;
    if (st) {
      s.sni = st->ndpi.result.sni;
      s.tls_version = st->ndpi.result.tls.version;
      s.tls_version_name = NdpiClassifier::tls_version_name(s.tls_version);
      s.tls_ja3 = st->ndpi.result.tls.ja3;
      s.tls_ja3s = st->ndpi.result.tls.ja3s;
      s.facts = &st->facts;
    }
    verdict = judge_flow(judges_, s, out_);
  }

  auto& w = out_.begin("flow", f.last, ep);
  w.object("flow");
  w.field("start", f.start);
  w.field("end", f.last);
  w.field("duration", static_cast<double>(f.last.usec - f.start.usec) / 1e6);
  w.field("state", flow_end_name(why));
  w.field("initiator", orientation_name(f.orientation));
  w.field("pkts_toserver", f.pkts[0]);
  w.field("pkts_toclient", f.pkts[1]);
  w.field("bytes_toserver", f.bytes[0]);
  w.field("bytes_toclient", f.bytes[1]);
  w.field("payload_bytes_toserver", f.payload_bytes[0]);
  w.field("payload_bytes_toclient", f.payload_bytes[1]);
  if (f.key.proto == 6) {
    auto flags = [](uint8_t v) {
      std::string s;
      if (v & tcpflag::SYN) s += 'S';
      if (v & tcpflag::ACK) s += 'A';
      if (v & tcpflag::FIN) s += 'F';
      if (v & tcpflag::PSH) s += 'P';
      if (v & tcpflag::RST) s += 'R';
      if (v & tcpflag::URG) s += 'U';
      return s;
    };
    w.field("tcp_flags_toserver", flags(f.tcp_flags[0]));
    w.field("tcp_flags_toclient", flags(f.tcp_flags[1]));
    if (st && st->reasm[0]) {
      w.field("gaps_toserver", st->reasm[0]->gaps());
      w.field("gaps_toclient", st->reasm[1]->gaps());
      w.field("gap_bytes_toserver", st->reasm[0]->gap_bytes());
      w.field("gap_bytes_toclient", st->reasm[1]->gap_bytes());
      if (st->reasm[0]->midstream() || st->reasm[1]->midstream()) w.field("midstream", true);
    }
  }
  w.end_object();
  w.key("app");
  if (name_at_merge) tls_deferral_->unnamed_tls(f, out_.line_offset());
  if (st && !st->facts.app.empty()) w.value(st->facts.app); else w.null();
  if (st && ndpi_) {
    w.object("ndpi");
    w.field("protocol", ndpi_proto);
    if (!ndpi_app.empty()) w.field("app", ndpi_app);
    if (!ndpi_cat.empty()) w.field("category", ndpi_cat);
    if (st->ndpi.result.guessed) w.field("guessed", true);
    w.array("risks");
    for (auto& r : NdpiClassifier::risk_names(st->ndpi.result.risk)) w.value(r);
    w.end_array();
    w.end_object();
    write_tls(w, st->ndpi.result, ndpi_proto);
  }
  if (st && !st->facts.phi_fields.empty() && !st->facts.tls) {
    w.array("phi_cleartext");
    for (auto& p : st->facts.phi_fields) w.value(p);
    w.end_array();
  }
  write_verdict(w, verdict);
  out_.end();
}

FlowVerdict judge_flow(const std::vector<FlowJudge*>& judges, const FlowSummary& flow, EventOutput& out) {
  FlowVerdict verdict;
  for (FlowJudge* j : judges) {
    FlowVerdict v = j->judge(flow, out);
    if (verdict.verdict.empty()) verdict = std::move(v);
  }
  return verdict;
}

void write_verdict(JsonWriter& w, const FlowVerdict& v) {
  if (v.verdict.empty()) return;
  w.field("verdict", v.verdict);
  if (!v.rule.empty()) w.field("verdict_rule", v.rule);
  if (!v.mds2.empty()) {
    w.array("mds2");
    for (auto& m : v.mds2) w.value(m);
    w.end_array();
  }
  static const char* kVerdictKey[] = {"src_verdict", "dst_verdict"};
  static const char* kRuleKey[] = {"src_verdict_rule", "dst_verdict_rule"};
  for (int side = 0; side < 2; ++side) {
    if (v.side_verdict[side].empty()) continue;
    w.field(kVerdictKey[side], v.side_verdict[side]);
    if (!v.side_rule[side].empty()) w.field(kRuleKey[side], v.side_rule[side]);
  }
}

std::string with_verdict(std::string_view flow_line, const FlowVerdict& v) {
  if (v.verdict.empty() || flow_line.empty() || flow_line.back() != '}') return std::string(flow_line);
  JsonBuffer b;
  JsonWriter w(b);
  w.begin_object();
  write_verdict(w, v);
  w.end_object();
  // {"verdict":...} -> ,"verdict":...} in place of the line's closing brace.
  std::string out(flow_line.substr(0, flow_line.size() - 1));
  out.push_back(',');
  out.append(b.view().substr(1));
  return out;
}

std::string tls_app_by_port(uint16_t server_port) {
  for (const DissectorInfo* d : all_dissectors())
    for (uint16_t p : d->tls_ports)
      if (p == server_port) return std::string(d->name) + "-tls";
  return {};
}

std::string tls_app_by_server(const IpAddr& server, uint16_t server_port, const AppServers& spoke_in_clear) {
  const auto all = all_dissectors();
  for (const DissectorInfo* d : all)
    if (d->tls_server && d->tls_server(server, server_port)) return std::string(d->name) + "-tls";
  for (const DissectorInfo* d : all)
    if (d->tls_after_clear && spoke_in_clear.count({server, std::string(d->name)})) return std::string(d->name) + "-tls";
  return {};
}

void remember_app_server(AppServers& servers, const IpAddr& server, const std::string& app) {
  if (servers.size() >= 65536) return;
  servers.emplace(server, app);
}

void SharedAppServers::remember(const IpAddr& server, const std::string& app) {
  std::lock_guard lock(m_);
  remember_app_server(servers_, server, app);
}

std::string SharedAppServers::tls_app(const IpAddr& server, uint16_t server_port) const {
  std::lock_guard lock(m_);
  return tls_app_by_server(server, server_port, servers_);
}

void Pipeline::set_capture_stats(uint64_t received, uint64_t dropped, uint64_t if_dropped) {
  have_capture_stats_ = true;
  cap_received_ = received;
  cap_dropped_ = dropped;
  cap_if_dropped_ = if_dropped;
}

void write_stats_event(EventOutput& out, Timestamp ts, const StatsSnapshot& s, const Counters& c) {
  auto& w = out.begin("stats", ts, nullptr);
  w.object("stats");
  if (s.worker >= 0) w.field("worker", s.worker);
  w.field("packets", s.packets);
  w.field("bytes", s.bytes);
  w.field("flows", c.get("flows.created"));
  w.field("flows_active", s.flows_active);
  w.field_if_nonempty("filter", s.filter);
  if (s.have_capture) {
    w.object("capture");
    w.field("received", s.received);
    w.field("dropped", s.dropped);
    w.field("if_dropped", s.if_dropped);
    w.end_object();
  }
  w.object("counters");
  for (auto& [name, v] : c.all()) {
    if (v == 0) continue;
    w.field(name, v);
  }
  w.end_object();
  w.end_object();
  out.end();
}

StatsSnapshot Pipeline::snapshot() {
  out_.counters().at("tcp.reassembly.memory_peak") = reasm_mem_.peak;
  StatsSnapshot s;
  s.packets = packets_;
  s.bytes = bytes_;
  s.flows_active = flows_->size();
  s.have_capture = have_capture_stats_;
  s.received = cap_received_;
  s.dropped = cap_dropped_;
  s.if_dropped = cap_if_dropped_;
  s.worker = worker_id_;
  s.filter = input_filter_;
  return s;
}

void Pipeline::write_stats(Timestamp ts) {
  if (stats_refresh_) stats_refresh_();
  StatsSnapshot s = snapshot();
  write_stats_event(out_, ts, s, out_.counters());
}

bool Pipeline::move_clock(Timestamp ts) {
  if (ts.usec > clock_.usec) clock_ = ts;
  else if (clock_.usec - ts.usec > kTimeBackUsec) time_went_back(ts);
  else return false;
  return true;
}

void Pipeline::expire_now() {
  flows_->expire(clock_);
  if (decoder_) decoder_->fragments().expire(clock_);
  next_expire_usec_ = clock_.usec + 1'000'000;
}

void Pipeline::advance_clock(Timestamp ts) {
  // As packet() and tick(): time going back only brings the next check nearer.
  move_clock(ts);
  if (clock_.usec >= next_expire_usec_) expire_now();
}

void Pipeline::expire_fragments(Timestamp ts) {
  if (decoder_) decoder_->fragments().expire(ts);
}

void Pipeline::catch_up_clock(Timestamp ts) {
  if (ts.usec > clock_.usec) clock_ = ts;
}

void Pipeline::follow_clock(Timestamp ts) {
  // No capture time yet (0): following it would start the stats schedule at 1970, and the first
  // packet would then write a stats event at once.
  if (ts.usec <= 0 || ts.usec <= clock_.usec) return;
  clock_ = ts;
  tick();
}

void Pipeline::finish(FlowEnd why, bool with_stats, std::optional<Timestamp> stop_time, Timestamp capture_latest) {
  if (decoder_) decoder_->fragments().drop_all();
  // Flows idle past their timeout by the last packet time timed out, even when no check of
  // timeouts came after (it comes once per second of packet time).
  flows_->expire(clock_);
  flows_->end_all(why);
  Timestamp end = last_ts_;
  if (capture_latest.usec > end.usec) end = capture_latest;  // another worker's later packet
  else if (packets_ == 0 && stop_time) end = *stop_time;
  for (FlowJudge* j : judges_) j->finish(end, out_);
  if (with_stats) write_stats(end);
  out_.flush();
}

}  // namespace medmon
