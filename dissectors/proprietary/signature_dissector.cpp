// Signature probes, the per-signature dissector (framing, field extraction, events) and the
// process-wide registry of loaded signatures.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>

#include "dissectors/proprietary/signature.h"
#include "sensor/common/utf8.h"

#ifndef MEDMON_SIGNATURES_BUILTIN
#define MEDMON_SIGNATURES_BUILTIN ""
#endif

namespace medmon {
namespace proprietary {

namespace {
constexpr size_t kProbeWindow = 512;
constexpr uint32_t kDefaultRegexMin = 16;  // a probe regex that fails on this many bytes is final
constexpr size_t kMaxValues = 8;            // distinct values kept per field for the flow summary
constexpr size_t kMaxValueLen = 256;
thread_local uint64_t delimiter_scanned = 0;
uint64_t& delimiter_scan_count() { return delimiter_scanned; }
}  // namespace

uint64_t delimiter_bytes_scanned() { return delimiter_scanned; }

void decode_text(std::string_view in, TextEncoding enc, std::string& out) {
  out.clear();
  const auto* u = reinterpret_cast<const uint8_t*>(in.data());
  if (enc == TextEncoding::bytes) {
    out.assign(in.substr(0, std::min(in.find('\0'), in.size())));
  } else if (enc == TextEncoding::latin1) {
    append_latin1_as_utf8(out, in.substr(0, std::min(in.find('\0'), in.size())));
  } else {
    bool be = enc == TextEncoding::utf16be;
    auto unit = [&](size_t i) { return static_cast<uint32_t>(be ? u[i] << 8 | u[i + 1] : u[i + 1] << 8 | u[i]); };
    for (size_t i = 0; i + 1 < in.size(); i += 2) {
      uint32_t c = unit(i);
      if (c == 0) return;
      if (c >= 0xD800 && c < 0xDC00 && i + 3 < in.size() && unit(i + 2) >= 0xDC00 && unit(i + 2) < 0xE000) {
        c = 0x10000 + ((c - 0xD800) << 10) + (unit(i + 2) - 0xDC00);
        i += 2;
      } else if (c >= 0xD800 && c < 0xE000) {
        c = 0xFFFD;  // a lone surrogate
      }
      append_utf8(out, c);
    }
    if (in.size() % 2) append_utf8(out, 0xFFFD);  // half a character at the end
  }
}

void unescape(std::span<const uint8_t> in, const Framing& fr, std::vector<uint8_t>& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != fr.escape) { out.push_back(in[i]); continue; }
    if (++i < in.size()) out.push_back(in[i] ^ fr.escape_xor);
  }
}

void widen(std::span<const uint8_t> in, std::wstring& out) {
  out.resize(in.size());
  for (size_t i = 0; i < in.size(); ++i) out[i] = in[i];
}

Probe Signature::probe(std::span<const uint8_t> first, Dir dir) const {
  if (framing.has_escape) {
    // The record's bytes, as fields read them: an escaped byte must not shift those after it.
    thread_local std::vector<uint8_t> plain;  // probes run on every worker at once
    unescape(first, framing, plain);
    bool cut = !first.empty() && first.back() == framing.escape;  // its byte is still to come
    return probe_plain(plain, dir, cut);
  }
  return probe_plain(first, dir, false);
}

Probe Signature::probe_plain(std::span<const uint8_t> first, Dir dir, bool cut) const {
  bool undecided = cut;
  for (const ProbeRule& r : probes) {
    if (r.dir == DirFilter::to_server && dir != Dir::to_server) continue;
    if (r.dir == DirFilter::to_client && dir != Dir::to_client) continue;
    if (first.size() < r.min_length) { undecided = true; continue; }
    bool ok = true, more = false;
    for (const ByteMatch& b : r.bytes) {
      if (b.offset + b.value.size() > first.size()) { more = true; continue; }
      for (size_t i = 0; i < b.value.size() && ok; ++i) {
        uint8_t m = b.mask.empty() ? 0xFF : b.mask[i];
        if ((first[b.offset + i] & m) != b.value[i]) ok = false;
      }
      if (!ok) break;
    }
    if (!ok) continue;
    if (more) { undecided = true; continue; }
    if (r.has_regex) {
      thread_local std::wstring w;  // probes run on every worker at once
      widen(first.first(std::min(first.size(), kProbeWindow)), w);
      if (!std::regex_search(w, r.regex)) {
        if (w.size() < std::max(r.min_length, kDefaultRegexMin)) undecided = true;
        continue;
      }
    }
    return Probe::yes;
  }
  return undecided ? Probe::need_more : Probe::no;
}

namespace {

bool is_numeric(FieldType t) { return t != FieldType::ascii && t != FieldType::hex; }

class SignatureDissector final : public Dissector {
 public:
  explicit SignatureDissector(std::shared_ptr<const Signature> sig) : sig_(std::move(sig)), values_(sig_->fields.size()) {}

  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override {
    DirState& s = d_[static_cast<int>(dir)];
    Consumed r = frame(dir, s, data, ctx);
    // Each byte counts once however the stream was cut: when it is consumed; a tail given back
    // (the stream feeder holds it and gives it again) when it is consumed later, or at a gap or
    // the end of the direction.
    size_t used = std::min(r.used, data.size());
    s.bytes += used;
    s.held = data.size() - used;
    return r;
  }

  void on_gap(Dir dir, uint64_t, FlowContext& ctx) override {
    DirState& s = d_[static_cast<int>(dir)];
    s.bytes += s.held;
    s.held = 0;
    s.end_searched = 0;
    // Length framing cannot resynchronise after a hole; delimiters can, at the next one.
    if (sig_->framing.kind == Framing::Kind::length) s.lost = true;
    if (sig_->framing.kind == Framing::Kind::delimiters) s.resync = true;
    // Unframed: the bytes after the hole are not at their offsets.
    if (sig_->framing.kind == Framing::Kind::none && !s.first_done) first_message(dir, s, ctx);
  }
  void on_end(Dir dir, FlowContext& ctx) override {
    DirState& s = d_[static_cast<int>(dir)];
    s.bytes += s.held;
    s.held = 0;
    if (sig_->framing.kind == Framing::Kind::none && !s.first_done) first_message(dir, s, ctx);
  }

  void on_flow_end(FlowContext& ctx) override {
    auto& w = ctx.begin_event("proprietary");
    w.object("proprietary");
    w.field("signature", sig_->name);
    if (!sig_->vendor.empty()) w.field("vendor", sig_->vendor);
    w.field("summary", true);
    if (sig_->framing.kind != Framing::Kind::none || ctx.endpoints().proto == 17) {
      w.field("messages_toserver", d_[0].messages);
      w.field("messages_toclient", d_[1].messages);
    }
    w.field("bytes_toserver", d_[0].bytes);
    w.field("bytes_toclient", d_[1].bytes);
    if (d_[0].errors + d_[1].errors) w.field("framing_errors", d_[0].errors + d_[1].errors);
    if (d_[0].field_errors + d_[1].field_errors) w.field("field_errors", d_[0].field_errors + d_[1].field_errors);
    bool any = std::any_of(values_.begin(), values_.end(), [](auto& v) { return !v.empty(); });
    if (any) {
      w.object("fields");
      for (size_t i = 0; i < values_.size(); ++i) {
        if (values_[i].empty()) continue;
        w.array(sig_->fields[i].name);
        for (auto& v : values_[i]) write_value(w, sig_->fields[i], v);
        w.end_array();
      }
      w.end_object();
    }
    if (!phi_.empty()) {
      w.array("phi_fields");
      for (auto& p : phi_) w.value(p);
      w.end_array();
    }
    w.end_object();
    ctx.end_event();
  }

 private:
  struct DirState {
    uint64_t messages = 0, bytes = 0, errors = 0;
    size_t held = 0;  // the tail of the last delivery left unconsumed (not counted yet)
    bool first_done = false, lost = false, junk_reported = false;
    bool resync = false;  // delimiters: bytes were lost, drop up to the next delimiter
    // Delimiters: how far into the held record (given again from its start) the end delimiter
    // was already searched for, so a long record sent in small segments is searched once.
    size_t end_searched = 0;
    std::vector<uint8_t> window;  // unframed TCP: the first regex_window bytes, until read
    uint64_t window_at = 0;       // the stream offset of its first byte
    uint64_t field_errors = 0;    // values whose length ran past the element they lie in
  };

  void first_message(Dir dir, DirState& s, FlowContext& ctx) {
    s.first_done = true;
    if (!s.window.empty()) message(dir, s.window, s.window_at, ctx);
    std::vector<uint8_t>().swap(s.window);
  }

  Consumed frame(Dir dir, DirState& s, std::span<const uint8_t> data, FlowContext& ctx) {
    const bool udp = ctx.endpoints().proto == 17;
    const Framing& fr = sig_->framing;
    if (s.lost) return {data.size(), 0, 0, false};
    switch (fr.kind) {
      case Framing::Kind::none:
        if (udp) {
          message(dir, data, ctx.stream_offset(), ctx);
        } else if (!s.first_done) {
          // Fields are read from the first regex_window bytes of the direction however the
          // stream was cut: collect them, read them once they are all here (or at a gap or the end).
          size_t take = std::min<size_t>(data.size(), sig_->regex_window - s.window.size());
          if (s.window.empty()) s.window_at = ctx.stream_offset();
          s.window.insert(s.window.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
          if (s.window.size() >= sig_->regex_window) first_message(dir, s, ctx);
        }
        return {data.size(), 0, 0, false};
      case Framing::Kind::length: {
        size_t used = 0;
        const size_t hdr = fr.offset + fr.size;
        while (used < data.size()) {
          auto rest = data.subspan(used);
          if (rest.size() < hdr) {
            if (udp) { framing_error(dir, s, "truncated_message", ctx.stream_offset() + used, ctx); used = data.size(); break; }
            return {used, hdr, 0, false};
          }
          uint64_t v = 0;
          for (uint32_t i = 0; i < fr.size; ++i) {
            uint8_t b = rest[fr.offset + i];
            if (fr.big_endian) v = (v << 8) | b;
            else v |= static_cast<uint64_t>(b) << (8 * i);
          }
          int64_t len = static_cast<int64_t>(v) + fr.adjust;
          if (len < static_cast<int64_t>(hdr) || len > static_cast<int64_t>(fr.max_message)) {
            framing_error(dir, s, "bad_length", ctx.stream_offset() + used, ctx);
            if (!udp) s.lost = true;  // no way to find the next message boundary
            return {data.size(), 0, 0, false};
          }
          size_t n = static_cast<size_t>(len);
          if (rest.size() < n) {
            if (udp) { framing_error(dir, s, "truncated_message", ctx.stream_offset() + used, ctx); message(dir, rest, ctx.stream_offset() + used, ctx); used = data.size(); break; }
            return {used, n, 0, false};
          }
          message(dir, rest.first(n), ctx.stream_offset() + used, ctx);
          used += n;
        }
        return {used, 0, 0, false};
      }
      case Framing::Kind::delimiters: {
        size_t used = 0;
        std::string_view all(reinterpret_cast<const char*>(data.data()), data.size());
        std::string_view start(reinterpret_cast<const char*>(fr.start.data()), fr.start.size());
        std::string_view end(reinterpret_cast<const char*>(fr.end.data()), fr.end.size());
        // One flag both opening and closing records (7e ... 7e, as HDLC): a flag that closes a
        // record may open the next one, and two flags in a row hold no record, the first closed
        // one (or fills the line). So the stream is back in step after lost bytes whichever flag
        // comes first.
        const bool flag = start == end;
        while (used < data.size()) {
          std::string_view rest = all.substr(used);
          size_t st = rest.find(start);
          delimiter_scan_count() += st == std::string_view::npos ? rest.size() : st + start.size();
          if (st == std::string_view::npos) {
            // Keep a possible partial start delimiter.
            size_t keep = std::min(rest.size(), start.size() - 1);
            if (rest.size() - keep > 0 && !s.resync) junk(dir, s, ctx.stream_offset() + used, ctx);
            used += rest.size() - keep;
            if (udp) { used = data.size(); }
            break;
          }
          // After lost bytes, what comes before the next delimiter is the rest of a broken
          // record, not bytes outside a frame.
          if (st > 0 && !s.resync) junk(dir, s, ctx.stream_offset() + used, ctx);
          s.resync = false;
          used += st;
          rest = rest.substr(st);
          if (flag && rest.size() >= 2 * start.size() && rest.substr(start.size(), start.size()) == start) {
            used += start.size();
            continue;
          }
          // The held record comes first in this delivery: resume where its search stopped.
          size_t from = start.size();
          if (used == 0 && s.end_searched > from) from = std::min(s.end_searched, rest.size());
          s.end_searched = 0;
          size_t e = rest.find(end, from);
          delimiter_scan_count() += (e == std::string_view::npos ? rest.size() : e + end.size()) - from;
          if (e == std::string_view::npos) {
            if (rest.size() > fr.max_message) {
              framing_error(dir, s, "message_too_long", ctx.stream_offset() + used, ctx);
              used += rest.size();
              s.resync = true;  // the record's tail follows: drop it up to the next delimiter
              break;
            }
            if (udp) { framing_error(dir, s, "truncated_message", ctx.stream_offset() + used, ctx); used = data.size(); break; }
            // An end delimiter may still start in its last end.size() - 1 bytes.
            if (rest.size() >= end.size()) s.end_searched = rest.size() - (end.size() - 1);
            return {used, rest.size() + 1, 0, false};
          }
          size_t n = e + end.size();
          if (n > fr.max_message) framing_error(dir, s, "message_too_long", ctx.stream_offset() + used, ctx);
          else message(dir, data.subspan(used, n), ctx.stream_offset() + used, ctx);
          // A closing flag stays to open the next record, unless it ends the datagram.
          used += flag && (!udp || used + n < data.size()) ? n - end.size() : n;
        }
        return {used, 0, 0, false};
      }
    }
    return {data.size(), 0, 0, false};
  }

  static std::string& identity_member(DeviceIdentity& d, IdentityPart p) {
    switch (p) {
      case IdentityPart::udi: return d.udi;
      case IdentityPart::serial: return d.serial;
      case IdentityPart::type: return d.type;
      case IdentityPart::manufacturer: return d.manufacturer;
      case IdentityPart::model: return d.model;
      case IdentityPart::version: return d.version;
      case IdentityPart::id:
      case IdentityPart::none: break;
    }
    return d.id;
  }

  static void write_value(JsonWriter& w, const Field& f, const std::string& v) {
    // A PHI field holds its pseudonym, a string even when the field is numeric.
    if (is_numeric(f.type) && !f.by_regex && !f.phi) w.value(static_cast<uint64_t>(std::strtoull(v.c_str(), nullptr, 10)));
    else w.value(v);
  }

  void framing_error(Dir dir, DirState& s, const char* name, uint64_t off, FlowContext& ctx) {
    if (s.errors++ < 8) ctx.anomaly("proprietary", name, off, sig_->name);
  }
  void junk(Dir, DirState& s, uint64_t off, FlowContext& ctx) {
    if (s.junk_reported) return;
    s.junk_reported = true;
    ctx.anomaly("proprietary", "bytes_outside_frame", off, sig_->name);
  }

  static size_t number_size(FieldType t) {
    return t == FieldType::u8 ? 1 : (t == FieldType::u16be || t == FieldType::u16le) ? 2 : 4;
  }

  // The number of type f.type at m[at]; false when the message ends before it.
  static bool number_at(const Field& f, std::span<const uint8_t> m, size_t at, uint64_t& n) {
    const size_t size = number_size(f.type);
    if (at > m.size() || m.size() - at < size) return false;
    const bool be = f.type == FieldType::u16be || f.type == FieldType::u32be;
    n = 0;
    for (size_t i = 0; i < size; ++i) n |= uint64_t(m[at + i]) << (8 * (be ? size - 1 - i : i));
    return true;
  }

  // The value that follows a length at m[at] (f.length_prefix), in the message (past the regex
  // window too) up to `end`; false when the length runs past it.
  static bool prefixed(const Field& f, std::span<const uint8_t> m, size_t at, size_t end, std::string_view& value) {
    const size_t size = number_size(f.type);
    uint64_t n = 0;
    if (end > m.size() || at > end || end - at < size || !number_at(f, m, at, n)) return false;
    if (n > end - at - size) return false;
    // Enough bytes for kMaxValueLen bytes of text whatever the encoding.
    value = std::string_view(reinterpret_cast<const char*>(m.data()) + at + size, std::min<size_t>(n, 4 * kMaxValueLen));
    return true;
  }

  // Value of field f in message m; false when the message is too short / the regex misses.
  // `overrun` receives the offset in m of a length that ran past the element it lies in
  // (f.within), npos when none did.
  bool extract(const Field& f, std::span<const uint8_t> m, std::string& out, size_t& overrun) {
    out.clear();
    overrun = std::string_view::npos;
    if (f.has_when) {
      const ByteMatch& b = f.when;
      if (b.offset > m.size() || m.size() - b.offset < b.value.size()) return false;
      for (size_t i = 0; i < b.value.size(); ++i)
        if ((m[b.offset + i] & (b.mask.empty() ? 0xFF : b.mask[i])) != b.value[i]) return false;
    }
    if (f.by_regex) {
      widen(m.first(std::min<size_t>(m.size(), sig_->regex_window)), wide_);
      std::wsmatch mt;
      auto from = wide_.cbegin();
      auto flags = std::regex_constants::match_default;
      // A length-prefixed value: the first match whose length fits the message (the bytes the
      // regex looks for may also occur inside other values).
      for (int tries = 0; tries < 8 && std::regex_search(from, wide_.cend(), mt, f.regex, flags); ++tries) {
        if (static_cast<size_t>(f.group) >= mt.size() || !mt[f.group].matched) return false;
        // One wide character per byte: the capture's position is the same in the message.
        const size_t at = static_cast<size_t>(mt[f.group].first - wide_.cbegin());
        std::string_view cap(reinterpret_cast<const char*>(m.data()) + at, static_cast<size_t>(mt.length(f.group)));
        // The element the value lies in ends where its length says (an attribute's length):
        // a String whose own length runs past it is not read, and is reported.
        size_t end = m.size();
        if (f.length_prefix && f.within && mt[f.within].matched) {
          const size_t wat = static_cast<size_t>(mt[f.within].first - wide_.cbegin());
          uint64_t n = 0;
          const size_t from = wat + number_size(f.type);
          if (number_at(f, m, wat, n) && from <= m.size()) end = static_cast<size_t>(std::min<uint64_t>(m.size(), from + n));
          if (std::string_view v; end < m.size() && !prefixed(f, m, at, end, v) && prefixed(f, m, at, m.size(), v) &&
                                  overrun == std::string_view::npos)
            overrun = at;
        }
        if (f.length_prefix && !prefixed(f, m, at, end, cap)) {
          if (mt[0].first == wide_.cend()) return false;
          from = mt[0].first + 1;
          flags = std::regex_constants::match_prev_avail;
          continue;
        }
        decode_text(cap, f.encoding, out);  // bytes: as they are, to the first NUL
        if (out.size() > kMaxValueLen) out.resize(kMaxValueLen);
        return true;
      }
      return false;
    }
    if (f.offset > m.size() || m.size() - f.offset < f.length) return false;
    auto b = m.subspan(f.offset, f.length);
    char buf[24];
    switch (f.type) {
      case FieldType::u8: std::snprintf(buf, sizeof buf, "%u", b[0]); out = buf; break;
      case FieldType::u16be: std::snprintf(buf, sizeof buf, "%u", unsigned(b[0] << 8 | b[1])); out = buf; break;
      case FieldType::u16le: std::snprintf(buf, sizeof buf, "%u", unsigned(b[1] << 8 | b[0])); out = buf; break;
      case FieldType::u32be:
        std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3]));
        out = buf;
        break;
      case FieldType::u32le:
        std::snprintf(buf, sizeof buf, "%lu", static_cast<unsigned long>(uint32_t(b[3]) << 24 | uint32_t(b[2]) << 16 | uint32_t(b[1]) << 8 | b[0]));
        out = buf;
        break;
      case FieldType::ascii:
        decode_text(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), f.encoding, out);
        while (!out.empty() && out.back() == ' ') out.pop_back();
        break;
      case FieldType::hex:
        for (uint8_t c : b) { std::snprintf(buf, sizeof buf, "%02x", c); out += buf; }
        break;
    }
    return true;
  }

  // One message, `off` the stream offset of its first byte.
  void message(Dir dir, std::span<const uint8_t> wire, uint64_t off, FlowContext& ctx) {
    DirState& s = d_[static_cast<int>(dir)];
    ++s.messages;
    const auto& fields = sig_->fields;
    if (fields.empty() && !sig_->report_messages) return;
    std::span<const uint8_t> m = wire;
    if (sig_->framing.has_escape) {
      unescape(wire, sig_->framing, plain_);
      m = plain_;
    }
    JsonWriter* w = nullptr;
    if (sig_->report_messages) {
      w = &ctx.begin_event("proprietary");
      w->object("proprietary");
      w->field("signature", sig_->name);
      w->field("direction", dir_name(dir));
      w->field("length", static_cast<uint64_t>(wire.size()));
      w->object("fields");
    }
    msg_phi_.clear();
    DeviceIdentity id;
    bool have_id = false;
    for (size_t i = 0; i < fields.size(); ++i) {
      const Field& f = fields[i];
      size_t overrun = std::string_view::npos;
      const bool found = extract(f, m, value_, overrun);
      if (overrun != std::string_view::npos && s.field_errors++ < 8)
        ctx.anomaly("proprietary", "field_past_length", off + overrun, sig_->name);
      if (!found) continue;
      if (f.identity != IdentityPart::none && !value_.empty()) {
        have_id = true;
        identity_member(id, f.identity) = value_;
      }
      if (f.phi) {
        if (value_.empty()) continue;
        value_ = ctx.pseudonym(value_);
        std::string name = sig_->name + "." + f.name;
        ctx.facts().add_phi(name);
        if (std::find(phi_.begin(), phi_.end(), name) == phi_.end()) phi_.push_back(name);
        msg_phi_.push_back(std::move(name));
      } else if (!attrs_set_[i % attrs_set_.size()] && !value_.empty()) {
        attrs_set_[i % attrs_set_.size()] = true;
        ctx.facts().set_attr(sig_->name + "." + f.name, value_);
      }
      if (w) { w->key(f.name); write_value(*w, f, value_); }
      auto& vals = values_[i];
      if (vals.size() < kMaxValues && std::find(vals.begin(), vals.end(), value_) == vals.end()) vals.push_back(value_);
    }
    if (have_id) {
      // The device that sent the message describes itself (asset inventory).
      id.client = dir == Dir::to_server;
      id.source = sig_->name;
      ctx.facts().add_identity(std::move(id));
    }
    if (w) {
      w->end_object();
      if (!msg_phi_.empty()) {
        w->array("phi_fields");
        for (auto& p : msg_phi_) w->value(p);
        w->end_array();
      }
      w->end_object();
      ctx.end_event();
    }
  }

  std::shared_ptr<const Signature> sig_;
  std::array<DirState, 2> d_;
  std::vector<std::vector<std::string>> values_;
  std::vector<std::string> phi_, msg_phi_;
  std::array<bool, 64> attrs_set_{};
  std::string value_;
  std::wstring wide_;
  std::vector<uint8_t> plain_;  // the message with its escapes undone
};

// ---- registry ----

constexpr size_t kSlots = 64;

struct Registry {
  std::mutex mu;
  std::vector<std::shared_ptr<const Signature>> sigs;
  std::vector<std::shared_ptr<const Signature>> slotted;  // those with an entry of their own, slot order
  std::deque<DissectorInfo> infos;
  std::vector<const DissectorInfo*> info_ptrs;
  std::vector<std::vector<uint16_t>> ports;  // storage for port_hints spans
};

Registry& raw_registry() {
  static Registry r;
  return r;
}

template <size_t I>
Probe slot_probe(std::span<const uint8_t> first, Dir dir) {
  return raw_registry().slotted[I]->probe(first, dir);
}
std::unique_ptr<Dissector> make_dispatcher_for(std::shared_ptr<const Signature> sig);
template <size_t I>
std::unique_ptr<Dissector> slot_make() {
  return make_dispatcher_for(raw_registry().slotted[I]);
}
template <size_t... I>
constexpr auto slot_table(std::index_sequence<I...>) {
  return std::array<std::pair<Probe (*)(std::span<const uint8_t>, Dir), std::unique_ptr<Dissector> (*)()>, sizeof...(I)>{
      std::make_pair(&slot_probe<I>, &slot_make<I>)...};
}
const auto kSlotFns = slot_table(std::make_index_sequence<kSlots>{});

std::vector<LoadError> add_locked(Registry& r, const std::string& dir) {
  LoadResult lr = load_signatures(dir);
  for (auto& s : lr.signatures) {
    auto dup = std::find_if(r.sigs.begin(), r.sigs.end(), [&](auto& o) { return o->name == s->name; });
    if (dup != r.sigs.end()) {
      lr.errors.push_back({s->file, s->line, s->column, "signature '" + s->name + "' is already loaded from " + (*dup)->file});
      continue;
    }
    r.sigs.push_back(s);
    // A signature that names ports gets its own entry, probed before the built-in dissectors on
    // those ports (and only there: elsewhere the proprietary entries probe it after them). The
    // slots go to the first kSlots that name ports, however many without ports came before.
    const size_t i = r.slotted.size();
    if (i < kSlots && !s->ports.empty()) {
      r.slotted.push_back(s);
      r.ports.push_back(s->ports);
      DissectorInfo info;
      info.name = "proprietary";
      info.transport = s->transport;
      info.probe = kSlotFns[i].first;
      info.make = kSlotFns[i].second;
      info.port_hints = std::span<const uint16_t>(r.ports.back());
      info.only_on_port_hints = true;
      r.infos.push_back(info);
      r.info_ptrs.push_back(&r.infos.back());
    }
  }
  return std::move(lr.errors);
}

// Loads the shipped signatures and $MEDMON_SIGNATURES_DIR once; errors go to stderr (there is
// no event stream yet when the first probe runs).
Registry& registry() {
  static Registry& r = [] () -> Registry& {
    Registry& reg = raw_registry();
    std::lock_guard<std::mutex> lock(reg.mu);
    reg.ports.reserve(kSlots);
    std::error_code ec;
    std::vector<std::string> dirs;
    if (*MEDMON_SIGNATURES_BUILTIN && std::filesystem::is_directory(MEDMON_SIGNATURES_BUILTIN, ec)) dirs.emplace_back(MEDMON_SIGNATURES_BUILTIN);
    if (const char* env = std::getenv("MEDMON_SIGNATURES_DIR"); env && *env) dirs.emplace_back(env);
    for (auto& d : dirs)
      for (auto& e : add_locked(reg, d)) std::fprintf(stderr, "medmon: signature: %s\n", e.str().c_str());
    return reg;
  }();
  return r;
}

// The registry entries: probe every signature of the flow's transport; the dissector made is
// chosen again on the first bytes it is given (the same bytes the probe saw).
template <Transport T>
Probe any_probe(std::span<const uint8_t> first, Dir dir) {
  bool undecided = false;
  for (auto& s : registry().sigs) {
    if ((static_cast<uint8_t>(s->transport) & static_cast<uint8_t>(T)) == 0) continue;
    Probe p = s->probe(first, dir);
    if (p == Probe::yes) return p;
    if (p == Probe::need_more) undecided = true;
  }
  return undecided ? Probe::need_more : Probe::no;
}

// The dissector of a proprietary entry: the signature is chosen on the first bytes, among those of
// the entry's transport, or is the one signature of an entry made for it.
class Dispatcher final : public Dissector {
 public:
  Dispatcher(Transport transport, std::shared_ptr<const Signature> only) : transport_(transport), only_(std::move(only)) {}

  // The stream feeder names the bytes that claimed the flow before it gives any: the signature is
  // chosen on them, whichever direction's bytes come first (a request the client sent before
  // the server's answer matched).
  void on_claim(Dir dir, std::span<const uint8_t> probed, FlowContext& ctx) override { choose(dir, probed, ctx); }

  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override {
    if (!inner_) {
      // Not claimed through the stream feeder: the first bytes given are those the probe saw.
      choose(dir, data, ctx);
      if (!inner_) {
        if (ctx.endpoints().proto == 17) return {data.size(), 0, 0, false};  // the next datagram may match
        ctx.facts().app.clear();
        return {0, 0, 0, true};
      }
    }
    return inner_->on_data(dir, data, ctx);
  }
  void on_gap(Dir dir, uint64_t n, FlowContext& ctx) override { if (inner_) inner_->on_gap(dir, n, ctx); }
  void on_end(Dir dir, FlowContext& ctx) override { if (inner_) inner_->on_end(dir, ctx); }
  void on_flow_end(FlowContext& ctx) override {
    if (inner_) inner_->on_flow_end(ctx);
    else if (ctx.endpoints().proto == 17) ctx.facts().app.clear();
  }

 private:
  void choose(Dir dir, std::span<const uint8_t> first, FlowContext& ctx) {
    auto window = first.first(std::min(first.size(), kProbeWindow));
    if (only_) {
      if (only_->probe(window, dir) == Probe::yes) use(only_, ctx);
      return;
    }
    for (auto& s : registry().sigs) {
      if ((static_cast<uint8_t>(s->transport) & static_cast<uint8_t>(transport_)) == 0) continue;
      if (s->probe(window, dir) == Probe::yes) { use(s, ctx); return; }
    }
  }
  void use(const std::shared_ptr<const Signature>& s, FlowContext& ctx) {
    inner_ = make_dissector(s);
    ctx.facts().app.assign(s->name);
    // The stream feeder counted the flow as app.proprietary.flows (the entry that claimed
    // it); this is its share of that count, not a second app count.
    ++ctx.counters().at(std::string("proprietary.").append(s->name).append(".flows"));
  }

  Transport transport_;
  std::shared_ptr<const Signature> only_;
  std::unique_ptr<Dissector> inner_;
};

template <Transport T>
std::unique_ptr<Dissector> make_dispatcher() { return std::make_unique<Dispatcher>(T, nullptr); }
std::unique_ptr<Dissector> make_dispatcher_for(std::shared_ptr<const Signature> sig) {
  Transport t = sig->transport;
  return std::make_unique<Dispatcher>(t, std::move(sig));
}

}  // namespace

std::unique_ptr<Dissector> make_dissector(std::shared_ptr<const Signature> sig) {
  return std::make_unique<SignatureDissector>(std::move(sig));
}

std::vector<LoadError> add_signatures(const std::string& dir) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return add_locked(r, dir);
}

std::vector<std::shared_ptr<const Signature>> registered() { return registry().sigs; }

std::span<const DissectorInfo* const> signature_dissectors() {
  Registry& r = registry();
  return {r.info_ptrs.data(), r.info_ptrs.size()};
}

const char* builtin_dir() { return MEDMON_SIGNATURES_BUILTIN; }

}  // namespace proprietary

const DissectorInfo kProprietaryInfo = {
    .name = "proprietary",
    .transport = Transport::tcp,
    .probe = &proprietary::any_probe<Transport::tcp>,
    .make = &proprietary::make_dispatcher<Transport::tcp>,
    .port_hints = {},
};

const DissectorInfo kProprietaryUdpInfo = {
    .name = "proprietary",
    .transport = Transport::udp,
    .probe = &proprietary::any_probe<Transport::udp>,
    .make = &proprietary::make_dispatcher<Transport::udp>,
    .port_hints = {},
};

}  // namespace medmon
