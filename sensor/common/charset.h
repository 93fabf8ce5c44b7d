#pragma once
// Text in the character sets DICOM (Specific Character Set, PS3.3 C.12.1.1.2) and HL7 (MSH-18,
// Table 0211) declare, decoded to UTF-8 with glibc's iconv. Both dissectors use this one decoder
// so that a name gives the same UTF-8 text, and so the same pseudonym, from either protocol.
#include <cstdint>
#include <string>
#include <string_view>

namespace medmon::charset {

enum class Set : uint8_t {
  ascii, utf8,
  iso8859_1, iso8859_2, iso8859_3, iso8859_4, iso8859_5, iso8859_6, iso8859_7, iso8859_8,
  iso8859_9, iso8859_15, tis620,
  jis_x0201,  // 8-bit: roman in the lower half, half-width katakana in the upper half
  jis_x0208, jis_x0212,  // 94x94 sets reached through ISO 2022 escape sequences
  ks_x1001, gb2312,      // in the upper half (EUC form), as DICOM's ISO 2022 IR 149 / IR 58
  gb18030, gbk, big5, cns11643, shift_jis,
  unknown,
};

// Decodes raw text whose initial set is `initial` and appends it to out as UTF-8. With iso2022
// the ISO 2022 escape sequences DICOM (PS3.5 6.1.2.5) and HL7 senders use switch the G0 (lower
// half) and G1 (upper half) sets; without, ESC is an ordinary byte. Text that does not decode
// (invalid or incomplete sequences, bytes no designated set covers, an unknown set) is appended
// unchanged and false is returned: the JSON writer escapes the bytes that are not UTF-8.
// `upper` is the G1 set assumed until an escape designates one when `initial` leaves G1 empty
// (ASCII or a 94x94 set). Works in bounded steps; the output is at most 4 bytes per input byte.
bool to_utf8(std::string_view raw, Set initial, bool iso2022, std::string& out, Set upper = Set::ascii);

}  // namespace medmon::charset
