#pragma once
// Signature-declared protocols: a site or vendor describes a protocol medmon has no code for in
// a YAML file (content probe, optional framing, fields to extract, which of them are PHI), and
// medmon recognises it on any port without rebuilding. The flow's `app` is the signature name,
// so a device model can declare `app: <name>` like any built-in protocol. File format:
// docs/protocols.md.
#include <cstdint>
#include <memory>
#include <regex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dissectors/api/dissector.h"

namespace medmon {

// The "proprietary" registry entry: its probe runs every loaded signature; the dissector it makes
// is the one of the signature that matched, and the flow's app becomes the signature name.
// Signatures are loaded on first use: the shipped ones (compiled-in source path, when it exists)
// and those in $MEDMON_SIGNATURES_DIR; add_signatures() adds more.
extern const DissectorInfo kProprietaryInfo;     // TCP signatures
extern const DissectorInfo kProprietaryUdpInfo;  // UDP signatures

namespace proprietary {

struct LoadError {
  std::string file;
  int line = 0, column = 0;  // 1-based; 0 = the whole file
  std::string message;
  std::string str() const;   // "file:line:column: message"
};

struct ByteMatch {
  uint32_t offset = 0;
  std::vector<uint8_t> value, mask;  // mask empty = all bits
};

enum class DirFilter : uint8_t { any, to_server, to_client };

struct ProbeRule {
  std::vector<ByteMatch> bytes;      // all must match
  bool has_regex = false;
  std::string regex_text;
  std::wregex regex;                 // searched in the first bytes (ECMAScript, bytes as Latin-1)
  uint32_t min_length = 0;
  DirFilter dir = DirFilter::any;
};

enum class FieldType : uint8_t { u8, u16be, u16le, u32be, u32le, ascii, hex };
// How the bytes of a text field (ascii type or regex capture) become text: as they are, or
// decoded to UTF-8 (a UTF-16 name pseudonymises like the same name sent by DICOM or HL7).
enum class TextEncoding : uint8_t { bytes, latin1, utf16be, utf16le };
// The part of the sending device's identity a field gives (asset inventory), if any.
enum class IdentityPart : uint8_t { none, id, udi, serial, type, manufacturer, model, version };

// The regexes of a signature run over wide characters, one per byte (Latin-1): a byte range such
// as [\x80-\xff] then compares unsigned values. `out` receives the bytes of `in`, widened.
void widen(std::span<const uint8_t> in, std::wstring& out);

// The text of `in` read as `enc`, in UTF-8, up to the first NUL character; unpaired UTF-16
// surrogates and a trailing odd byte become U+FFFD.
void decode_text(std::string_view in, TextEncoding enc, std::string& out);

struct Field {
  std::string name;
  bool phi = false;
  bool by_regex = false;
  uint32_t offset = 0, length = 0;   // from the start of the message
  FieldType type = FieldType::ascii;
  TextEncoding encoding = TextEncoding::bytes;
  IdentityPart identity = IdentityPart::none;
  std::wregex regex;                 // over the message's bytes as Latin-1 (widen())
  int group = 1;
  // Regex fields: the capture starts with a length (of `type`, a number type); the value is
  // that many bytes after it (a String sent as length + value ends where its length says).
  bool length_prefix = false;
  // Regex fields with a length prefix: the group holding the length (of the same type) of the
  // element the value lies in, counting the bytes after that group (an attribute's length, a
  // String inside it): a value whose length runs past it is not read. 0: none.
  int within = 0;
  bool has_when = false;
  ByteMatch when;                    // extract only from messages with these bytes
};

struct Framing {
  enum class Kind : uint8_t { none, length, delimiters } kind = Kind::none;
  uint32_t offset = 0, size = 2;     // length field
  bool big_endian = true;
  int64_t adjust = 0;                // message length = field value + adjust
  std::vector<uint8_t> start, end;   // delimiters
  // Delimiters: a byte that escapes the next one (HDLC, RFC 1662: 7d 5e stands for 7e). Probes
  // and fields read the record with the escapes undone.
  bool has_escape = false;
  uint8_t escape = 0, escape_xor = 0x20;
  uint32_t max_message = 65536;
};

// The bytes delimiter framing has searched for delimiters on this thread so far (tests check
// that the work grows with the stream, not with the square of a record held over many segments).
uint64_t delimiter_bytes_scanned();

// `in` with the framing's escapes undone (an escape byte and the next one become the next one
// XOR escape_xor; an escape byte that ends `in` is dropped).
void unescape(std::span<const uint8_t> in, const Framing& fr, std::vector<uint8_t>& out);

struct Signature {
  std::string name, description, vendor, file;
  int line = 0, column = 0;          // where the name is written (1-based), for errors about it
  Transport transport = Transport::tcp;
  std::vector<uint16_t> ports;
  std::vector<ProbeRule> probes;     // any one matching is enough
  Framing framing;
  std::vector<Field> fields;
  bool report_messages = false;      // one event per message (else one summary per flow)
  uint32_t regex_window = 1024;      // bytes of a message searched by field regexes

  Probe probe(std::span<const uint8_t> first, Dir dir) const;

 private:
  // `cut`: the bytes end inside an escape (a match may still come).
  Probe probe_plain(std::span<const uint8_t> first, Dir dir, bool cut) const;
};

struct LoadResult {
  std::vector<std::shared_ptr<const Signature>> signatures;
  std::vector<LoadError> errors;
};

// Parses one YAML text (file = name used in errors). Never throws.
LoadResult parse_signature(const std::string& yaml_text, const std::string& file);
// Every *.yaml / *.yml file of a directory, in name order. Never throws; a missing directory is
// an error. Does not register anything.
LoadResult load_signatures(const std::string& dir);

// Loads a directory into the running registry (signatures whose name is already registered are
// reported as errors and skipped). Call before analysis starts.
std::vector<LoadError> add_signatures(const std::string& dir);
// Registered signatures, and one DissectorInfo for each of the first 64 that name ports: named
// "proprietary" like kProprietaryInfo, probed only on those ports (only_on_port_hints), where
// they run before the built-in dissectors; the dissector it makes is the signature's.
std::vector<std::shared_ptr<const Signature>> registered();
std::span<const DissectorInfo* const> signature_dissectors();
// The built-in signature directory compiled in (may not exist at run time).
const char* builtin_dir();

// A dissector for one signature (used by the registry entries and the tests).
std::unique_ptr<Dissector> make_dissector(std::shared_ptr<const Signature> sig);

}  // namespace proprietary
}  // namespace medmon
