#pragma once
// Builds DICOM byte streams for the tests: PDUs, command sets, datasets in each transfer syntax.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dtest {

using Bytes = std::vector<uint8_t>;

inline void put8(Bytes& b, uint8_t v) { b.push_back(v); }
inline void be16(Bytes& b, uint16_t v) { b.push_back(uint8_t(v >> 8)); b.push_back(uint8_t(v)); }
inline void be32(Bytes& b, uint32_t v) { for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s)); }
inline void le16(Bytes& b, uint16_t v) { b.push_back(uint8_t(v)); b.push_back(uint8_t(v >> 8)); }
inline void le32(Bytes& b, uint32_t v) { for (int s = 0; s <= 24; s += 8) b.push_back(uint8_t(v >> s)); }
inline void append(Bytes& b, std::string_view s) { b.insert(b.end(), s.begin(), s.end()); }
inline void append(Bytes& b, const Bytes& s) { b.insert(b.end(), s.begin(), s.end()); }
inline std::string even(std::string s, char pad = ' ') { if (s.size() & 1) s.push_back(pad); return s; }

inline Bytes item(uint8_t type, const Bytes& value) {
  Bytes b; put8(b, type); put8(b, 0); be16(b, uint16_t(value.size())); append(b, value); return b;
}
inline Bytes item(uint8_t type, std::string_view value) { return item(type, Bytes(value.begin(), value.end())); }

inline Bytes pdu(uint8_t type, const Bytes& body) {
  Bytes b; put8(b, type); put8(b, 0); be32(b, uint32_t(body.size())); append(b, body); return b;
}

struct Pc {
  uint8_t id;
  std::string abstract_syntax;
  std::vector<std::string> ts;
  uint8_t result = 0;   // AC
  std::string accepted; // AC
};

struct Assoc {
  std::string called = "PACS1", calling = "CT_SCANNER1";
  std::vector<Pc> pcs;
  uint32_t max_pdu = 16384;
  std::string impl_uid = "1.2.276.0.7230010.3.0.3.6.7", impl_version = "OFFIS_DCMTK_367";
  int user_identity_type = 0;  // 0 none
  int second_user_identity_type = 0;  // a second User Identity item after the first (0 none)
  bool role = false;
};

inline Bytes associate(const Assoc& a, bool ac) {
  Bytes body;
  be16(body, 1); be16(body, 0);
  std::string called = a.called, calling = a.calling;
  called.resize(16, ' '); calling.resize(16, ' ');
  append(body, called); append(body, calling);
  body.insert(body.end(), 32, 0);
  append(body, item(0x10, "1.2.840.10008.3.1.1.1"));
  for (const Pc& pc : a.pcs) {
    Bytes v; put8(v, pc.id); put8(v, 0); put8(v, ac ? pc.result : 0xFF); put8(v, 0);
    if (ac) {
      append(v, item(0x40, pc.accepted.empty() ? pc.ts.at(0) : pc.accepted));
    } else {
      append(v, item(0x30, pc.abstract_syntax));
      for (auto& t : pc.ts) append(v, item(0x40, t));
    }
    append(body, item(ac ? 0x21 : 0x20, v));
  }
  Bytes ui;
  Bytes mx; be32(mx, a.max_pdu); append(ui, item(0x51, mx));
  append(ui, item(0x52, a.impl_uid));
  Bytes aw; be16(aw, 1); be16(aw, 1); append(ui, item(0x53, aw));
  if (a.role && !a.pcs.empty()) {
    Bytes r; be16(r, uint16_t(a.pcs[0].abstract_syntax.size())); append(r, a.pcs[0].abstract_syntax); put8(r, 1); put8(r, 1);
    append(ui, item(0x54, r));
  }
  append(ui, item(0x55, a.impl_version));
  for (int type : {a.user_identity_type, a.second_user_identity_type}) {
    if (!type || ac) continue;
    Bytes u; put8(u, uint8_t(type)); put8(u, 1);
    be16(u, 5); append(u, "alice");
    if (type == 2) { be16(u, 6); append(u, "s3cret"); } else be16(u, 0);
    append(ui, item(0x58, u));
  }
  if (a.user_identity_type && ac) { Bytes u; be16(u, 0); append(ui, item(0x59, u)); }
  append(body, item(0x50, ui));
  return pdu(ac ? 2 : 1, body);
}

inline Bytes release_rq() { return pdu(5, Bytes{0, 0, 0, 0}); }
inline Bytes release_rp() { return pdu(6, Bytes{0, 0, 0, 0}); }
inline Bytes abort_pdu(uint8_t source, uint8_t reason) { return pdu(7, Bytes{0, 0, source, reason}); }
inline Bytes reject(uint8_t result, uint8_t source, uint8_t reason) { return pdu(3, Bytes{0, result, source, reason}); }

// One P-DATA-TF PDU with one PDV.
inline Bytes pdata(uint8_t pc, uint8_t mch, const Bytes& frag) {
  Bytes v; be32(v, uint32_t(frag.size() + 2)); put8(v, pc); put8(v, mch); append(v, frag);
  return pdu(4, v);
}

// A message split into PDVs of at most `max_frag` bytes, one PDV per PDU.
inline Bytes message(uint8_t pc, const Bytes& cmd, const Bytes* ds = nullptr, size_t max_frag = 1 << 20) {
  Bytes out;
  for (size_t o = 0; o < cmd.size(); o += max_frag) {
    size_t n = std::min(max_frag, cmd.size() - o);
    append(out, pdata(pc, uint8_t(1 | (o + n == cmd.size() ? 2 : 0)), Bytes(cmd.begin() + o, cmd.begin() + o + n)));
  }
  if (ds) {
    for (size_t o = 0; o < ds->size(); o += max_frag) {
      size_t n = std::min(max_frag, ds->size() - o);
      append(out, pdata(pc, uint8_t(o + n == ds->size() ? 2 : 0), Bytes(ds->begin() + o, ds->begin() + o + n)));
    }
  }
  return out;
}

// Implicit VR LE element.
inline void ile(Bytes& b, uint16_t g, uint16_t e, const Bytes& v) { le16(b, g); le16(b, e); le32(b, uint32_t(v.size())); append(b, v); }
inline void ile(Bytes& b, uint16_t g, uint16_t e, std::string_view s) { ile(b, g, e, Bytes(s.begin(), s.end())); }
inline Bytes us(uint16_t v) { Bytes b; le16(b, v); return b; }
inline Bytes ul(uint32_t v) { Bytes b; le32(b, v); return b; }

struct Cmd {
  uint16_t field = 1;
  uint16_t msg_id = 1;
  int responded = -1;
  std::string sop_class, sop_instance, move_dest;
  int status = -1;
  bool dataset = false;
  int remaining = -1, completed = -1, failed = -1, warning = -1;
  int priority = 0;
};

inline Bytes command(const Cmd& c) {
  Bytes body;
  if (!c.sop_class.empty()) ile(body, 0, 0x0002, even(c.sop_class, '\0'));
  ile(body, 0, 0x0100, us(c.field));
  if (c.field & 0x8000) ile(body, 0, 0x0120, us(uint16_t(c.responded < 0 ? c.msg_id : c.responded)));
  else ile(body, 0, 0x0110, us(c.msg_id));
  if (!c.move_dest.empty()) ile(body, 0, 0x0600, even(c.move_dest));
  if (!(c.field & 0x8000) && c.priority >= 0) ile(body, 0, 0x0700, us(uint16_t(c.priority)));
  ile(body, 0, 0x0800, us(c.dataset ? 0x0001 : 0x0101));
  if (c.status >= 0) ile(body, 0, 0x0900, us(uint16_t(c.status)));
  if (!c.sop_instance.empty()) ile(body, 0, 0x1000, even(c.sop_instance, '\0'));
  if (c.remaining >= 0) ile(body, 0, 0x1020, us(uint16_t(c.remaining)));
  if (c.completed >= 0) ile(body, 0, 0x1021, us(uint16_t(c.completed)));
  if (c.failed >= 0) ile(body, 0, 0x1022, us(uint16_t(c.failed)));
  if (c.warning >= 0) ile(body, 0, 0x1023, us(uint16_t(c.warning)));
  Bytes out;
  ile(out, 0, 0, ul(uint32_t(body.size())));
  append(out, body);
  return out;
}

// Dataset element writer for one transfer syntax.
enum class Ts { implicit_le, explicit_le, explicit_be };
struct Ds {
  Ts ts;
  Bytes b;
  explicit Ds(Ts t) : ts(t) {}
  void tag(uint16_t g, uint16_t e) {
    if (ts == Ts::explicit_be) { be16(b, g); be16(b, e); } else { le16(b, g); le16(b, e); }
  }
  void len32(uint32_t v) { if (ts == Ts::explicit_be) be32(b, v); else le32(b, v); }
  void len16(uint16_t v) { if (ts == Ts::explicit_be) be16(b, v); else le16(b, v); }
  static bool long_vr(std::string_view vr) {
    return vr == "OB" || vr == "OW" || vr == "SQ" || vr == "UN" || vr == "UT" || vr == "UC" || vr == "OF";
  }
  void header(uint16_t g, uint16_t e, std::string_view vr, uint32_t len) {
    tag(g, e);
    if (ts == Ts::implicit_le) { len32(len); return; }
    append(b, vr);
    if (long_vr(vr)) { b.push_back(0); b.push_back(0); len32(len); } else len16(uint16_t(len));
  }
  Ds& str(uint16_t g, uint16_t e, std::string_view vr, std::string v) {
    v = even(v, vr == "UI" ? '\0' : ' ');
    header(g, e, vr, uint32_t(v.size())); append(b, v); return *this;
  }
  Ds& raw(uint16_t g, uint16_t e, std::string_view vr, const Bytes& v) { header(g, e, vr, uint32_t(v.size())); append(b, v); return *this; }
  // Undefined-length sequence / item markers.
  Ds& seq_begin(uint16_t g, uint16_t e) { header(g, e, "SQ", 0xFFFFFFFF); return *this; }
  Ds& item_begin() { tag(0xFFFE, 0xE000); len32(0xFFFFFFFF); return *this; }
  Ds& item_end() { tag(0xFFFE, 0xE00D); len32(0); return *this; }
  Ds& seq_end() { tag(0xFFFE, 0xE0DD); len32(0); return *this; }
  Ds& pixel(size_t n) { header(0x7FE0, 0x0010, "OW", uint32_t(n)); b.insert(b.end(), n, 0x5A); return *this; }
};

inline const char* kCtImage = "1.2.840.10008.5.1.4.1.1.2";
inline const char* kVerification = "1.2.840.10008.1.1";
inline const char* kImplicit = "1.2.840.10008.1.2";
inline const char* kExplicitLe = "1.2.840.10008.1.2.1";
inline const char* kExplicitBe = "1.2.840.10008.1.2.2";
inline const char* kDeflated = "1.2.840.10008.1.2.1.99";
inline const char* kFindStudyRoot = "1.2.840.10008.5.1.4.1.2.2.1";
inline const char* kMoveStudyRoot = "1.2.840.10008.5.1.4.1.2.2.2";

// A CT image header with made-up patient data, then `pixels` bytes of pixel data.
inline Bytes ct_dataset(Ts ts, size_t pixels = 256, std::string patient = "Doe^Jane") {
  Ds d(ts);
  d.str(0x0008, 0x0005, "CS", "ISO_IR 100");
  d.str(0x0008, 0x0016, "UI", kCtImage);
  d.str(0x0008, 0x0018, "UI", "1.2.3.4.5.6.7.8.9");
  d.str(0x0008, 0x0020, "DA", "20240101");
  d.str(0x0008, 0x0050, "SH", "ACC0001");
  d.str(0x0008, 0x0060, "CS", "CT");
  d.str(0x0008, 0x0070, "LO", "ACME Medical");
  d.str(0x0008, 0x1010, "SH", "CTROOM1");
  d.str(0x0008, 0x1090, "LO", "Scanotron 3000");
  d.seq_begin(0x0010, 0x1002).item_begin().str(0x0010, 0x0020, "LO", "OTHER42").item_end().seq_end();
  d.str(0x0010, 0x0010, "PN", patient);
  d.str(0x0010, 0x0020, "LO", "MRN0001");
  d.str(0x0010, 0x0030, "DA", "19700101");
  d.str(0x0018, 0x1000, "LO", "SN-12345");
  d.str(0x0018, 0x1020, "LO", "VA10");
  d.pixel(pixels);
  return d.b;
}

}  // namespace dtest
