#include "sensor/engine/workers.h"

#include <algorithm>
#include <cstring>

#include "dissectors/api/worker_budget.h"

namespace medmon {

namespace {
// Symmetric: both directions of a flow give the same value.
uint64_t flow_hash(const Packet& p, bool fragment) {
  auto h = [](const IpAddr& a) {
    uint64_t x = 1469598103934665603ULL;
    for (uint8_t b : a.b) { x ^= b; x *= 1099511628211ULL; }
    return x;
  };
  uint64_t a = h(p.src), b = h(p.dst);
  uint64_t v = (a ^ b) + (a + b) * 31;
  if (!fragment) v += (uint64_t(p.sport) ^ p.dport) * 0x9E3779B97F4A7C15ULL + (uint64_t(p.sport) + p.dport);
  v ^= p.proto;
  v ^= v >> 29; v *= 0xbf58476d1ce4e5b9ULL; v ^= v >> 32;
  return v;
}
}  // namespace

FlowVerdict OfflineWorkers::Deferral::judge(const FlowSummary& flow, EventOutput&) {
  EndedFlow& e = ended.emplace_back();
  e.summary = flow;
  if (flow.facts) e.facts = *flow.facts;
  e.summary.facts = &e.facts;
  e.flow_id.assign(flow.ep.flow_id);
  e.summary.ep.flow_id = e.flow_id;
  e.summary.ep.header = nullptr;
  e.line = sink_.lines.size();  // the pipeline writes the flow event right after its judges
  return {};
}

void OfflineWorkers::WorkerSink::write_line(std::string_view event_type, std::string_view line) {
  MemorySink::write_line(event_type, line);
  if (!record) return;
  Header& h = headers.emplace_back();
  size_t end = 0;
  if (const EventEndpoints* ep = out ? out->current_endpoints(end) : nullptr; ep && ep->src.family && end <= line.size()) {
    h.has = true;
    h.src = ep->src;
    h.dst = ep->dst;
    h.src_mac = ep->src_mac;
    h.dst_mac = ep->dst_mac;
    h.end = end;
  }
}

void OfflineWorkers::Worker::spoke_in_clear(const Flow& f, const std::string& app) {
  Note& n = notes.emplace_back();
  n.kind = Note::Kind::spoke_in_clear;
  n.line = sink->lines.size();
  n.ip = f.server_ip();
  n.app = app;
}

void OfflineWorkers::Worker::unnamed_tls(const Flow& f, size_t app_at) {
  Note& n = notes.emplace_back();
  n.kind = Note::Kind::unnamed_tls;
  n.line = sink->lines.size();  // the flow event being written is the next line
  n.ip = f.server_ip();
  n.port = f.server_port();
  n.app_at = app_at;
}

void OfflineWorkers::Worker::announced(RememberServer remember, const IpAddr& ip, uint16_t port) {
  Note& n = notes.emplace_back();
  n.kind = Note::Kind::announced;
  n.line = sink->lines.size();
  n.order = marks.empty() ? now : marks.back().order;
  n.remember = remember;
  n.ip = ip;
  n.port = port;
}

OfflineWorkers::OfflineWorkers(int n, const SensorConfig& cfg, Depth depth, const Pseudonymiser& phi,
                               EventOutput& merged, std::vector<FlowJudge*> judges, HeaderAnnotator* annotator)
    : merged_(merged),
      judges_(depth >= Depth::policy ? std::move(judges) : std::vector<FlowJudge*>{}),
      annotator_(annotator),
      site_annotator_(annotator ? annotator->site_annotator() : nullptr),
      frag_limits_(cfg.fragments),
      c_held_(dispatch_counters_.at("workers.fragments.held")),
      c_unmatched_(dispatch_counters_.at("workers.fragments.unmatched")),
      c_evicted_(dispatch_counters_.at("workers.fragments.evicted")),
      c_time_backwards_(dispatch_counters_.at("time.backwards")) {
  // Periodic stats are written here, for all workers at once.
  stats_interval_usec_ = cfg.stats_interval_usec;
  SensorConfig worker_cfg = cfg;
  worker_cfg.stats_interval_usec = 0;
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->out.add_sink(w->sink);
    w->out.set_annotator(site_annotator_);
    // The judges bind devices by fingerprint on the merging thread: the merge names them in the
    // lines the workers wrote without them, as one pipeline names them once bound.
    w->sink->out = &w->out;
    w->sink->record = annotator_ && annotator_ != site_annotator_;
    w->out.set_community_id(cfg.community_id, cfg.community_id_seed);
    std::vector<FlowJudge*> raw;
    if (!judges_.empty()) {
      w->deferral = std::make_unique<Deferral>(*w->sink);
      raw.push_back(w->deferral.get());
    }
    w->pipeline = std::make_unique<Pipeline>(worker_share(worker_cfg, n, i), depth, w->out, phi, raw);
    w->pipeline->set_tls_naming_deferral(w.get());
    Worker* wp = w.get();
    w->pipeline->set_flow_end_observer([wp](const Flow& f) {
      // A flow its own packet ends stays with that packet's events.
      if (wp->now.phase != kTimedOut) return;
      LineOrder o = wp->now;
      o.last_usec = f.last.usec;
      o.list = f.lru_class;
      o.last_input = f.last_input;
      wp->mark(o);
    });
    workers_.push_back(std::move(w));
  }
  set_worker_slots(n);
  for (int i = 0; i < n; ++i) {
    Worker* wp = workers_[static_cast<size_t>(i)].get();
    wp->thread = std::thread([this, wp, i] {
      set_worker_slot(i);
      set_announcement_recorder(wp);
      run(*wp);
    });
  }
}

OfflineWorkers::~OfflineWorkers() {
  for (auto& w : workers_) {
    {
      std::lock_guard<std::mutex> g(w->m);
      w->queue.push_back(nullptr);  // stop
    }
    w->cv.notify_one();
  }
  for (auto& w : workers_) if (w->thread.joinable()) w->thread.join();
}

void OfflineWorkers::run(Worker& w) {
  for (;;) {
    std::unique_ptr<Batch> b;
    {
      std::unique_lock<std::mutex> g(w.m);
      w.cv.wait(g, [&] { return !w.queue.empty(); });
      b = std::move(w.queue.front());
      w.queue.pop_front();
    }
    w.cv.notify_all();  // room in the queue
    if (!b) return;
    switch (b->kind) {
      case Batch::Kind::packets:
        for (auto& r : b->refs) {
          // Neither writes events.
          if (r.frag_expire) {
            w.pipeline->expire_fragments(r.ts);
            continue;
          }
          if (r.stats) {
            auto& part = w.stats_parts.emplace_back();
            part.pos = r.pos;
            part.flows_active = w.pipeline->snapshot().flows_active;  // also sets its memory peak
            part.counters = w.out.counters();
            continue;
          }
          w.now = {r.pos, r.tick ? kTimedOut : kPacket};
          w.mark(w.now);
          // A fragment held in the reader from before a point the periodic stats were due at:
          // what it counts now, one pipeline had counted by then.
          const bool late = r.held && !w.stats_parts.empty() && w.stats_parts.back().pos > r.pos;
          Counters before;
          if (late) before = w.out.counters();
          if (r.tick) {
            w.pipeline->advance_clock(r.ts);
          } else {
            w.pipeline->set_input_position(r.pos);
            if (r.held) w.pipeline->held_packet(b->data.data() + r.offset, r.caplen, r.wirelen, r.ts, r.frag_ts);
            else w.pipeline->packet(b->data.data() + r.offset, r.caplen, r.wirelen, r.ts);
          }
          if (late) {
            for (auto& [name, v] : w.out.counters().all()) {
              uint64_t d = v - before.get(name);
              if (d == 0) continue;
              for (auto& part : w.stats_parts)
                if (part.pos > r.pos) part.counters.add(name, d);
            }
          }
          if (size_t open = w.pipeline->active_flows(); open != w.flows_open) {
            w.flows_open = open;
            w.flows_open_changes.emplace_back(w.now, open);
          }
        }
        break;
      case Batch::Kind::linktype:
        w.pipeline->set_linktype(b->dlt);
        break;
      case Batch::Kind::finish:
        w.now = {std::numeric_limits<uint64_t>::max(), kTimedOut};
        w.mark(w.now);
        w.pipeline->catch_up_clock(b->clock);
        w.pipeline->finish(b->why, /*with_stats=*/false);
        [[fallthrough]];
      case Batch::Kind::epoch: {
        std::lock_guard<std::mutex> g(done_m_);
        ++done_count_;
        done_cv_.notify_one();
        break;
      }
    }
  }
}

void OfflineWorkers::push(Worker& w, std::unique_ptr<Batch> b) {
  std::unique_lock<std::mutex> g(w.m);
  w.cv.wait(g, [&] { return w.queue.size() < kMaxQueued; });
  w.queue.push_back(std::move(b));
  g.unlock();
  w.cv.notify_all();
}

void OfflineWorkers::broadcast(Batch::Kind kind, int dlt, FlowEnd why, Timestamp clock) {
  for (auto& w : workers_) {
    if (w->filling && !w->filling->refs.empty()) push(*w, std::move(w->filling));
    w->filling.reset();
    auto b = std::make_unique<Batch>();
    b->kind = kind;
    b->dlt = dlt;
    b->why = why;
    b->clock = clock;
    push(*w, std::move(b));
  }
}

void OfflineWorkers::set_linktype(int dlt) {
  // Held frames are of the previous link type: dropped, with their routes (counted as
  // workers.fragments.unmatched).
  drop_all_routes();
  peek_ = std::make_unique<Decoder>(dlt, peek_counters_, nullptr);
  peek_->set_peek_only(true);
  resolver_ = std::make_unique<Decoder>(dlt, resolver_counters_, nullptr, frag_limits_);
  broadcast(Batch::Kind::linktype, dlt);
}

void OfflineWorkers::packet(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts) {
  ++packets_;
  bytes_ += wirelen;
  if (ts.usec > last_ts_.usec) last_ts_ = ts;
  // By this packet's own time, as one pipeline's fragment table expires its datagrams: a packet
  // with a later time (a later file read first, a clock jump) must not end the wait of fragments
  // whose first fragment is still to come, which would send them to another worker than it.
  // Before the workers' clocks move to this packet: the fragments a timed-out route held reach
  // their worker's table ahead of the check of timeouts this packet's time brings, which times
  // them out there as it would have in one pipeline's table (not at the worker's next check, or
  // as incomplete if the input ends first).
  if (!routes_.empty()) expire_routes(ts);
  advance_input_clock(ts);
  Packet p;
  DecodeStatus s = peek_ ? peek_->decode(frame, caplen, wirelen, ts, p) : DecodeStatus::malformed;
  // Undecodable packets all go to worker 0, which reports them.
  int idx = 0;
  if (s == DecodeStatus::ok) idx = static_cast<int>(flow_hash(p, false) % workers_.size());
  else if (s == DecodeStatus::fragment && p.src.family) {
    idx = route_fragment(p, frame, caplen, wirelen, ts);
    // One pipeline's fragment table times out its datagrams whenever it takes a fragment (an
    // IPv4 one past 64 KiB and one cut by the snap length are not taken): so does every worker's,
    // not only the table of the worker the fragment goes to.
    const FragmentPeek& f = peek_->peeked_fragment();
    if (!p.ip_cut && (p.ip_version == 6 || uint64_t(f.offset) + f.length <= 65535))
      for (size_t i = 0; i < workers_.size(); ++i)
        if (static_cast<int>(i) != idx) send_marker(i, ts, &PacketRef::frag_expire);
  }
  if (idx >= 0) send(static_cast<size_t>(idx), frame, caplen, wirelen, ts, packets_);
  // Fragments waiting in the reader belong where they came in the input, and their worker may
  // write events of them (an overlap that differs) when they are sent: the merge waits for them,
  // a bounded while.
  if (++since_epoch_ >= kEpochPackets && (held_frames_ == 0 || since_epoch_ >= 2 * kEpochPackets)) {
    since_epoch_ = 0;
    epoch();
  }
}

OfflineWorkers::Batch& OfflineWorkers::filling(size_t idx) {
  Worker& w = *workers_[idx];
  if (!w.filling) {
    w.filling = std::make_unique<Batch>();
    w.filling->data.reserve(kBatchPackets * 1600);
    w.filling->refs.reserve(kBatchPackets);
  }
  return *w.filling;
}

void OfflineWorkers::send(size_t idx, const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts,
                          uint64_t pos, bool held, Timestamp frag_ts) {
  Batch& b = filling(idx);
  b.refs.push_back({static_cast<uint32_t>(b.data.size()), caplen, wirelen, ts, pos, false, held, frag_ts});
  b.data.insert(b.data.end(), frame, frame + caplen);
  if (b.refs.size() >= kBatchPackets) push(*workers_[idx], std::move(workers_[idx]->filling));
}

void OfflineWorkers::send_marker(size_t idx, Timestamp ts, bool PacketRef::*kind) {
  Batch& b = filling(idx);
  PacketRef r{static_cast<uint32_t>(b.data.size()), 0, 0, ts, packets_};
  r.*kind = true;
  b.refs.push_back(r);
  if (b.refs.size() >= kBatchPackets) push(*workers_[idx], std::move(workers_[idx]->filling));
}

void OfflineWorkers::advance_input_clock(Timestamp ts) {
  bool back = false;
  if (ts.usec > clock_.usec) {
    clock_ = ts;
  } else if (clock_.usec - ts.usec > kTimeBackUsec) {
    clock_ = ts;
    back = true;
    ++c_time_backwards_;
    if (!routes_.empty()) routes_went_back(ts);
    if (next_stats_usec_ != 0) next_stats_usec_ = std::min(next_stats_usec_, ts.usec + stats_interval_usec_);
  }
  // Each worker's clock follows, before this packet reaches one of them: its flows time out as
  // one pipeline's would, and its clock goes back with the input's.
  if (back || clock_.usec >= next_tick_usec_) {
    for (size_t i = 0; i < workers_.size(); ++i) send_marker(i, clock_, &PacketRef::tick);
    next_tick_usec_ = clock_.usec + kTickUsec;
  }
  if (stats_interval_usec_ <= 0) return;
  if (next_stats_usec_ == 0) {
    next_stats_usec_ = clock_.usec + stats_interval_usec_;
  } else if (clock_.usec >= next_stats_usec_) {
    // Every worker notes its counters at this point of the input (after the flows its time ends),
    // and the merge writes the event in its place, so that it counts one moment of the input, as
    // one pipeline's does: fragments held in the reader from before it are counted when they
    // reach their worker, not left out.
    PendingStats& ps = pending_stats_.emplace_back();
    ps.ts = clock_;
    ps.order = {packets_, kTimedOut, std::numeric_limits<uint8_t>::max(), std::numeric_limits<uint64_t>::max(),
                std::numeric_limits<int64_t>::max()};
    ps.packets = packets_;
    ps.bytes = bytes_;
    ps.dispatch = dispatch_counters_;
    for (size_t i = 0; i < workers_.size(); ++i) send_marker(i, clock_, &PacketRef::stats);
    next_stats_usec_ = clock_.usec + stats_interval_usec_;
  }
}

int OfflineWorkers::route_fragment(const Packet& p, const uint8_t* frame, uint32_t caplen, uint32_t wirelen,
                                   Timestamp ts) {
  size_t pair = flow_hash(p, /*fragment=*/true) % workers_.size();
  // Flows of other protocols have no ports: their worker is the address pair's. IPv6 extension
  // headers after the fragment header may hide a transport header, and a tunnel's first fragment
  // names the flow inside it: such fragments wait too. An IPv6 fragment's Next Header says nothing
  // unless it is the first fragment's (RFC 8200 4.5): every IPv6 fragment waits for the first.
  bool transport = p.proto == 6 || p.proto == 17 || p.proto == 1 || p.proto == 58;
  if (p.ip_version == 4 && !transport && !is_tunnel_protocol(p.proto)) return static_cast<int>(pair);
  const FragmentPeek& f = peek_->peeked_fragment();
  // A fragment past 64 KiB belongs to no datagram a worker rebuilds: it is dropped (an IPv4 one
  // with an anomaly) where it comes, not held, so its event stays in its place in the input.
  if (!p.ip_cut && uint64_t(f.offset) + f.length > 65535) return static_cast<int>(pair);
  FragmentTable::Key key = fragment_key(p, f.id);
  auto it = routes_.find(key);
  if (it == routes_.end()) {
    it = add_route(key, ts, pair);
  } else if (it->second.restarted && !p.ip_cut) {
    // A fragment contradicted the datagram's length: the workers' table dropped it, and this
    // fragment begins another there, timed out 30 s from now (not from the dropped one's start).
    it->second.restarted = false;
    it->second.created = ts;
    route_age_.splice(route_age_.end(), route_age_, it->second.age);
  }
  // A fragment cut by the snap length is not taken by the workers' tables.
  const bool whole = !p.ip_cut && it->second.take(f.offset, f.length, f.more, ts, frag_limits_.timeout_usec);
  int worker = -1;
  if (f.offset == 0 && !f.needs_more) {
    FragmentRoute& r = it->second;
    if (r.worker >= 0 && !r.first_seen) {
      // Given up waiting for: the datagram stays whole where its other fragments went.
      worker = r.worker;
    } else {
      if (r.first_seen) {
        // A copy of the first fragment, or a datagram whose first fragment came before: routed afresh.
        r.created = ts;
        route_age_.splice(route_age_.end(), route_age_, r.age);
      }
      // Hashed as the reassembled datagram will be: its transport protocol (after IPv6 extension
      // headers), and for a tunnel the flow inside it.
      Packet inner = p;
      inner.proto = f.l4_proto;
      if (f.inner) {
        inner.src = f.inner_src;
        inner.dst = f.inner_dst;
      }
      worker = static_cast<int>(flow_hash(inner, !f.has_ports) % workers_.size());
      release(it, static_cast<size_t>(worker));  // held fragments first: the worker gets the datagram in input order
    }
    r.first_seen = true;
  } else {
    if (f.offset == 0 && (it->second.worker < 0 || it->second.resolving)) {
      it->second.first_seen = true;
      it->second.resolving = true;
    }
    worker = hold(it, frame, caplen, wirelen, ts);
    if (worker < 0 && whole && it->second.resolving) resolve(it);
  }
  if (whole) forget_route(it);
  return worker;
}

int OfflineWorkers::hold(RouteIt it, const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts) {
  if (it->second.worker >= 0) return it->second.worker;
  // Room for this fragment: the datagrams waiting longest stop waiting.
  while ((held_frames_ >= kMaxHeldFrames || held_bytes_ + caplen > kMaxHeldBytes) && !waiting_.empty()) {
    auto oldest = routes_.find(waiting_.front());
    c_evicted_ += oldest->second.held.size();
    release(oldest, oldest->second.fallback);
  }
  FragmentRoute& r = it->second;
  if (r.worker >= 0 || held_frames_ >= kMaxHeldFrames || held_bytes_ + caplen > kMaxHeldBytes) {
    if (r.worker < 0) release(it, r.fallback);
    ++c_evicted_;
    return r.worker;
  }
  if (r.held.empty()) r.waiting = waiting_.insert(waiting_.end(), it->first);
  r.held.push_back({std::vector<uint8_t>(frame, frame + caplen), wirelen, ts, packets_, ts});
  ++held_frames_;
  held_bytes_ += caplen;
  ++c_held_;
  return -1;
}

bool OfflineWorkers::FragmentRoute::take(uint32_t offset, uint32_t length, bool more, Timestamp ts,
                                         int64_t timeout_usec) {
  // FragmentTable::add, without the bytes. The table has timed the datagram out by a fragment this
  // late (the route may wait longer: a copy of the first fragment routes it afresh): this one begins
  // another there.
  if ((!have.empty() || have_last) && ts.usec - begun.usec >= timeout_usec) {
    have.clear();
    high = total = 0;
    have_last = false;
  }
  if (have.empty() && !have_last) begun = ts;
  uint64_t end64 = uint64_t(offset) + length;
  if (end64 > 65535) return false;
  uint32_t end = static_cast<uint32_t>(end64);
  auto restart = [this] {
    restarted = true;
    have.clear();
    high = total = 0;
    have_last = false;
    return false;
  };
  if (!more && (end < high || (have_last && total != end))) return restart();
  if (more && have_last && end > total) return restart();
  if (!more) {
    have_last = true;
    total = end;
  }
  high = std::max(high, end);
  FragmentTable::merge_piece(have, offset, end);
  if (have.size() > FragmentTable::kMaxPieces) return restart();
  return have_last && have.size() == 1 && have[0].first == 0 && have[0].second >= total;
}

void OfflineWorkers::resolve(RouteIt it) {
  FragmentRoute& r = it->second;
  size_t worker = r.fallback;
  bool found = false;
  for (auto& h : r.held) {
    Packet whole;
    DecodeStatus s = resolver_->decode(h.frame.data(), static_cast<uint32_t>(h.frame.size()), h.wirelen, h.ts, whole);
    if (s == DecodeStatus::ok && !found) {
      found = true;
      worker = flow_hash(whole, false) % workers_.size();
    }
  }
  // Nothing kept for the next datagram (a malformed one, or one of a tunnel fragmented inside).
  resolver_->fragments().drop_all();
  release(it, worker);
}

void OfflineWorkers::forget_route(RouteIt it) {
  FragmentRoute& r = it->second;
  if (!r.held.empty()) return;  // (not reached: a datagram is whole only with its first fragment routed)
  route_age_.erase(r.age);
  routes_.erase(it);
}

OfflineWorkers::RouteIt OfflineWorkers::add_route(const FragmentTable::Key& key, Timestamp ts, size_t fallback) {
  while (!route_age_.empty() && routes_.size() >= std::max<size_t>(frag_limits_.max_datagrams, 1))
    drop_route(routes_.find(route_age_.front()), c_evicted_);
  auto it = routes_.emplace(key, FragmentRoute{}).first;
  FragmentRoute& r = it->second;
  r.created = ts;
  r.fallback = fallback;
  r.age = route_age_.insert(route_age_.end(), key);
  r.waiting = waiting_.end();
  return it;
}

void OfflineWorkers::release(RouteIt it, size_t worker) {
  FragmentRoute& r = it->second;
  for (auto& h : r.held) {
    send(worker, h.frame.data(), static_cast<uint32_t>(h.frame.size()), h.wirelen, h.ts, h.pos, /*held=*/true, h.frag_ts);
    held_bytes_ -= h.frame.size();
  }
  held_frames_ -= r.held.size();
  std::vector<FragmentRoute::Held>().swap(r.held);
  r.resolving = false;
  if (r.waiting != waiting_.end()) {
    waiting_.erase(r.waiting);
    r.waiting = waiting_.end();
  }
  r.worker = static_cast<int>(worker);
}

void OfflineWorkers::drop_route(RouteIt it, uint64_t& counter) {
  counter += it->second.held.size();
  release(it, it->second.fallback);
  route_age_.erase(it->second.age);
  routes_.erase(it);
}

void OfflineWorkers::expire_routes(Timestamp now) {
  while (!route_age_.empty()) {
    auto it = routes_.find(route_age_.front());
    if (now.usec - it->second.created.usec < frag_limits_.timeout_usec) break;
    drop_route(it, c_unmatched_);
  }
}

void OfflineWorkers::routes_went_back(Timestamp now) {
  // As FragmentTable::time_went_back: the datagrams begun later wait for their timeout from `now`.
  // route_age_ is in order of creation, so those are at its end.
  for (auto k = route_age_.rbegin(); k != route_age_.rend(); ++k) {
    FragmentRoute& r = routes_.find(*k)->second;
    if (r.created.usec <= now.usec) break;
    r.created = now;
  }
  // A held fragment reaches its worker after the worker's clock went back: taken at its later
  // time, it would move that clock forward again (Pipeline::held_packet) and end flows early. The
  // worker's fragment table, had it taken the fragment when it came, would now date it `now`; its
  // events keep the fragment's own time.
  for (auto& [k, r] : routes_)
    if (r.begun.usec > now.usec) r.begun = now;
  for (const FragmentTable::Key& k : waiting_)
    for (auto& h : routes_.find(k)->second.held)
      if (h.frag_ts.usec > now.usec) h.frag_ts = now;
}

void OfflineWorkers::drop_all_routes() {
  while (!route_age_.empty()) drop_route(routes_.find(route_age_.front()), c_unmatched_);
}

namespace {
// The flows ended together (a tick, the end of input), sorted by timeout list and then by last
// packet, in the order one flow table ends them: of the lists' heads, the flow whose last packet
// time is the earliest, the first list on a tie.
template <typename Line>
void interleave_flows(std::vector<Line>& all, size_t begin, size_t end) {
  struct Run { size_t begin, end; };
  std::vector<std::vector<Run>> lists;  // in list order
  for (size_t i = begin; i < end;) {
    size_t j = i + 1;
    while (j < end && *all[j].order == *all[i].order) ++j;
    if (lists.empty() || all[lists.back().front().begin].order->list != all[i].order->list) lists.emplace_back();
    lists.back().push_back({i, j});
    i = j;
  }
  if (lists.size() < 2) return;
  std::vector<Line> merged;
  merged.reserve(end - begin);
  std::vector<size_t> head(lists.size(), 0);
  for (;;) {
    size_t best = lists.size();
    for (size_t l = 0; l < lists.size(); ++l) {
      if (head[l] == lists[l].size()) continue;
      if (best == lists.size() || all[lists[l][head[l]].begin].order->last_usec <
                                      all[lists[best][head[best]].begin].order->last_usec)
        best = l;
    }
    if (best == lists.size()) break;
    const Run& r = lists[best][head[best]++];
    merged.insert(merged.end(), all.begin() + static_cast<ptrdiff_t>(r.begin), all.begin() + static_cast<ptrdiff_t>(r.end));
  }
  std::copy(merged.begin(), merged.end(), all.begin() + static_cast<ptrdiff_t>(begin));
}
}  // namespace

template <typename Line>
void OfflineWorkers::interleave_lists(std::vector<Line>& all) {
  for (size_t i = 0; i < all.size();) {
    const LineOrder& o = *all[i].order;
    size_t j = i + 1;
    while (j < all.size() && all[j].order->pos == o.pos && all[j].order->phase == o.phase) ++j;
    if (o.phase == kTimedOut) interleave_flows(all, i, j);
    i = j;
  }
}

void OfflineWorkers::epoch() {
  {
    std::lock_guard<std::mutex> g(done_m_);
    done_count_ = 0;
  }
  broadcast(Batch::Kind::epoch);
  {
    std::unique_lock<std::mutex> g(done_m_);
    done_cv_.wait(g, [&] { return done_count_ == workers_.size(); });
  }
  // Every worker is idle now: merge their lines in one pipeline's order (LineOrder); a worker's
  // lines of one place keep their order. A flow event is judged where it lands: the judges'
  // alerts and asset events go just before it, as with one pipeline.
  // A line, or (line null) an announcement a worker read there.
  struct Line {
    const LineOrder* order;
    const std::string* type;
    const std::string* line;
    EndedFlow* ended;
    const WorkerSink::Header* header;
    const Note* note;
    size_t stats = 0;  // with no line and no note: pending_stats_[stats - 1]
  };
  std::vector<Line> all;
  for (auto& w : workers_) {
    auto next = w->deferral ? w->deferral->ended.begin() : std::deque<EndedFlow>::iterator{};
    const bool headers = w->sink->headers.size() == w->sink->lines.size();
    static const LineOrder kBeforeAll{};  // lines written outside a packet, tick or the end: none expected
    size_t m = 0, k = 0;
    auto announcements_before = [&](size_t i) {
      for (; k < w->notes.size() && w->notes[k].line <= i && w->notes[k].kind == Note::Kind::announced; ++k)
        all.push_back({&w->notes[k].order, nullptr, nullptr, nullptr, nullptr, &w->notes[k]});
    };
    for (size_t i = 0; i < w->sink->lines.size(); ++i) {
      while (m + 1 < w->marks.size() && w->marks[m + 1].line <= i) ++m;
      const std::string& l = w->sink->lines[i];
      EndedFlow* e = nullptr;
      if (w->deferral && next != w->deferral->ended.end() && next->line == i) e = &*next++;
      const Note* note = nullptr;
      for (announcements_before(i); k < w->notes.size() && w->notes[k].line <= i; announcements_before(i)) {
        if (w->notes[k].line == i) note = &w->notes[k];  // the line's own flow
        ++k;
      }
      bool marked = m < w->marks.size() && w->marks[m].line <= i;
      all.push_back({marked ? &w->marks[m].order : &kBeforeAll, &w->sink->types[i], &l, e,
                     headers ? &w->sink->headers[i] : nullptr, note});
    }
    announcements_before(std::numeric_limits<size_t>::max());
  }
  for (size_t k = 0; k < pending_stats_.size(); ++k)
    all.push_back({&pending_stats_[k].order, nullptr, nullptr, nullptr, nullptr, nullptr, k + 1});
  std::stable_sort(all.begin(), all.end(), [](const Line& a, const Line& b) { return *a.order < *b.order; });
  interleave_lists(all);
  std::vector<std::pair<const LineOrder*, std::pair<size_t, size_t>>> changes;  // (when, (worker, open))
  flows_open_.resize(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i)
    for (auto& [o, open] : workers_[i]->flows_open_changes) changes.push_back({&o, {i, open}});
  std::stable_sort(changes.begin(), changes.end(), [](const auto& a, const auto& b) { return *a.first < *b.first; });
  size_t next_stats = 0;
  for (auto& [o, c] : changes) {
    for (; next_stats < pending_stats_.size() && pending_stats_[next_stats].order < *o; ++next_stats)
      pending_stats_[next_stats].peak = flows_open_peak_;
    flows_open_total_ = flows_open_total_ - flows_open_[c.first] + c.second;
    flows_open_[c.first] = c.second;
    flows_open_peak_ = std::max(flows_open_peak_, flows_open_total_);
  }
  for (; next_stats < pending_stats_.size(); ++next_stats) pending_stats_[next_stats].peak = flows_open_peak_;
  for (auto& l : all) {
    if (l.stats) {
      const PendingStats& ps = pending_stats_[l.stats - 1];
      Counters total;
      uint64_t flows_active = 0;
      for (auto& w : workers_) {
        if (l.stats > w->stats_parts.size()) continue;  // (not reached: every worker notes every one)
        total.merge(w->stats_parts[l.stats - 1].counters);
        flows_active += w->stats_parts[l.stats - 1].flows_active;
      }
      write_stats(ps.ts, ps.packets, ps.bytes, flows_active, std::move(total), ps.dispatch, ps.peak);
      continue;
    }
    if (!l.line) {
      if (l.note->remember(l.note->ip, l.note->port)) ++merged_.counters().at(kAnnouncedServersEvicted);
      continue;
    }
    std::string_view line = *l.line;
    std::string named;
    if (l.note) {
      apply_flow_note(*l.note, line, l.ended, named);
      if (!named.empty()) line = named;
    }
    if (!l.ended) {
      // A protocol event names the devices bound by fingerprint by the time it is merged, as one
      // pipeline names those bound by the time it writes it (nothing to do before any binding).
      std::string annotated;
      if (l.header && l.header->has && annotator_->annotation_generation() != 0 &&
          reannotate_header(line, *l.header, annotated))
        merged_.emit_line(*l.type, annotated);
      else
        merged_.emit_line(*l.type, line);
      continue;
    }
    FlowVerdict verdict = judge_flow(judges_, l.ended->summary, merged_);
    std::string annotated;
    if (l.header && l.header->has && reannotate_header(line, *l.header, annotated)) line = annotated;
    if (verdict.verdict.empty()) merged_.emit_line(*l.type, line);
    else merged_.emit_line(*l.type, with_verdict(line, verdict));
  }
  for (auto& w : workers_) {
    w->sink->lines.clear();
    w->sink->types.clear();
    w->sink->headers.clear();
    w->marks.clear();
    w->flows_open_changes.clear();
    w->notes.clear();
    w->stats_parts.clear();
    if (w->deferral) w->deferral->ended.clear();
  }
  pending_stats_.clear();
}

namespace {
// What `a` adds to a header for `ep`, as it stands in a line: ,"src_device":...,"dst_zone":...
std::string annotation_text(HeaderAnnotator& a, const EventEndpoints& ep) {
  JsonBuffer buf;
  JsonWriter w(buf);
  w.begin_object();
  a.annotate(ep, w);
  w.end_object();
  std::string_view v = buf.view();
  if (v.size() <= 2) return {};
  return "," + std::string(v.substr(1, v.size() - 2));
}
}  // namespace

void OfflineWorkers::apply_flow_note(const Note& n, std::string_view line, EndedFlow* ended, std::string& named) {
  if (n.kind == Note::Kind::spoke_in_clear) {
    remember_app_server(app_servers_, n.ip, n.app);
    return;
  }
  std::string app = tls_app_by_server(n.ip, n.port, app_servers_);
  if (app.empty()) return;
  if (ended) ended->facts.app = app;
  // The pipeline said where it wrote the value: the line is the worker's, as it wrote it.
  constexpr std::string_view kNull = "null";
  const size_t at = n.app_at;
  if (at > line.size() || line.substr(at, kNull.size()) != kNull) return;
  JsonBuffer b;
  JsonWriter w(b);
  w.value(app);
  named.assign(line.substr(0, at));
  named += b.view();
  named += line.substr(at + kNull.size());
}

bool OfflineWorkers::reannotate_header(std::string_view line, const WorkerSink::Header& h, std::string& out) {
  EventEndpoints ep;
  ep.src = h.src;
  ep.dst = h.dst;
  ep.src_mac = h.src_mac;
  ep.dst_mac = h.dst_mac;
  std::string had = annotation_text(*site_annotator_, ep);
  std::string has = annotation_text(*annotator_, ep);
  if (had == has || h.end > line.size() || h.end < had.size() || line.substr(h.end - had.size(), had.size()) != had)
    return false;
  out.assign(line.substr(0, h.end - had.size()));
  out += has;
  out += line.substr(h.end);
  return true;
}

void OfflineWorkers::finish(FlowEnd why) {
  drop_all_routes();
  {
    std::lock_guard<std::mutex> g(done_m_);
    done_count_ = 0;
  }
  broadcast(Batch::Kind::finish, 0, why, clock_);
  {
    std::unique_lock<std::mutex> g(done_m_);
    done_cv_.wait(g, [&] { return done_count_ == workers_.size(); });
  }
  // Merge what is left (epoch() re-waits on idle workers: a no-op broadcast), then the judges'
  // findings over the whole input.
  epoch();
  for (FlowJudge* j : judges_) j->finish(last_ts_, merged_);
  write_merged_stats(last_ts_);
  merged_.flush();
}

void OfflineWorkers::write_merged_stats(Timestamp ts) {
  Counters total;
  uint64_t flows_active = 0;
  for (auto& w : workers_) {
    flows_active += w->pipeline->snapshot().flows_active;  // also sets the worker's memory peak
    total.merge(w->out.counters());
  }
  write_stats(ts, packets_, bytes_, flows_active, std::move(total), dispatch_counters_, flows_open_peak_);
}

void OfflineWorkers::write_stats(Timestamp ts, uint64_t packets, uint64_t bytes, uint64_t flows_active,
                                 Counters total, const Counters& dispatch, size_t peak) {
  StatsSnapshot s;
  s.flows_active = flows_active;
  // Every worker's clock followed the input's, so each counted the same jumps back: the
  // reader's count is the input's.
  total.at("time.backwards") = 0;
  // The peak of the open flows of all workers together, as one flow table's.
  if (total.get("flows.peak_active") != 0) total.at("flows.peak_active") = peak;
  total.merge(dispatch);
  // What the merging thread counted: the sinks (attached to the merged output) and the judges
  // (policy, asset inventory) with the events they wrote.
  total.merge(merged_.counters());
  s.packets = packets;
  s.bytes = bytes;
  s.filter = input_filter_;
  write_stats_event(merged_, ts, s, total);
}

}  // namespace medmon
