#include "dissectors/dicom/pdu.h"

#include <algorithm>

#include "dissectors/api/byte_reader.h"

namespace medmon::dicom {

const char* pdu_type_name(uint8_t t) {
  switch (t) {
    case kAssociateRq: return "A-ASSOCIATE-RQ";
    case kAssociateAc: return "A-ASSOCIATE-AC";
    case kAssociateRj: return "A-ASSOCIATE-RJ";
    case kPData: return "P-DATA-TF";
    case kReleaseRq: return "A-RELEASE-RQ";
    case kReleaseRp: return "A-RELEASE-RP";
    case kAbort: return "A-ABORT";
    default: return "unknown";
  }
}

PduHeader read_pdu_header(std::span<const uint8_t> d) {
  ByteReader r(d);
  PduHeader h;
  h.type = r.u8();
  r.skip(1);
  h.length = r.be32();
  return h;
}

PdvHeader read_pdv_header(std::span<const uint8_t> d) {
  ByteReader r(d);
  PdvHeader h;
  h.length = r.be32();
  h.pc_id = r.u8();
  h.mch = r.u8();
  return h;
}

std::string_view trim(std::string_view s) {
  auto pad = [](char c) { return c == ' ' || c == '\0'; };
  while (!s.empty() && pad(s.front())) s.remove_prefix(1);
  while (!s.empty() && pad(s.back())) s.remove_suffix(1);
  return s;
}

namespace {

constexpr size_t kMaxUidLength = 64;  // PS3.5: UIDs are at most 64 characters

void set_uid(std::string& out, std::span<const uint8_t> v, Issues& issues, uint32_t off) {
  if (v.size() > kMaxUidLength) { issues.add("uid_too_long", off); v = v.first(kMaxUidLength); }
  out.assign(trim(as_chars(v)));
}

StrRef add_uid(AssociatePdu& out, std::span<const uint8_t> v, Issues& issues, uint32_t off) {
  if (v.size() > kMaxUidLength) { issues.add("uid_too_long", off); v = v.first(kMaxUidLength); }
  std::string_view s = trim(as_chars(v));
  StrRef r{static_cast<uint32_t>(out.text.size()), static_cast<uint16_t>(s.size())};
  out.text.append(s);
  return r;
}

void parse_presentation_context(ByteReader r, bool ac, AssociatePdu& out, Issues& issues, uint32_t base) {
  PresentationContext pc;
  pc.ts_first = static_cast<uint16_t>(std::min<size_t>(out.ts.size(), 0xFFFF));
  pc.id = r.u8();
  r.skip(1);
  uint8_t result = r.u8();
  r.skip(1);
  if (!r.ok()) { issues.add("bad_presentation_context", base); return; }
  if (ac) pc.result = result;
  // PS3.8 9.3.2.2 / 9.3.3.2: an RQ context has one abstract syntax and one or more transfer
  // syntaxes, an AC context exactly one transfer syntax. A repeated one is noted and the first
  // kept, as for the items of the PDU.
  bool saw_abstract = false, saw_accepted = false;
  while (r.remaining() >= 4) {
    uint32_t off = base + static_cast<uint32_t>(r.pos());
    uint8_t type = r.u8();
    r.skip(1);
    uint16_t len = r.be16();
    auto v = r.bytes(len);
    if (!r.ok()) { issues.add("item_past_end", off); break; }
    if (type == 0x30) {
      if (saw_abstract) { issues.add("unexpected_item", off); continue; }
      saw_abstract = true;
      pc.abstract_syntax = add_uid(out, v, issues, off);
    } else if (type == 0x40) {
      if (ac) {
        if (saw_accepted) { issues.add("unexpected_item", off); continue; }
        saw_accepted = true;
        pc.accepted_ts = add_uid(out, v, issues, off);
      } else if (pc.ts_count < 32 && out.ts.size() < 0xFFFF) {
        out.ts.push_back(add_uid(out, v, issues, off));
        ++pc.ts_count;
      }
    } else {
      issues.add("unknown_item", off);
    }
  }
  if (r.remaining() != 0) issues.add("item_past_end", base + static_cast<uint32_t>(r.pos()));
  if (out.contexts.size() >= kMaxContexts) { issues.add("too_many_presentation_contexts", base); return; }
  out.contexts.push_back(pc);
}

// The user identity item reported: the first one that carries a credential, else the first one
// (PS3.7 D.3.3.7 allows one; a second is noted by the caller). The flags cover every item.
void merge_user_identity(UserIdentity& u, const UserIdentity& item) {
  if (!item.present) return;
  const bool passcode = u.passcode_sent || item.passcode_sent;
  const bool credential = u.credential_sent || item.credential_sent;
  if (!u.present || (item.credential_sent && !u.credential_sent)) u = item;
  u.passcode_sent = passcode;
  u.credential_sent = credential;
}

void parse_user_info(ByteReader r, bool ac, AssociatePdu& out, Issues& issues, uint32_t base) {
  // Sub-items PS3.7 Annex D allows once in a PDU (maximum length, implementation class UID,
  // asynchronous operations window, implementation version name, user identity response): a
  // repeated one is noted and the first kept, as the application context and user information
  // items are. Role selections and extended negotiations come one per SOP class.
  bool seen[0x60] = {};
  while (r.remaining() >= 4) {
    uint32_t off = base + static_cast<uint32_t>(r.pos());
    uint8_t type = r.u8();
    r.skip(1);
    uint16_t len = r.be16();
    ByteReader v(r.bytes(len));
    if (!r.ok()) { issues.add("item_past_end", off); return; }
    const bool once = type == 0x51 || type == 0x52 || type == 0x53 || type == 0x55 || type == 0x59;
    if (once) {
      if (seen[type]) { issues.add("unexpected_item", off); continue; }
      seen[type] = true;
    }
    switch (type) {
      case 0x51:
        out.max_pdu = v.be32();
        out.has_max_pdu = v.ok();
        if (!v.ok()) issues.add("bad_item_length", off);
        break;
      case 0x52: set_uid(out.impl_class_uid, v.rest(), issues, off); break;
      case 0x55: {
        auto s = v.rest();
        if (s.size() > 16) { issues.add("bad_item_length", off); s = s.first(16); }
        out.impl_version.assign(trim(as_chars(s)));
        break;
      }
      case 0x53:
        out.async_invoked = v.be16();
        out.async_performed = v.be16();
        out.has_async = v.ok();
        if (!v.ok()) issues.add("bad_item_length", off);
        break;
      case 0x54: {
        uint16_t ulen = v.be16();
        auto uid = v.bytes(ulen);
        RoleSelection rs;
        rs.scu = v.u8();
        rs.scp = v.u8();
        if (!v.ok()) { issues.add("bad_item_length", off); break; }
        set_uid(rs.sop_class, uid, issues, off);
        if (out.roles.size() < kMaxListItems) out.roles.push_back(std::move(rs));
        break;
      }
      case 0x56: {
        uint16_t ulen = v.be16();
        auto uid = v.bytes(ulen);
        if (!v.ok()) { issues.add("bad_item_length", off); break; }
        ExtendedNegotiation en;
        set_uid(en.sop_class, uid, issues, off);
        en.info_length = static_cast<uint16_t>(v.remaining());
        if (out.ext_neg.size() < kMaxListItems) out.ext_neg.push_back(std::move(en));
        break;
      }
      case 0x57: ++out.common_ext_neg; break;
      case 0x58: {
        if (ac) { issues.add("unexpected_item", off); break; }
        UserIdentity item;
        item.type = v.u8();
        item.positive_response_requested = v.u8() != 0;
        item.primary_length = v.be16();
        v.skip(item.primary_length);
        item.secondary_length = v.be16();
        v.skip(item.secondary_length);
        if (!v.ok()) { issues.add("bad_item_length", off); }
        item.present = true;
        item.passcode_sent = item.type == 2 && item.secondary_length > 0;
        item.credential_sent = item.passcode_sent || (item.type >= 3 && item.type <= 5 && item.primary_length > 0);
        // PS3.7 D.3.3.7 allows one: a second is noted; a credential in any of them still went
        // over the wire in clear, and the item reported is the one that carried it.
        if (out.user_identity.present) issues.add("unexpected_item", off);
        merge_user_identity(out.user_identity, item);
        break;
      }
      case 0x59: {
        // PS3.7 D.3.3.7.2: a 2-byte server-response length, then that many bytes (zero when
        // the identity type has no server response).
        if (!ac) issues.add("unexpected_item", off);
        out.user_identity_response = true;
        out.user_identity_response_length = v.be16();
        if (!v.ok() || v.remaining() != out.user_identity_response_length) issues.add("bad_item_length", off);
        break;
      }
      default:
        issues.add("unknown_item", off);
        break;
    }
  }
  if (r.remaining() != 0) issues.add("item_past_end", base + static_cast<uint32_t>(r.pos()));
}

}  // namespace

bool parse_associate(std::span<const uint8_t> pdu, AssociatePdu& out, Issues& issues) {
  ByteReader r(pdu);
  uint8_t type = r.u8();
  r.skip(1);
  uint32_t len = r.be32();
  if (!r.ok() || (type != kAssociateRq && type != kAssociateAc) || len < kAssociateFixedSize ||
      len > r.remaining()) {
    issues.add("bad_pdu_length", 2);
    return false;
  }
  ByteReader body = r.sub(len);
  out.is_ac = type == kAssociateAc;
  out.text.reserve(len);  // UIDs are a subset of the PDU: one allocation
  out.contexts.reserve(64);
  out.version = body.be16();
  uint16_t reserved = body.be16();
  out.called_ae.assign(trim(body.str(16)));
  out.calling_ae.assign(trim(body.str(16)));
  auto reserved32 = body.bytes(32);
  if ((out.version & 1) == 0) issues.add("unsupported_protocol_version", 6);
  else if (out.version != 1) issues.add("unusual_protocol_version", 6);
  // Reserved fields are sent as 0 and not tested by the receiver (PS3.8 9.3.2): the PDU is
  // read, the odd value only noted.
  if (pdu[1] != 0) issues.add("reserved_not_zero", 1);
  else if (reserved != 0) issues.add("reserved_not_zero", 8);
  else if (std::any_of(reserved32.begin(), reserved32.end(), [](uint8_t b) { return b != 0; }))
    issues.add("reserved_not_zero", 42);
  bool saw_app_context = false, saw_user_info = false;
  while (body.remaining() >= 4) {
    uint32_t off = static_cast<uint32_t>(6 + body.pos());
    uint8_t itype = body.u8();
    body.skip(1);
    uint16_t ilen = body.be16();
    ByteReader v = body.sub(ilen);
    if (!body.ok()) { issues.add("item_past_end", off); break; }
    switch (itype) {
      case 0x10:
        // One of each is allowed (PS3.8 9.3.2): the first is kept, as for the user identity.
        if (saw_app_context) { issues.add("unexpected_item", off); break; }
        set_uid(out.app_context, v.rest(), issues, off);
        saw_app_context = true;
        break;
      case 0x20:
      case 0x21:
        if ((itype == 0x21) != out.is_ac) issues.add("unexpected_item", off);
        parse_presentation_context(v, itype == 0x21, out, issues, off + 4);
        break;
      case 0x50:
        if (saw_user_info) {
          issues.add("unexpected_item", off);
          // Read aside, only for the credentials it still sent in clear: its user identity
          // counts as a repeated one, reported as one would be.
          AssociatePdu extra;
          parse_user_info(v, out.is_ac, extra, issues, off + 4);
          merge_user_identity(out.user_identity, extra.user_identity);
          break;
        }
        parse_user_info(v, out.is_ac, out, issues, off + 4);
        saw_user_info = true;
        break;
      default:
        issues.add("unknown_item", off);
        break;
    }
  }
  if (body.remaining() != 0) issues.add("item_past_end", static_cast<uint32_t>(6 + body.pos()));
  if (!saw_app_context) issues.add("missing_application_context", 74);
  if (!saw_user_info) issues.add("missing_user_information", 74);
  return true;
}

bool parse_reject(std::span<const uint8_t> pdu, AssociateReject& out, Issues& issues) {
  ByteReader r(pdu);
  r.skip(2);
  uint32_t len = r.be32();
  if (len != 4) issues.add("bad_pdu_length", 2);
  r.skip(1);
  out.result = r.u8();
  out.source = r.u8();
  out.reason = r.u8();
  return r.ok();
}

bool parse_abort(std::span<const uint8_t> pdu, Abort& out, Issues& issues) {
  ByteReader r(pdu);
  r.skip(2);
  uint32_t len = r.be32();
  if (len != 4) issues.add("bad_pdu_length", 2);
  r.skip(2);
  out.source = r.u8();
  out.reason = r.u8();
  return r.ok();
}

namespace {
bool ae_byte(uint8_t c) { return (c >= 0x20 && c <= 0x7E) || c == 0; }  // NUL: some stacks pad so
bool associate_item(uint8_t t) { return t == 0x10 || t == 0x20 || t == 0x21 || t == 0x50; }
}  // namespace

int looks_like_associate(std::span<const uint8_t> d) {
  // type, reserved, length(4), version(2), reserved(2), AEs(32), reserved(32), items from 74.
  // PS3.8 9.3.2: receivers test only bit 0 of the version and no reserved field, so neither is
  // part of the test; the length, the AE title bytes and the item structure are.
  if (d.size() >= 1 && d[0] != kAssociateRq && d[0] != kAssociateAc) return 0;
  if (d.size() < 6) return -1;
  uint32_t len = read_pdu_header(d).length;
  if (len < kAssociateFixedSize + 4 || len > kMaxAssociatePdu) return 0;
  for (size_t i = 10; i < std::min<size_t>(d.size(), 42); ++i)
    if (!ae_byte(d[i])) return 0;
  if (d.size() < 78) return -1;
  // The variable items: known types, each inside the PDU, the last one ending it. Only the
  // items received so far are checked (a large RQ spans several segments).
  size_t end = kPduHeaderSize + len;
  size_t p = kPduHeaderSize + kAssociateFixedSize;
  while (p + 4 <= std::min(end, d.size())) {
    if (!associate_item(d[p])) return 0;
    size_t next = p + 4 + (size_t(d[p + 2]) << 8 | d[p + 3]);
    if (next > end) return 0;
    p = next;
  }
  return p == end || p + 4 > d.size() ? 1 : 0;
}

int looks_like_oversized_associate(std::span<const uint8_t> d) {
  if (d.size() >= 1 && d[0] != kAssociateRq && d[0] != kAssociateAc) return 0;
  if (d.size() >= 2 && d[1] != 0) return 0;
  if (d.size() < 6) return -1;
  if (read_pdu_header(d).length <= kMaxAssociatePdu) return 0;
  if (d.size() < 10) return -1;
  if (d[6] != 0 || d[7] != 1 || d[8] != 0 || d[9] != 0) return 0;
  if (d.size() < 42) return -1;
  // Called and calling AE titles: 16 bytes each, space padded (NUL tolerated, some stacks pad so).
  for (size_t i = 10; i < 42; ++i)
    if ((d[i] < 0x20 || d[i] > 0x7E) && d[i] != 0) return 0;
  return 1;
}

namespace {
// A P-DATA-TF header at d[0] with a sane first PDV; `strict` also wants the PDV to fill the PDU
// or to be followed by another sane PDV header.
int pdata_at(std::span<const uint8_t> d, bool strict) {
  if (d.size() >= 1 && d[0] != kPData) return 0;
  if (d.size() >= 2 && d[1] != 0) return 0;
  if (d.size() < kPduHeaderSize + kPdvHeaderSize) return -1;
  uint32_t len = read_pdu_header(d).length;
  if (len < kPdvHeaderSize || len > kMaxPDataPdu) return 0;
  PdvHeader pdv = read_pdv_header(d.subspan(kPduHeaderSize));
  if (pdv.length < 2 || pdv.length > len - 4 || (pdv.pc_id & 1) == 0 || pdv.mch > 3) return 0;
  if (!strict || pdv.length == len - 4) return 1;
  size_t next = kPduHeaderSize + 4 + pdv.length;
  if (len - 4 - pdv.length < kPdvHeaderSize) return 0;
  if (d.size() < next + kPdvHeaderSize) return 1;  // cannot check further; accept
  PdvHeader n = read_pdv_header(d.subspan(next));
  uint32_t left = len - 4 - pdv.length - 4;
  return (n.length >= 2 && n.length <= left && (n.pc_id & 1) && n.mch <= 3) ? 1 : 0;
}
}  // namespace

int looks_like_pdata(std::span<const uint8_t> d) {
  int r = pdata_at(d, true);
  if (r != 1) return r;
  // A command fragment must open with a group 0000 element (implicit VR LE).
  PdvHeader pdv = read_pdv_header(d.subspan(kPduHeaderSize));
  if (pdv.command()) {
    if (d.size() < 14) return -1;
    if (d[12] != 0 || d[13] != 0) return 0;
  }
  return 1;
}

size_t find_command_pdata(std::span<const uint8_t> d, size_t from) {
  for (size_t p = from; p + 16 <= d.size(); ++p) {
    if (d[p] != kPData || d[p + 1] != 0) continue;
    auto s = d.subspan(p);
    if (pdata_at(s, true) != 1) continue;
    PdvHeader pdv = read_pdv_header(s.subspan(kPduHeaderSize));
    // Command sets start with (0000,0000) CommandGroupLength, UL, length 4.
    if (pdv.command() && s[12] == 0 && s[13] == 0 && s[14] == 0 && s[15] == 0 &&
        (s.size() < 20 || (s[16] == 4 && s[17] == 0 && s[18] == 0 && s[19] == 0)))
      return p;
  }
  return static_cast<size_t>(-1);
}

}  // namespace medmon::dicom
