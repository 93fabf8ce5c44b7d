#include "dissectors/dicom/dimse.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "dissectors/api/byte_reader.h"

namespace medmon::dicom {

namespace {
uint16_t us(std::span<const uint8_t> v, Issues& issues, uint32_t off) {
  if (v.size() != 2) { issues.add("bad_command_element", off); if (v.size() < 2) return 0; }
  return static_cast<uint16_t>(v[0] | v[1] << 8);
}
void str(std::string& out, std::span<const uint8_t> v, size_t cap) {
  if (v.size() > cap) v = v.first(cap);
  out.assign(trim(as_chars(v)));
}
}  // namespace

bool parse_command(std::span<const uint8_t> bytes, Command& c, Issues& issues) {
  ByteReader r(bytes);
  // PS3.5 7.1: elements in ascending tag order, each once. A peer's parser keeps the first of
  // a repeated element (DCMTK: "found twice ... ignoring second entry"), so the first one is
  // what the receiver acts on; later copies are only an anomaly.
  uint16_t seen[64];
  size_t nseen = 0;
  int last = -1;
  bool warned_order = false, warned_repeat = false;
  while (r.remaining() >= 8) {
    uint32_t off = static_cast<uint32_t>(r.pos());
    uint16_t group = r.le16();
    uint16_t elem = r.le16();
    uint32_t len = r.le32();
    if (group != 0x0000) { issues.add("command_not_group_0000", off); break; }
    if (len > r.remaining()) { issues.add("command_element_past_end", off); break; }
    auto v = r.bytes(len);
    if (static_cast<int>(elem) <= last) {
      // Past 64 distinct elements (hostile) an out-of-order one is taken as a repeat: dropped.
      bool repeated = nseen == std::size(seen) || std::find(seen, seen + nseen, elem) != seen + nseen;
      if (repeated) {
        if (!warned_repeat) issues.add("command_element_repeated", off);
        warned_repeat = true;
        continue;
      }
      if (!warned_order) issues.add("command_element_out_of_order", off);
      warned_order = true;
    }
    last = std::max(last, static_cast<int>(elem));
    if (nseen < std::size(seen)) seen[nseen++] = elem;
    switch (elem) {
      case 0x0000: break;  // group length: the PDV framing already bounds the set
      case 0x0002: str(c.affected_sop_class, v, 64); break;
      case 0x0003: str(c.requested_sop_class, v, 64); break;
      case 0x0100: c.field = us(v, issues, off); c.has |= Command::kField; break;
      case 0x0110: c.message_id = us(v, issues, off); c.has |= Command::kMessageId; break;
      case 0x0120: c.responded_id = us(v, issues, off); c.has |= Command::kRespondedId; break;
      case 0x0600: str(c.move_destination, v, 16); break;
      case 0x0700: c.priority = us(v, issues, off); c.has |= Command::kPriority; break;
      case 0x0800: c.dataset_type = us(v, issues, off); c.has |= Command::kDatasetType; break;
      case 0x0900: c.status = us(v, issues, off); c.has |= Command::kStatus; break;
      case 0x1000: str(c.affected_sop_instance, v, 64); break;
      case 0x1001: str(c.requested_sop_instance, v, 64); break;
      case 0x1002: c.event_type = us(v, issues, off); c.has |= Command::kEventType; break;
      case 0x1008: c.action_type = us(v, issues, off); c.has |= Command::kActionType; break;
      case 0x1020: c.remaining = us(v, issues, off); c.has |= Command::kRemaining; break;
      case 0x1021: c.completed = us(v, issues, off); c.has |= Command::kCompleted; break;
      case 0x1022: c.failed = us(v, issues, off); c.has |= Command::kFailed; break;
      case 0x1023: c.warning = us(v, issues, off); c.has |= Command::kWarning; break;
      case 0x1030: str(c.move_originator_ae, v, 16); break;
      case 0x1031: c.move_originator_id = us(v, issues, off); c.has |= Command::kMoveOrigId; break;
      default: break;  // error comment, attribute lists, ...
    }
  }
  if (r.remaining() != 0) issues.add("command_element_past_end", static_cast<uint32_t>(r.pos()));
  if (!(c.has & Command::kField)) { issues.add("command_without_field", 0); return false; }
  return true;
}

namespace {
struct ElementHeader { uint16_t group, elem; uint32_t len; };
ElementHeader element_at(std::span<const uint8_t> b, size_t p) {
  auto rd16 = [&](size_t o) { return static_cast<uint16_t>(b[o] | b[o + 1] << 8); };
  return {rd16(p), rd16(p + 2), static_cast<uint32_t>(rd16(p + 4) | uint32_t(rd16(p + 6)) << 16)};
}
constexpr size_t kNone = static_cast<size_t>(-1);
// The first hole that overlaps [a, e), or kNone.
size_t hole_in(std::span<const Hole> holes, size_t a, size_t e) {
  for (size_t k = 0; k < holes.size(); ++k)
    if (holes[k].begin < e && a < holes[k].end) return k;
  return kNone;
}
// At least one element from p, and elements from p run to the end of the set exactly or to a
// header a hole took: group 0000, ascending, each inside the set. A value a hole hit still
// frames what follows (its header arrived).
bool frames_on(std::span<const uint8_t> b, std::span<const Hole> holes, size_t p) {
  int last = -1;
  while (p + 8 <= b.size()) {
    if (hole_in(holes, p, p + 8) != kNone) return last >= 0;
    ElementHeader h = element_at(b, p);
    if (h.group != 0 || static_cast<int>(h.elem) <= last || h.len > b.size() - p - 8) return false;
    last = h.elem;
    p += 8 + h.len;
  }
  return last >= 0 && (p == b.size() || hole_in(holes, p, b.size()) != kNone);
}
// After hole k: the first offset, in the next 512 bytes (command elements are short; bounded
// work) and before the next hole, from which well-formed elements go on; kNone when none.
size_t resume_after(std::span<const uint8_t> b, std::span<const Hole> holes, size_t k) {
  size_t from = holes[k].end;
  for (size_t q = from; q + 8 <= b.size() && q < from + 512; ++q) {
    if (hole_in(holes, q, q + 8) != kNone) break;
    if (frames_on(b, holes, q)) return q;
  }
  return kNone;
}
}  // namespace

bool parse_command_around_holes(std::span<const uint8_t> b, std::span<const Hole> holes, Command& c) {
  // Each hole on its own: the elements between two holes arrived and are read too.
  std::vector<uint8_t> kept;
  size_t p = 0;
  size_t lost = kNone;  // out of step after this hole: look for where elements resume
  while (true) {
    if (lost != kNone) {
      p = resume_after(b, holes, lost);
      if (p == kNone) {
        if (++lost >= holes.size()) break;
        continue;
      }
      lost = kNone;
    }
    if (p + 8 > b.size()) break;
    if (size_t k = hole_in(holes, p, p + 8); k != kNone) { lost = k; continue; }
    ElementHeader h = element_at(b, p);
    size_t vend = p + 8 + size_t(h.len);
    if (h.group != 0 || vend > b.size()) {  // not an element: look again after the next hole
      lost = kNone;
      for (size_t n = 0; n < holes.size() && lost == kNone; ++n)
        if (holes[n].begin >= p) lost = n;
      if (lost == kNone) break;
      continue;
    }
    size_t k = hole_in(holes, p + 8, vend);
    if (k == kNone) {
      kept.insert(kept.end(), b.begin() + static_cast<ptrdiff_t>(p), b.begin() + static_cast<ptrdiff_t>(vend));
    } else if (vend != b.size() && !frames_on(b, holes, vend)) {
      lost = k;  // the value a hole hit is dropped; its length frames what follows only when it holds
      continue;
    }
    p = vend;
  }
  if (kept.empty()) return false;
  Issues ignored;
  parse_command(kept, c, ignored);
  return true;
}

}  // namespace medmon::dicom
