#include "dissectors/poct1/poct1_dissector.h"

#include "dissectors/api/xml_prolog.h"
#include "dissectors/api/xml_text.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace medmon {
namespace poct1 {

namespace {

constexpr size_t kMaxMessage = 1u << 20;  // 1 MiB: far above any POCT1-A message
constexpr size_t kMaxList = 32;
constexpr uint16_t kPorts[] = {5010, 8400, 9000, 6000};

using xml::kNotXml;
using xml::root_start;
using xml::space;
bool upper(char c) { return c >= 'A' && c <= 'Z'; }

// Root element name "ABC.R0n" at s[0] == '<'. Returns its length, 0 when not POCT1, npos when
// more bytes are needed.
size_t root_name(std::string_view s) {
  if (s.size() < 9) {
    // Check what we have so far.
    for (size_t i = 1; i < s.size(); ++i) {
      char c = s[i];
      bool ok = (i <= 3) ? upper(c) : (i == 4) ? c == '.' : (i == 5) ? c == 'R' : (i == 6) ? c == '0' : (c >= '0' && c <= '9');
      if (!ok) return 0;
    }
    return std::string_view::npos;
  }
  if (!upper(s[1]) || !upper(s[2]) || !upper(s[3]) || s[4] != '.' || s[5] != 'R' || s[6] != '0' || s[7] < '0' || s[7] > '9')
    return 0;
  if (s[8] != '>' && !space(s[8]) && s[8] != '/') return 0;
  return 7;
}

}  // namespace

void for_each_value(std::string_view x, const std::function<void(std::string_view, std::string_view)>& f) {
  std::string decoded;
  size_t i = 0;
  while ((i = x.find('<', i)) != std::string_view::npos) {
    size_t name_start = i + 1;
    if (name_start >= x.size()) return;
    // Comments, CDATA sections and processing instructions are skipped whole: what they hold
    // is no element.
    std::string_view item_start, item_end;
    if (x.substr(i, 4) == "<!--") item_start = "<!--", item_end = "-->";
    else if (x.substr(i, 9) == "<![CDATA[") item_start = "<![CDATA[", item_end = "]]>";
    else if (x.substr(i, 2) == "<?") item_start = "<?", item_end = "?>";
    if (!item_end.empty()) {
      size_t e = x.find(item_end, i + item_start.size());
      if (e == std::string_view::npos) return;
      i = e + item_end.size();
      continue;
    }
    char c0 = x[name_start];
    if (c0 == '/' || c0 == '!') { i = name_start; continue; }
    size_t tag_end = x.find('>', name_start);
    if (tag_end == std::string_view::npos) return;
    size_t n = name_start;
    while (n < tag_end && !space(x[n]) && x[n] != '/') ++n;
    std::string_view name = x.substr(name_start, n - name_start);
    // Attribute V="..." (or V='...') inside the tag.
    size_t a = n;
    while (a < tag_end) {
      while (a < tag_end && space(x[a])) ++a;
      if (a >= tag_end || x[a] == '/') break;
      size_t eq = a;
      while (eq < tag_end && x[eq] != '=' && !space(x[eq])) ++eq;
      std::string_view attr = x.substr(a, eq - a);
      while (eq < tag_end && space(x[eq])) ++eq;
      if (eq >= tag_end || x[eq] != '=') break;
      size_t q = eq + 1;
      while (q < tag_end && space(x[q])) ++q;
      if (q >= tag_end || (x[q] != '"' && x[q] != '\'')) break;
      size_t qe = x.find(x[q], q + 1);
      if (qe == std::string_view::npos || qe > tag_end) {
        // '>' inside a quoted value: the tag ends after the closing quote.
        if (qe == std::string_view::npos) return;
        tag_end = x.find('>', qe);
        if (tag_end == std::string_view::npos) return;
      }
      if (attr == "V") {
        decoded.clear();
        xml::append_decoded(x.substr(q + 1, qe - q - 1), decoded);
        f(name, decoded);
      }
      a = qe + 1;
    }
    i = tag_end;
  }
}

Probe probe(std::span<const uint8_t> first, Dir) {
  std::string_view s(reinterpret_cast<const char*>(first.data()), first.size());
  size_t r = root_start(s);
  if (r == kNotXml) return Probe::no;
  if (r == std::string_view::npos) return s.size() >= 512 ? Probe::no : Probe::need_more;
  size_t n = root_name(s.substr(r));
  if (n == 0) return Probe::no;
  if (n == std::string_view::npos) return Probe::need_more;
  return Probe::yes;
}

namespace {

class Poct1Dissector final : public Dissector {
 public:
  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override {
    DirState& s = d_[static_cast<int>(dir)];
    std::string_view v(reinterpret_cast<const char*>(data.data()), data.size());
    // What an earlier call found stands in the bytes it held, given again now with more behind
    // them; fewer bytes are not those (a caller that does not hold them): start afresh.
    if (v.size() < s.held) s.restart();
    size_t used = 0;
    for (;;) {
      std::string_view rest = v.substr(used);
      if (rest.empty()) return {used, 0, 0, false};
      if (s.resync) {
        // The rest of an over-long message: skipped, without an anomaly of its own, up to the
        // next root start tag (the next message's prolog goes with it).
        size_t p = 0, n = 0;
        while ((p = rest.find('<', p)) != std::string_view::npos && (n = root_name(rest.substr(p))) == 0) ++p;
        if (p == std::string_view::npos) { used += rest.size(); continue; }
        used += p;
        if (n == std::string_view::npos) return {used, rest.size() - p + 1, 0, false};  // a tag cut short
        s.resync = false;
        continue;
      }
      size_t r;
      if (s.root) {
        r = s.root - 1;  // found by an earlier call: the prolog is not read again
      } else {
        r = root_start(rest, s.prolog);
        // A prolog longer than a message may be, wherever the stream was cut: the scan stopped
        // past the cap, or needs bytes from past it. Parsing resumes at the next root start tag
        // after the cap (a fixed point of the stream, so the result does not depend on the cuts).
        if (s.prolog.at > kMaxMessage || (r == std::string_view::npos && rest.size() > kMaxMessage + 3)) {
          ctx.anomaly("poct1", "message_too_long", ctx.stream_offset() + used);
          used += kMaxMessage + 1;
          s.restart();
          s.resync = true;
          continue;
        }
        if (r == kNotXml || (r != std::string_view::npos && root_name(rest.substr(r)) == 0)) {
          // Not at a message: skip to the next '<' (or everything).
          if (!s.junk_reported) { s.junk_reported = true; ctx.anomaly("poct1", "not_a_message", ctx.stream_offset() + used); }
          size_t next = rest.find('<', 1);
          used += next == std::string_view::npos ? rest.size() : next;
          s.restart();
          continue;
        }
        if (r == std::string_view::npos || root_name(rest.substr(r)) == std::string_view::npos) {
          // Held, however long, up to the cap: root_start goes on where it stopped.
          s.held = rest.size();
          return {used, rest.size() + 1, 0, false};
        }
        s.root = r + 1;
      }
      std::string_view name = rest.substr(r + 1, 7);
      // The end of the root start tag first: a self-closing root (<KPA.R01/>) is the whole
      // message, and an end tag further on belongs to a later message. Both searches go on
      // from where the last call stopped.
      if (!s.tag_end) {
        // A '>' inside a quoted attribute value does not end the tag.
        size_t gt = std::string_view::npos;
        for (size_t k = std::max(r + 8, s.scanned); k < rest.size(); ++k) {
          char c = rest[k];
          if (s.quote) {
            if (c == s.quote) s.quote = 0;
          } else if (c == '"' || c == '\'') {
            s.quote = c;
          } else if (c == '>') {
            gt = k;
            break;
          }
        }
        if (gt == std::string_view::npos) {
          if (rest.size() > kMaxMessage) { too_long(s, r, ctx, used); continue; }
          s.scanned = s.held = rest.size();
          return {used, rest.size() + 1, 0, false};
        }
        s.tag_end = gt;
        s.scanned = gt + 1;
      }
      size_t gt = s.tag_end;
      size_t end;
      if (rest[gt - 1] == '/') {
        end = gt + 1;
      } else {
        // The end tag </ABC.R0n>, white space allowed before its '>' (ETag ::= '</' Name S? '>'),
        // outside comments, CDATA sections and processing instructions (an end tag in one of
        // those is text). The search goes on from where the last call stopped.
        end = find_end(s, rest, gt, name);
        if (!end) {
          if (rest.size() > kMaxMessage) { too_long(s, r, ctx, used); continue; }
          s.held = rest.size();
          return {used, rest.size() + 1, 0, false};
        }
      }
      // Held whole or in pieces, a message past the cap is too long alike.
      if (end > kMaxMessage) { too_long(s, r, ctx, used); continue; }
      message(dir, s, rest.substr(r, end - r), ctx);
      used += end;
      s.restart();
    }
  }

  // Lost bytes: the message they fall in is dropped and counted, and the bytes after them (the
  // rest of that message) are skipped up to the next root start tag, as after an over-long
  // message, never reported as bytes outside a message.
  void on_gap(Dir dir, uint64_t, FlowContext& ctx) override {
    DirState& s = d_[static_cast<int>(dir)];
    ctx.anomaly("poct1", "message_lost", ctx.stream_offset());
    s.restart();
    s.resync = true;
  }
  void on_end(Dir, FlowContext&) override {}

 private:
  struct Device {
    std::string device_id, vendor_id, model_id, serial_id, manufacturer, sw_version, hw_version, name;
  };

  struct DirState {
    // Where the message held from the first unconsumed byte stands, as far as found (0: not yet).
    size_t root = 0;     // offset of the root start tag's '<', plus one
    size_t tag_end = 0;  // offset of the '>' ending the root start tag
    size_t scanned = 0;  // bytes already searched for that '>', then for the end tag
    char quote = 0;      // the quote of an attribute value the search for that '>' is inside
    size_t item_searched = 0;  // how far the end of the item at `scanned` was looked for
    size_t held = 0;     // bytes the call that left these held (the next call gives at least those)
    xml::PrologScan prolog;  // how far the prolog before the root was read
    bool junk_reported = false;
    bool resync = false;  // skipping the rest of an over-long message
    Device stated;       // DEV.* sent in this direction: the sender's own identity
    bool sent_dev = false;  // a DEV block was sent in this direction
    void restart() {  // the next call starts at another message
      root = tag_end = scanned = item_searched = held = 0;
      quote = 0;
      prolog = {};
    }
  };

  // Where the message whose root start tag ends at rest[gt] ends (past the '>' of its end tag),
  // 0 when more bytes are needed. Comments, CDATA sections and processing instructions are
  // skipped whole. s.scanned is where to go on: past everything read, or the '<' of an item not
  // yet whole, whose end was looked for up to s.item_searched.
  static size_t find_end(DirState& s, std::string_view rest, size_t gt, std::string_view name) {
    char close[9] = {'<', '/'};
    std::copy(name.begin(), name.end(), close + 2);
    const std::string_view end_tag(close, 9);
    auto starts = [](std::string_view t, std::string_view p) { return t.substr(0, p.size()) == p; };
    auto cut_short = [](std::string_view t, std::string_view p) { return t.size() < p.size() && p.substr(0, t.size()) == t; };
    size_t i = std::max(gt + 1, s.scanned);
    for (;;) {
      size_t lt = rest.find('<', i);
      if (lt == std::string_view::npos) {
        s.scanned = rest.size();
        s.item_searched = 0;
        return 0;
      }
      std::string_view t = rest.substr(lt);
      const size_t searched = lt == s.scanned ? s.item_searched : 0;
      std::string_view item_start, item_end;
      if (starts(t, "<!--")) item_start = "<!--", item_end = "-->";
      else if (starts(t, "<![CDATA[")) item_start = "<![CDATA[", item_end = "]]>";
      else if (starts(t, "<?")) item_start = "<?", item_end = "?>";
      if (item_end.empty()) {
        if (cut_short(t, "<!--") || cut_short(t, "<![CDATA[") || cut_short(t, end_tag)) {
          s.scanned = lt;
          s.item_searched = 0;
          return 0;
        }
        if (starts(t, end_tag)) {
          size_t k = std::max(lt + end_tag.size(), searched);
          while (k < rest.size() && space(rest[k])) ++k;
          if (k == rest.size()) {
            s.scanned = lt;
            s.item_searched = k;
            return 0;
          }
          if (rest[k] == '>') return k + 1;
          // A longer name (</OBS.R012>): not the end tag.
        }
        i = lt + 1;
        continue;
      }
      size_t e = rest.find(item_end, std::max(lt + item_start.size(), searched));
      if (e == std::string_view::npos) {
        s.scanned = lt;
        s.item_searched = rest.size() - std::min(rest.size(), item_end.size() - 1);
        return 0;
      }
      i = e + item_end.size();
    }
  }

  // A message (from its prolog) longer than kMaxMessage, its root at rest[r]: reported, then
  // parsing resumes at the next root start tag after its own, held already or still to come,
  // so the result does not depend on how the stream was segmented.
  static void too_long(DirState& s, size_t r, FlowContext& ctx, size_t& used) {
    ctx.anomaly("poct1", "message_too_long", ctx.stream_offset() + used);
    used += r + 1;
    s.restart();
    s.resync = true;
  }

  static void set_dev(Device& d, std::string_view k, std::string_view v) {
    if (k == "device_id") d.device_id.assign(v);
    else if (k == "vendor_id") d.vendor_id.assign(v);
    else if (k == "model_id") d.model_id.assign(v);
    else if (k == "serial_id") d.serial_id.assign(v);
    else if (k == "manufacturer_name") d.manufacturer.assign(v);
    else if (k == "sw_version") d.sw_version.assign(v);
    else if (k == "hw_version") d.hw_version.assign(v);
    else if (k == "device_name") d.name.assign(v);
  }

  // The device block as the asset inventory's identity of the side that sent it. The device
  // name (site-given) and hardware revision stay in the poct1 event only.
  static void add_identity(Dir dir, const Device& d, FlowContext& ctx) {
    DeviceIdentity id;
    id.client = dir == Dir::to_server;
    id.source = "poct1 DEV";
    id.id = d.device_id;
    id.serial = d.serial_id;
    id.manufacturer = d.manufacturer.empty() ? d.vendor_id : d.manufacturer;
    id.model = d.model_id;
    id.version = d.sw_version;
    if (id.id.empty() && id.serial.empty() && id.manufacturer.empty() && id.model.empty() && id.version.empty()) return;
    ctx.facts().add_identity(std::move(id));
  }

  template <class V>
  static void add(V& v, std::string x) {
    if (std::find(v.begin(), v.end(), x) == v.end() && v.size() < kMaxList) v.push_back(std::move(x));
  }

  static bool is_phi(std::string_view name) {
    static constexpr std::string_view kPhi[] = {"PT.patient_id", "PT.name", "PT.birth_date", "PT.birth_dttm",
                                                "PT.address", "PT.phone", "PT.location", "PT.encounter_id",
                                                "PT.account_id", "SPC.specimen_id", "OBS.patient_id"};
    for (auto p : kPhi) if (name == p) return true;
    return false;
  }

  void message(Dir dir, DirState& s, std::string_view xml, FlowContext& ctx) {
    std::string_view type = xml.substr(1, 7);
    std::string control, version, created, ack_type, ack_control, eot_topic, request, new_obs, status_time;
    std::vector<std::string> obs_ids, patients, operators, phi;
    uint64_t observations = 0;
    Device stated = s.stated;
    bool have_dev = false;
    for_each_value(xml, [&](std::string_view name, std::string_view v) {
      if (name == "HDR.control_id") control.assign(v);
      else if (name == "HDR.version_id") version.assign(v);
      else if (name == "HDR.creation_dttm") created.assign(v);
      else if (name == "ACK.type_cd") ack_type.assign(v);
      else if (name == "ACK.ack_control_id") ack_control.assign(v);
      else if (name == "EOT.topic_cd") eot_topic.assign(v);
      else if (name == "REQ.request_cd") request.assign(v);
      else if (name == "DST.new_observations_qty") new_obs.assign(v);
      else if (name == "DST.status_dttm") status_time.assign(v);
      else if (name == "OBS.observation_id") { ++observations; add(obs_ids, std::string(v)); }
      else if (name == "OPR.operator_id") { if (!v.empty()) add(operators, ctx.pseudonym(v)); }
      else if (name.substr(0, 4) == "DEV.") {
        have_dev = true;
        set_dev(stated, name.substr(4), v);
      }
      if (is_phi(name) && !v.empty()) {
        std::string field = "poct1." + std::string(name);
        add(phi, field);
        ctx.facts().add_phi(field);
        if (name == "PT.patient_id") add(patients, ctx.pseudonym(v));
      }
    });
    if (have_dev) {
      // Built from this direction's DEV.* only, so a peer's block is never credited to the
      // sender; a repeated block adds nothing (add_identity keeps one of equal entries).
      s.stated = std::move(stated);
      s.sent_dev = true;
      last_dev_ = static_cast<int>(dir);
      // The flow's facts are the last block seen, whole: none of the peer's fields stays.
      auto fact = [&](std::string_view k, const std::string& v) {
        auto& attrs = ctx.facts().attrs;
        if (!v.empty()) ctx.facts().set_attr(k, v);
        else std::erase_if(attrs, [&](auto& kv) { return kv.first == k; });
      };
      fact("poct1.device_id", s.stated.device_id);
      fact("poct1.model", s.stated.model_id);
      fact("poct1.manufacturer", s.stated.manufacturer);
      fact("poct1.serial", s.stated.serial_id);
      fact("poct1.sw_version", s.stated.sw_version);
      ctx.facts().set_attr("poct1.device_side", dir == Dir::to_server ? "client" : "server");
      add_identity(dir, s.stated, ctx);
    }
    // The device block of the message's sender; a side that sent none is shown its peer's. One
    // side's block, whole: fields of the two devices are never mixed.
    static const Device kNone;
    const Device& dev = s.sent_dev ? s.stated : last_dev_ >= 0 ? d_[last_dev_].stated : kNone;
    ++ctx.counters().at("poct1.messages");
    auto& w = ctx.begin_event("poct1");
    w.object("poct1");
    w.field("direction", dir_name(dir));
    w.field("message_type", type);
    w.field("topic", type.substr(0, 3));
    if (!control.empty()) w.field("control_id", control);
    if (!version.empty()) w.field("version", version);
    if (!created.empty()) w.field("creation_time", created);
    if (!dev.device_id.empty() || !dev.model_id.empty() || !dev.manufacturer.empty()) {
      w.object("device");
      w.field_if_nonempty("device_id", dev.device_id);
      w.field_if_nonempty("vendor_id", dev.vendor_id);
      w.field_if_nonempty("model_id", dev.model_id);
      w.field_if_nonempty("serial_id", dev.serial_id);
      w.field_if_nonempty("manufacturer", dev.manufacturer);
      w.field_if_nonempty("hw_version", dev.hw_version);
      w.field_if_nonempty("sw_version", dev.sw_version);
      w.field_if_nonempty("device_name", dev.name);
      w.end_object();
    }
    if (!ack_type.empty() || !ack_control.empty()) {
      w.object("ack");
      if (!ack_type.empty()) w.field("type", ack_type);
      if (!ack_control.empty()) w.field("control_id", ack_control);
      w.end_object();
    }
    if (!request.empty()) w.field("request", request);
    if (!eot_topic.empty()) w.field("eot_topic", eot_topic);
    if (!new_obs.empty()) w.field("new_observations", new_obs);
    if (observations) {
      w.field("observations", observations);
      w.array("observation_ids");
      for (auto& x : obs_ids) w.value(x);
      w.end_array();
    }
    if (!patients.empty()) {
      w.array("patients");
      for (auto& x : patients) w.value(x);
      w.end_array();
    }
    if (!operators.empty()) {
      w.array("operators");
      for (auto& x : operators) w.value(x);
      w.end_array();
    }
    if (!phi.empty()) {
      w.array("phi_fields");
      for (auto& x : phi) w.value(x);
      w.end_array();
    }
    w.end_object();
    ctx.end_event();
  }

  std::array<DirState, 2> d_;
  int last_dev_ = -1;  // the direction that sent the last DEV block (-1: none yet)
};

std::unique_ptr<Dissector> make() { return std::make_unique<Poct1Dissector>(); }

}  // namespace
}  // namespace poct1

const DissectorInfo kPoct1Info = {
    .name = "poct1",
    .transport = Transport::tcp,
    .probe = &poct1::probe,
    .make = &poct1::make,
    .port_hints = poct1::kPorts,
};

}  // namespace medmon
