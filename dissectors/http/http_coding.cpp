#include "dissectors/http/http_coding.h"

#include <algorithm>
#include <vector>

#include <zlib.h>

namespace medmon::http {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Case-insensitive equality with a lower-case name.
bool iequals(std::string_view s, std::string_view name) {
  if (s.size() != name.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (lower(s[i]) != name[i]) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

enum class Run : uint8_t {
  ended,   // the data inflated to its end (whole streams; padding after the last let be)
  cut,     // the data stopped inside a stream
  broken,  // not a stream of this kind, or corrupt
  capped,  // the text reached the cap, where inflating stopped
};

// One coding undone: a gzip or zlib stream (windowBits 15 + 32 reads either), or raw deflate
// (-15). gzip members may follow one another. The text goes to `out`, at most `cap` bytes.
Run inflate_run(std::string_view in, int window_bits, size_t cap, std::string& out) {
  out.clear();
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK) return Run::broken;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  Run result = Run::cut;
  bool ended = false;  // a whole stream (member) was read last
  char buf[16384];
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    const int r = inflate(&zs, Z_NO_FLUSH);
    const size_t n = sizeof buf - zs.avail_out;
    if (n > cap - out.size()) {
      out.append(buf, cap - out.size());
      result = Run::capped;
      break;
    }
    out.append(buf, n);
    if (r == Z_STREAM_END) {
      ended = true;
      if (zs.avail_in == 0 || inflateReset(&zs) != Z_OK) { result = Run::ended; break; }
      continue;
    }
    if (r == Z_OK) { ended = false; continue; }
    if (r == Z_BUF_ERROR) { result = Run::cut; break; }  // no progress without more data
    // Bytes after a whole stream that start none (padding) are let be; else it is broken.
    result = ended && r == Z_DATA_ERROR ? Run::ended : Run::broken;
    break;
  }
  inflateEnd(&zs);
  return result;
}

// The codings of a list as applied, each trimmed.
std::vector<std::string_view> coding_list(std::string_view codings) {
  std::vector<std::string_view> list;
  for (;;) {
    const size_t comma = codings.find(',');
    list.push_back(trim(codings.substr(0, comma)));
    if (comma == std::string_view::npos) break;
    codings.remove_prefix(comma + 1);
  }
  return list;
}

// One coding undone as Run tells, gzip and deflate alike; raw deflate tried for "deflate".
Run undo_one(std::string_view coding, std::string_view in, size_t cap, std::string& out, bool& known) {
  const bool gzip = iequals(coding, "gzip") || iequals(coding, "x-gzip");
  const bool deflate = iequals(coding, "deflate");
  known = gzip || deflate;
  if (!known) return Run::broken;
  Run r = inflate_run(in, 15 + 32, cap, out);
  if (r == Run::broken && deflate) r = inflate_run(in, -15, cap, out);
  return r;
}

}  // namespace

Decoding undo_codings(std::string_view codings, std::string_view body, size_t cap, std::string& out) {
  if (codings.empty()) {
    out.assign(body.substr(0, cap));
    return body.size() > cap ? Decoding::too_long : Decoding::ok;
  }
  const std::vector<std::string_view> list = coding_list(codings);
  std::string in(body), next;
  for (auto c = list.rbegin(); c != list.rend(); ++c) {
    bool known = false;
    const Run r = undo_one(*c, in, cap, next, known);
    if (!known) return Decoding::unknown;
    if (r == Run::capped) {
      out = std::move(next);
      return Decoding::too_long;
    }
    if (r != Run::ended) return Decoding::broken;
    in.swap(next);
  }
  out = std::move(in);
  return Decoding::ok;
}

bool inflate_prefix(std::string_view codings, std::string_view prefix, size_t cap, std::string& out, bool& whole) {
  if (codings.empty()) {
    out.assign(prefix.substr(0, cap));
    whole = prefix.size() >= cap;
    return true;
  }
  const std::vector<std::string_view> list = coding_list(codings);
  std::string in(prefix), next;
  whole = true;
  for (auto c = list.rbegin(); c != list.rend(); ++c) {
    bool known = false;
    const Run r = undo_one(*c, in, cap, next, known);
    if (!known || r == Run::broken) return false;
    if (r == Run::cut) whole = false;
    in.swap(next);
  }
  out = std::move(in);
  return true;
}

std::string head_codings(std::string_view head) {
  std::string content, transfer;
  auto add = [](std::string_view list, std::string& to) {
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view c = trim(list.substr(0, comma));
      list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
      if (c.empty() || iequals(c, "chunked") || iequals(c, "identity")) continue;
      if (!to.empty()) to.push_back(',');
      to.append(c);
    }
  };
  for (size_t p = 0; p < head.size();) {
    size_t e = head.find('\n', p);
    if (e == std::string_view::npos) e = head.size();
    std::string_view line = head.substr(p, e - p);
    p = e + 1;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    if (iequals(name, "content-encoding")) add(line.substr(colon + 1), content);
    else if (iequals(name, "transfer-encoding")) add(line.substr(colon + 1), transfer);
  }
  if (!content.empty() && !transfer.empty()) content.push_back(',');
  content.append(transfer);
  if (content.size() > 128) content.resize(128);
  return content;
}

}  // namespace medmon::http
