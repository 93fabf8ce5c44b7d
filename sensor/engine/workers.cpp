#include "sensor/engine/workers.h"

#include <algorithm>
#include <cstring>

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

OfflineWorkers::OfflineWorkers(int n, const SensorConfig& cfg, Depth depth, const Pseudonymiser& phi,
                               EventOutput& merged, std::vector<FlowJudge*> judges, HeaderAnnotator* annotator)
    : merged_(merged), judges_(depth >= Depth::policy ? std::move(judges) : std::vector<FlowJudge*>{}) {
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->out.add_sink(w->sink);
    w->out.set_annotator(annotator);
    std::vector<FlowJudge*> raw;
    if (!judges_.empty()) {
      w->deferral = std::make_unique<Deferral>(*w->sink);
      raw.push_back(w->deferral.get());
    }
    w->pipeline = std::make_unique<Pipeline>(cfg, depth, w->out, phi, raw);
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) {
    Worker* wp = w.get();
    w->thread = std::thread([this, wp] { run(*wp); });
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
        for (auto& r : b->refs) w.pipeline->packet(b->data.data() + r.offset, r.caplen, r.wirelen, r.ts);
        break;
      case Batch::Kind::linktype:
        w.pipeline->set_linktype(b->dlt);
        break;
      case Batch::Kind::finish:
        w.pipeline->finish(b->why, /*with_stats=*/false);
        w.stats = w.pipeline->snapshot();
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

void OfflineWorkers::broadcast(Batch::Kind kind, int dlt, FlowEnd why) {
  for (auto& w : workers_) {
    if (w->filling && !w->filling->refs.empty()) push(*w, std::move(w->filling));
    w->filling.reset();
    auto b = std::make_unique<Batch>();
    b->kind = kind;
    b->dlt = dlt;
    b->why = why;
    push(*w, std::move(b));
  }
}

void OfflineWorkers::set_linktype(int dlt) {
  peek_ = std::make_unique<Decoder>(dlt, peek_counters_, nullptr);
  peek_->set_peek_only(true);
  broadcast(Batch::Kind::linktype, dlt);
}

void OfflineWorkers::packet(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts) {
  ++packets_;
  bytes_ += wirelen;
  if (ts.usec > last_ts_.usec) last_ts_ = ts;
  Packet p;
  DecodeStatus s = peek_ ? peek_->decode(frame, caplen, wirelen, ts, p) : DecodeStatus::malformed;
  // Undecodable packets all go to worker 0, which reports them.
  size_t idx = 0;
  if (s == DecodeStatus::ok || (s == DecodeStatus::fragment && p.src.family))
    idx = flow_hash(p, s == DecodeStatus::fragment) % workers_.size();
  Worker& w = *workers_[idx];
  if (!w.filling) {
    w.filling = std::make_unique<Batch>();
    w.filling->data.reserve(kBatchPackets * 1600);
    w.filling->refs.reserve(kBatchPackets);
  }
  Batch& b = *w.filling;
  b.refs.push_back({static_cast<uint32_t>(b.data.size()), caplen, wirelen, ts});
  b.data.insert(b.data.end(), frame, frame + caplen);
  if (b.refs.size() >= kBatchPackets) push(w, std::move(w.filling));
  if (++since_epoch_ >= kEpochPackets) {
    since_epoch_ = 0;
    epoch();
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
  // Every worker is idle now: merge their lines, oldest first; ties keep worker order. A flow
  // event is judged where it lands: the judges' alerts go just before it, as with one pipeline.
  struct Line { std::string_view ts; const std::string* type; const std::string* line; EndedFlow* ended; };
  std::vector<Line> all;
  for (auto& w : workers_) {
    auto next = w->deferral ? w->deferral->ended.begin() : std::deque<EndedFlow>::iterator{};
    for (size_t i = 0; i < w->sink->lines.size(); ++i) {
      const std::string& l = w->sink->lines[i];
      EndedFlow* e = nullptr;
      if (w->deferral && next != w->deferral->ended.end() && next->line == i) e = &*next++;
      all.push_back({std::string_view(l).substr(0, std::min<size_t>(l.size(), 40)), &w->sink->types[i], &l, e});
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const Line& a, const Line& b) { return a.ts < b.ts; });
  for (auto& l : all) {
    if (!l.ended) {
      merged_.emit_line(*l.type, *l.line);
      continue;
    }
    FlowVerdict verdict = judge_flow(judges_, l.ended->summary, merged_);
    if (verdict.verdict.empty()) merged_.emit_line(*l.type, *l.line);
    else merged_.emit_line(*l.type, with_verdict(*l.line, verdict));
  }
  for (auto& w : workers_) {
    w->sink->lines.clear();
    w->sink->types.clear();
    if (w->deferral) w->deferral->ended.clear();
  }
}

void OfflineWorkers::finish(FlowEnd why) {
  {
    std::lock_guard<std::mutex> g(done_m_);
    done_count_ = 0;
  }
  broadcast(Batch::Kind::finish, 0, why);
  {
    std::unique_lock<std::mutex> g(done_m_);
    done_cv_.wait(g, [&] { return done_count_ == workers_.size(); });
  }
  // Merge what is left (epoch() re-waits on idle workers: a no-op broadcast), then the judges'
  // findings over the whole input.
  epoch();
  for (FlowJudge* j : judges_) j->finish(last_ts_, merged_);
  Counters total;
  StatsSnapshot s;
  for (auto& w : workers_) {
    total.merge(w->out.counters());
    s.flows_active += w->stats.flows_active;
  }
  // Sink counters are kept by the merged output, where the sinks are attached.
  for (auto& [k, v] : merged_.counters().all())
    if (k.rfind("sink.", 0) == 0) total.at(k) = v;
  s.packets = packets_;
  s.bytes = bytes_;
  write_stats_event(merged_, last_ts_, s, total);
  merged_.flush();
}

}  // namespace medmon
