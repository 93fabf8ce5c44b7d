#pragma once
// PS3.8 upper layer: PDU header, A-ASSOCIATE-RQ/AC items, A-ASSOCIATE-RJ, A-ABORT, PDV headers.
// Pure functions over complete PDUs; the dissector does the stream framing.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace medmon::dicom {

enum PduType : uint8_t {
  kAssociateRq = 1, kAssociateAc = 2, kAssociateRj = 3, kPData = 4,
  kReleaseRq = 5, kReleaseRp = 6, kAbort = 7,
};
constexpr size_t kPduHeaderSize = 6;
constexpr size_t kPdvHeaderSize = 6;  // item length (4) + PC id + message control header
constexpr size_t kAssociateFixedSize = 68;  // version .. reserved, before variable items
// Association PDUs larger than this are not credible (64 KiB of items is already absurd).
constexpr uint32_t kMaxAssociatePdu = 256u * 1024;
// P-DATA-TF PDUs larger than this are treated as garbage (real peers stay well under 1 MiB).
constexpr uint32_t kMaxPDataPdu = 64u * 1024 * 1024;
constexpr size_t kMaxContexts = 128;  // PC ids are odd bytes: at most 128 distinct
constexpr size_t kMaxListItems = 128; // role selections, extended negotiations

const char* pdu_type_name(uint8_t type);

struct PduHeader {
  uint8_t type = 0;
  uint32_t length = 0;  // bytes after the 6-byte header
};
PduHeader read_pdu_header(std::span<const uint8_t> six);

// A string inside AssociatePdu::text: contexts carry hundreds of UIDs, kept in one buffer.
struct StrRef {
  uint32_t off = 0;
  uint16_t len = 0;
  bool empty() const { return len == 0; }
};

struct PresentationContext {
  uint8_t id = 0;
  uint8_t result = 0xFF;  // AC result; 0xFF = no answer seen
  StrRef abstract_syntax;  // RQ
  StrRef accepted_ts;      // AC
  uint16_t ts_first = 0, ts_count = 0;  // RQ: proposed syntaxes, in AssociatePdu::ts
};

struct RoleSelection { std::string sop_class; uint8_t scu = 0, scp = 0; };
struct ExtendedNegotiation { std::string sop_class; uint16_t info_length = 0; };

struct UserIdentity {
  bool present = false;
  uint8_t type = 0;
  bool positive_response_requested = false;
  uint16_t primary_length = 0;    // the value itself (user name, ticket) is never kept
  uint16_t secondary_length = 0;  // type 2: the passcode, sent in clear on non-TLS DICOM
  // Over every User Identity item of the PDU (the fields above are those of the first item that
  // carries a credential, else of the first item): a passcode (type 2), or a Kerberos ticket,
  // SAML assertion or JWT (types 3-5), went over the wire.
  bool passcode_sent = false;
  bool credential_sent = false;
};

// A-ASSOCIATE-RQ or -AC.
struct AssociatePdu {
  bool is_ac = false;
  uint16_t version = 0;
  std::string called_ae, calling_ae;  // trimmed
  std::string app_context;
  std::vector<PresentationContext> contexts;
  std::string text;         // UID text of the presentation contexts
  std::vector<StrRef> ts;   // proposed transfer syntaxes of all contexts
  std::string_view str(StrRef r) const { return std::string_view(text).substr(r.off, r.len); }
  std::string_view proposed(const PresentationContext& pc, size_t i) const { return str(ts[pc.ts_first + i]); }
  bool has_max_pdu = false;
  uint32_t max_pdu = 0;
  std::string impl_class_uid, impl_version;
  bool has_async = false;
  uint16_t async_invoked = 0, async_performed = 0;
  std::vector<RoleSelection> roles;
  std::vector<ExtendedNegotiation> ext_neg;
  size_t common_ext_neg = 0;  // 0x57 items
  UserIdentity user_identity;             // RQ 0x58
  bool user_identity_response = false;    // AC 0x59 present
  uint16_t user_identity_response_length = 0;
};

// Problems found while parsing; names are the stable anomaly names (without "dicom.").
struct Issues {
  struct Item { const char* name; uint32_t offset; };
  Item items[8];
  uint8_t count = 0;
  void add(const char* name, uint32_t offset) { if (count < 8) items[count++] = {name, offset}; }
};

// `pdu` is the whole PDU, header included. Returns false when it is too broken to use.
bool parse_associate(std::span<const uint8_t> pdu, AssociatePdu& out, Issues& issues);

struct AssociateReject { uint8_t result = 0, source = 0, reason = 0; };
bool parse_reject(std::span<const uint8_t> pdu, AssociateReject& out, Issues& issues);

struct Abort { uint8_t source = 0, reason = 0; };
bool parse_abort(std::span<const uint8_t> pdu, Abort& out, Issues& issues);

struct PdvHeader {
  uint32_t length = 0;  // counts PC id + MCH + fragment
  uint8_t pc_id = 0;
  uint8_t mch = 0;
  bool command() const { return mch & 1; }
  bool last() const { return mch & 2; }
};
PdvHeader read_pdv_header(std::span<const uint8_t> six);

// Strips DICOM padding (spaces, NULs) from both ends.
std::string_view trim(std::string_view s);

// Content detection: the first bytes of a direction look like the start of an association
// (A-ASSOCIATE-RQ/AC) or of a plausible P-DATA-TF PDU. 1 = yes, 0 = no, -1 = need more bytes.
int looks_like_associate(std::span<const uint8_t> d);

// Start of an A-ASSOCIATE-RQ/AC whose length is beyond kMaxAssociatePdu but whose fixed fields
// are well formed (reserved 0, protocol version 1, reserved 0, printable AE titles): an oversized
// association PDU rather than bytes of a capture that joined mid-association.
// 1 = yes, 0 = no, -1 = need more bytes (the fixed fields end at 42).
int looks_like_oversized_associate(std::span<const uint8_t> d);
int looks_like_pdata(std::span<const uint8_t> d);
// Offset of the first plausible P-DATA-TF PDU at or after `from` whose PDV opens a DIMSE command
// set, or npos. Used to pick up a capture that starts in the middle of an association.
size_t find_command_pdata(std::span<const uint8_t> d, size_t from = 0);

}  // namespace medmon::dicom
