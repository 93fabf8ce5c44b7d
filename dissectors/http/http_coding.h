#pragma once
// The content and transfer codings of an HTTP body (gzip, x-gzip, deflate) undone, for the
// dissectors that read a protocol inside HTTP bodies (HL7 v2, SDC's SOAP): a compressed body
// is read as its text, and so is the start of one when a probe judges a message by its body.
// The text is capped: a small body may inflate to a very large one.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace medmon::http {

enum class Decoding : uint8_t {
  ok,        // the text of the whole body
  unknown,   // a coding other than gzip, x-gzip, deflate (br, x-lz4, compress): not read
  broken,    // the data does not inflate to its end
  too_long,  // the text passes the cap: `out` holds its first `cap` bytes
};

// A body's text with its codings (Message::codings: comma-separated, in the order applied)
// undone, the last applied first. gzip and zlib streams are read alike (gzip members may follow
// one another), and "deflate" also as raw deflate, as some servers send it.
Decoding undo_codings(std::string_view codings, std::string_view body, size_t cap, std::string& out);

// The text the first bytes of a body (which may stop anywhere) inflate to, up to `cap` bytes: for
// a probe, which sees only a message's first bytes. `whole` is set when that is all of the text
// (the data ended within the bytes given, or the text reached the cap: no more is looked at).
// False when a coding is unknown or the data is broken as far as it goes.
bool inflate_prefix(std::string_view codings, std::string_view prefix, size_t cap, std::string& out, bool& whole);

// The codings a head gives its body, as Message::codings: Content-Encoding, then the transfer
// codings but chunked and identity (lines ending with CRLF or LF alone; at most 128 bytes).
std::string head_codings(std::string_view head);

}  // namespace medmon::http
