#include "dissectors/sdc/sdc_dissector.h"

#include "dissectors/api/announced_servers.h"
#include "dissectors/api/xml_prolog.h"
#include "dissectors/api/xml_text.h"
#include "dissectors/api/worker_budget.h"
#include "dissectors/http/http_coding.h"
#include "dissectors/http/http_reader.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace medmon {
namespace sdc {

namespace {

constexpr size_t kMaxHeader = 64 * 1024;
constexpr size_t kMaxStartLine = 8 * 1024;  // a chunk size line
constexpr size_t kMaxList = 16;
constexpr size_t kMaxStates = 32;  // patient context states read in one message
constexpr size_t kMaxEndpoints = 4096;
constexpr uint16_t kPorts[] = {3702};
constexpr size_t kMaxProbedText = 64 * 1024;  // the text a probe inflates a compressed body's first bytes to
constexpr size_t kChunkedBodyMemory = 64u << 20;
constexpr size_t kChunkedBodyLeast = 4u << 20;  // a worker's share is never below one body's largest cap

// A Content-Length message is held whole until it is all here, so head and body must fit the
// stream feeder's buffer (reassembly.max_dissector_buffer, 2 MiB by default: 1.875 MiB of body)
// with room for the segment that completes them. A chunked body is decoded as it comes, up to the
// same size.
size_t max_body(const FlowContext& ctx) {
  size_t hold = ctx.hold_limit();
  return hold > 4 * kMaxHeader ? hold - 2 * kMaxHeader : hold / 2;
}

constexpr std::string_view kSoap12 = "http://www.w3.org/2003/05/soap-envelope";
constexpr std::string_view kMarkers[] = {"MedicalDevice", "sdc.mds.", "sdc.ctxt.", "sdc.cdc."};

using xml::kNotXml;
using xml::root_start;
using xml::space;

std::string_view trim(std::string_view v) {
  while (!v.empty() && space(v.front())) v.remove_prefix(1);
  while (!v.empty() && space(v.back())) v.remove_suffix(1);
  return v;
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

size_t ifind(std::string_view hay, std::string_view needle, size_t from = 0) {
  if (needle.empty()) return from;
  for (size_t i = from; i + needle.size() <= hay.size(); ++i) {
    size_t k = 0;
    while (k < needle.size() && lower(hay[i + k]) == lower(needle[k])) ++k;
    if (k == needle.size()) return i;
  }
  return std::string_view::npos;
}

// "11073" counts only inside a namespace URI path (.../downloads/11073/11073-20702-2016, the
// drafts' http://p11073-10207/...), never as digits of a UUID or an AppSequence InstanceId.
bool has_11073_uri(std::string_view s) {
  for (size_t i = s.find("11073"); i != std::string_view::npos; i = s.find("11073", i + 1)) {
    bool before = i > 0 && (s[i - 1] == '/' || s[i - 1] == 'p');
    bool after = i + 5 < s.size() && (s[i + 5] == '/' || s[i + 5] == '-');
    if (before && after) return true;
  }
  return false;
}

bool has_marker(std::string_view s) {
  for (auto m : kMarkers) if (s.find(m) != std::string_view::npos) return true;
  return has_11073_uri(s);
}

// The root element is a SOAP Envelope (any prefix).
Probe envelope(std::string_view s, bool full) {
  size_t r = root_start(s);
  if (r == kNotXml) return Probe::no;
  if (r == std::string_view::npos) return full ? Probe::no : Probe::need_more;
  size_t n = r + 1;
  while (n < s.size() && !space(s[n]) && s[n] != '>' && s[n] != '/') ++n;
  if (n >= s.size()) return full ? Probe::no : Probe::need_more;
  std::string_view q = s.substr(r + 1, n - r - 1);
  size_t colon = q.find(':');
  if ((colon == std::string_view::npos ? q : q.substr(colon + 1)) != "Envelope") return Probe::no;
  bool soap = s.find(kSoap12) != std::string_view::npos;
  if (soap && has_marker(s)) return Probe::yes;
  return full ? Probe::no : Probe::need_more;
}

bool starts(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// The data of the chunks at the front of a chunked body, up to where the bytes end or a chunk
// size line cannot be read.
std::string dechunk_prefix(std::string_view body) {
  std::string data;
  while (!body.empty()) {
    size_t le = body.find("\r\n");
    if (le == std::string_view::npos || le == 0) break;
    uint64_t n = 0;
    if (!http::chunk_size(body.substr(0, le), (1u << 24) - 1, n) || n == 0) break;
    body.remove_prefix(le + 2);
    data.append(body.substr(0, n));
    if (body.size() < n + 2) break;
    body.remove_prefix(n + 2);
  }
  return data;
}

}  // namespace

Probe probe(std::span<const uint8_t> first, Dir) {
  std::string_view s(reinterpret_cast<const char*>(first.data()), first.size());
  bool full = s.size() >= 512;
  if (s.empty()) return Probe::need_more;
  if (s[0] == '<' || s[0] == ' ' || s[0] == '\r' || s[0] == '\n' || static_cast<uint8_t>(s[0]) == 0xEF) return envelope(s, full);
  // HTTP: a request or response carrying application/soap+xml.
  static constexpr std::string_view kStarts[] = {"POST ", "GET ", "HTTP/1."};
  bool http = false;
  for (auto p : kStarts) {
    if (starts(s, p)) { http = true; break; }
    if (s.size() < p.size() && starts(p, s)) return Probe::need_more;
  }
  if (!http) return Probe::no;
  size_t hend = s.find("\r\n\r\n");
  if (hend == std::string_view::npos) return full ? Probe::no : Probe::need_more;
  if (ifind(s.substr(0, hend), "application/soap+xml") == std::string_view::npos) return Probe::no;
  std::string_view body = s.substr(hend + 4);
  std::string data;
  if (ifind(s.substr(0, hend), "transfer-encoding") != std::string_view::npos &&
      ifind(s.substr(0, hend), "chunked") != std::string_view::npos) {
    // A chunked body: the envelope is the data of the chunks (what of it is here), which a
    // chunk-size line may split anywhere.
    data = dechunk_prefix(body);
    body = data;
  }
  if (body.empty()) return full ? Probe::no : Probe::need_more;
  const std::string codings = http::head_codings(s.substr(0, hend));
  if (codings.empty()) return envelope(body, full);
  // A compressed body (gzip, deflate) is judged by the text its bytes here inflate to; one in
  // another coding cannot be.
  std::string text;
  bool whole = false;
  if (!http::inflate_prefix(codings, body, kMaxProbedText, text, whole)) return Probe::no;
  if (text.empty()) return full || whole ? Probe::no : Probe::need_more;
  return envelope(text, full || whole);
}

namespace {

constexpr size_t npos = std::string_view::npos;

std::string_view local_name(std::string_view q) {
  size_t colon = q.find(':');
  return colon == npos ? q : q.substr(colon + 1);
}

// Offset after the markup at x[i] that is no element: a comment, CDATA section, processing
// instruction or declaration; npos when it does not end.
size_t skip_markup(std::string_view x, size_t i) {
  std::string_view open = "<!", close = ">";
  if (x.substr(i, 4) == "<!--") open = "<!--", close = "-->";
  else if (x.substr(i, 9) == "<![CDATA[") open = "<![CDATA[", close = "]]>";
  else if (x.substr(i, 2) == "<?") open = "<?", close = "?>";
  size_t e = x.find(close, i + open.size());
  return e == npos ? npos : e + close.size();
}

// The '>' that ends a tag, from `n` inside it: a quoted attribute value may hold one.
size_t tag_close(std::string_view x, size_t n) {
  char quote = 0;
  for (size_t k = n; k < x.size(); ++k) {
    char c = x[k];
    if (quote) { if (c == quote) quote = 0; }
    else if (c == '"' || c == '\'') quote = c;
    else if (c == '>') return k;
  }
  return npos;
}

// A '<' before this byte may start a name (ASCII letter, '_', ':' or a UTF-8 byte); any other
// '<' is no markup (text that should have been written &lt;).
bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || static_cast<uint8_t>(c) >= 0x80;
}

// A start or end tag.
struct Tag {
  size_t start = 0, end = 0;  // its '<', and past its '>'
  std::string_view qname;     // qualified name
  std::string_view attrs;     // what follows the name up to '>' (attributes, a final '/')
  bool closing = false;       // an end tag
  bool empty = false;         // a start tag ending "/>"
};

// The next tag at or after `from`, past comments, CDATA sections, processing instructions and
// declarations (whose text may look like tags). False at the end or where markup does not end.
bool next_tag(std::string_view x, size_t from, Tag& t) {
  for (size_t i = from; (i = x.find('<', i)) != npos;) {
    if (i + 1 < x.size() && (x[i + 1] == '!' || x[i + 1] == '?')) {
      i = skip_markup(x, i);
      if (i == npos) return false;
      continue;
    }
    t.start = i;
    t.closing = i + 1 < x.size() && x[i + 1] == '/';
    size_t b = i + 1 + (t.closing ? 1 : 0), n = b;
    if (b >= x.size()) return false;
    if (!name_start(x[b])) { i = b; continue; }
    while (n < x.size() && !space(x[n]) && x[n] != '>' && x[n] != '/') ++n;
    size_t gt = tag_close(x, n);
    if (gt == npos) return false;
    t.qname = x.substr(b, n - b);
    t.attrs = x.substr(n, gt - n);
    t.empty = !t.closing && x[gt - 1] == '/';
    t.end = gt + 1;
    return true;
  }
  return false;
}

// Where the element whose start tag (qualified name q) ends at `from` ends: the offset of its
// end tag ("</q" and white space before '>' allowed), elements of the same name inside it
// counted; `after` receives the offset past that tag. npos when it does not end.
size_t end_tag(std::string_view x, std::string_view q, size_t from, size_t& after) {
  size_t depth = 0;
  Tag t;
  for (size_t i = from; next_tag(x, i, t); i = t.end) {
    if (t.qname != q || t.empty) continue;
    if (!t.closing) { ++depth; continue; }
    if (depth == 0) { after = t.end; return t.start; }
    --depth;
  }
  return npos;
}

// Each attribute of a start tag (`Tag::attrs`): f(qualified name, value with its references
// decoded). Stops where the attributes are not well formed.
template <class F>
void for_each_attribute(std::string_view a, F f) {
  std::string value;
  size_t i = 0;
  for (;;) {
    while (i < a.size() && space(a[i])) ++i;
    size_t n = i;
    while (n < a.size() && a[n] != '=' && a[n] != '/' && !space(a[n])) ++n;
    if (n == i) return;
    std::string_view name = a.substr(i, n - i);
    while (n < a.size() && space(a[n])) ++n;
    if (n >= a.size() || a[n] != '=') return;
    ++n;
    while (n < a.size() && space(a[n])) ++n;
    if (n >= a.size() || (a[n] != '"' && a[n] != '\'')) return;
    size_t qe = a.find(a[n], n + 1);
    if (qe == npos) return;
    value.clear();
    xml::append_decoded(a.substr(n + 1, qe - n - 1), value);
    f(name, std::string_view(value));
    i = qe + 1;
  }
}

// The identifier an InstanceIdentifier (BICEPS: Identification, VisitNumber, order numbers) gives:
// its Extension, or, without one, its Root alone, which is then the whole identifier. Empty when
// it has neither.
std::string instance_id(std::string_view attrs) {
  std::string root, ext;
  for_each_attribute(attrs, [&](std::string_view name, std::string_view value) {
    if (name == "Extension") ext.assign(value);
    else if (name == "Root") root.assign(value);
  });
  if (!trim(ext).empty()) return ext;
  return std::string(trim(root));
}

}  // namespace

std::string_view element_text(std::string_view x, std::string_view local, size_t from, size_t* pos) {
  Tag t;
  for (size_t i = from; next_tag(x, i, t); i = t.end) {
    if (t.closing || local_name(t.qname) != local) continue;
    if (t.empty) { if (pos) *pos = t.end; return {}; }
    size_t after = 0;
    size_t e = end_tag(x, t.qname, t.end, after);
    if (e == npos) return {};
    if (pos) *pos = after;
    return x.substr(t.end, e - t.end);
  }
  return {};
}

std::string text_of(std::string_view content) {
  std::string out;
  size_t i = 0;
  while (i < content.size()) {
    size_t lt = content.find('<', i);
    xml::append_decoded(content.substr(i, lt == npos ? npos : lt - i), out);
    if (lt == npos) break;
    if (content.substr(lt, 9) == "<![CDATA[") {
      size_t e = content.find("]]>", lt + 9);
      out.append(content.substr(lt + 9, e == npos ? npos : e - lt - 9));
      i = e == npos ? npos : e + 3;
    } else if (lt + 1 < content.size() && (content[lt + 1] == '!' || content[lt + 1] == '?')) {
      i = skip_markup(content, lt);
    } else if (lt + 1 < content.size() && !name_start(content[lt + 1]) && content[lt + 1] != '/') {
      out.push_back('<');
      i = lt + 1;
    } else {
      size_t gt = tag_close(content, lt + 1);
      i = gt == npos ? npos : gt + 1;
    }
    if (i == npos) break;
  }
  return out;
}

std::string element_value(std::string_view xml, std::string_view local) {
  return text_of(element_text(xml, local));
}

namespace {

// The endpoints announced, one set for the process (analyze --workers fills it on the merging
// thread only, in output order: announced_servers.h). Full, the one announced longest ago makes
// room: a flood of Hellos does not keep later devices out for good, and which one goes depends
// only on the order of the announcements.
struct Endpoints {
  using Key = std::pair<IpAddr, uint16_t>;
  std::mutex mu;
  std::list<Key> order;  // least recently announced first
  std::map<Key, std::list<Key>::iterator> index;
};
Endpoints& endpoints() {
  static Endpoints e;
  return e;
}

template <class F>
void for_each_word(std::string_view v, F f) {
  size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && space(v[i])) ++i;
    size_t j = i;
    while (j < v.size() && !space(v[j])) ++j;
    if (j > i) f(v.substr(i, j - i));
    i = j;
  }
}

// A URL's parts: the scheme (lower case), the host and port (without user information), and
// what follows them (path, query, fragment). False when it has no "scheme://".
struct Url {
  std::string scheme;
  std::string_view host, port, rest;
};
bool split_url(std::string_view url, Url& u) {
  size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  u.scheme.clear();
  for (char c : url.substr(0, sep)) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))
      return false;
    u.scheme.push_back(lower(c));
  }
  std::string_view after = url.substr(sep + 3);
  size_t end = after.find_first_of("/?#");
  std::string_view authority = after.substr(0, end);
  u.rest = end == std::string_view::npos ? std::string_view() : after.substr(end);
  // user:password@ is no part of the address (and never written).
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  u.host = authority;
  u.port = {};
  if (!authority.empty() && authority[0] == '[') {
    size_t rb = authority.find(']');
    if (rb == std::string_view::npos) return false;
    u.host = authority.substr(1, rb - 1);
    if (rb + 1 < authority.size()) {
      if (authority[rb + 1] != ':') return false;
      u.port = authority.substr(rb + 2);
    }
  } else if (size_t c = authority.rfind(':'); c != std::string_view::npos) {
    u.host = authority.substr(0, c);
    u.port = authority.substr(c + 1);
  }
  return true;
}

// https://10.0.0.5:6464/path -> (10.0.0.5, 6464). IPv6 in brackets.
bool parse_https(std::string_view url, IpAddr& ip, uint16_t& port) {
  Url u;
  if (!split_url(url, u) || u.scheme != "https" || !IpAddr::parse(u.host, ip)) return false;
  unsigned v = 443;
  if (!u.port.empty()) {
    v = 0;
    for (char ch : u.port) {
      if (ch < '0' || ch > '9' || v > 65535) return false;
      v = v * 10 + static_cast<unsigned>(ch - '0');
    }
    if (v == 0 || v > 65535) return false;
  }
  port = static_cast<uint16_t>(v);
  return true;
}

// The IP address of an http(s) URL's host; false for host names and other schemes.
bool url_ip(std::string_view url, IpAddr& ip) {
  Url u;
  return split_url(url, u) && (u.scheme == "https" || u.scheme == "http") && IpAddr::parse(u.host, ip);
}

// A transport address as written: its scheme, host and port as sent, its path as the pseudonym
// http_path gives requests to it (a hosted service's path may name a patient or an episode),
// the query string, fragment and user information left out; "/" for an empty path. A word that
// is no URL is written as its pseudonym.
std::string xaddr_written(std::string_view url, FlowContext& ctx) {
  Url u;
  if (!split_url(url, u)) return ctx.pseudonym(url);
  std::string out = u.scheme + "://";
  bool v6 = u.host.find(':') != std::string_view::npos;
  if (v6) out.push_back('[');
  out.append(u.host);
  if (v6) out.push_back(']');
  if (!u.port.empty()) out.append(":").append(u.port);
  std::string_view path = u.rest.substr(0, u.rest.find_first_of("?#"));
  out.push_back('/');
  if (!path.empty() && path != "/") out.append(ctx.pseudonym(path));
  return out;
}

// An endpoint reference address as written: a URN (urn:uuid:..., the stable identity of a
// device, no PHI) as sent, any other address as a transport address is (xaddr_written), since an
// http address may name a patient in its path or query string. The inventory's identity is this
// text, so one address gives one identity in every message.
std::string address_written(std::string_view a, FlowContext& ctx) {
  bool urn = ifind(a.substr(0, 4), "urn:") == 0 || ifind(a.substr(0, 5), "uuid:") == 0;
  if (urn && std::none_of(a.begin(), a.end(), space)) return std::string(a);
  return xaddr_written(a, ctx);
}

struct Participant {
  std::string address;
  bool sender = true;  // the sender of the message itself, not a device a discovery proxy answers for
  std::vector<std::string> types, scopes, xaddrs;
  std::string metadata_version;
};

struct DeviceInfo {
  std::string manufacturer, model_name, model_number, friendly_name, firmware_version, serial_number;
  bool any() const { return !manufacturer.empty() || !model_name.empty() || !friendly_name.empty() || !serial_number.empty(); }
};

// A participant announced by the sender of the message is the sender itself unless its XAddrs
// only name other addresses (a discovery proxy answering for other devices). Only addresses of
// the sender's family count: a dual-stack device announces its IPv4 XAddrs over IPv6 too.
bool is_sender(const Participant& p, const IpAddr& sender) {
  bool other = false;
  for (auto& x : p.xaddrs) {
    IpAddr ip;
    if (!url_ip(x, ip) || ip.family != sender.family) continue;
    if (ip == sender) return true;
    other = true;
  }
  return !other;
}

// The start line of the HTTP message a SOAP envelope came in.
struct HttpInfo {
  std::string_view method, path;
  int status = 0;
  std::string_view content_type;
};

// SOAP over HTTP is read strictly; the stream feeder holds what is not read yet, so a message
// with a Content-Length is read whole where it lies; a response must give its length; after lost
// bytes, or a chunked body too long to hold, the next start line is looked for (a SOAP body ends
// with '>' and no line end).
http::Options http_options() {
  http::Options o;
  o.syntax = http::Syntax::strict;
  o.holding = http::Holding::caller;
  o.body_until_close = false;
  o.resync = true;
  o.resync_after = '>';
  o.max_head = kMaxHeader + 4;  // the head up to its blank line, and that line's CR LF CR LF
  o.max_line = kMaxStartLine;
  // Chunked bodies are decoded into the reader; over all flows they may hold this much.
  struct BodyMemoryTag {};
  o.memory = &worker_budget<BodyMemoryTag, http::BodyMemory>(kChunkedBodyMemory, kChunkedBodyLeast);
  return o;
}

class SdcDissector final : public Dissector {
 public:
  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override {
    std::string_view v(reinterpret_cast<const char*>(data.data()), data.size());
    if (ctx.endpoints().proto == 17) {  // one datagram, one envelope
      soap(dir, v, nullptr, ctx);
      return {data.size(), 0, 0, false};
    }
    // nDPI reads HTTP: the flow keeps its name and risks (credentials sent in clear).
    if (!ctx.keeps_classifying()) ctx.keep_classifying();
    // HTTP messages one after the other, until one is not all here or cannot be read.
    DirState& d = dirs_[static_cast<int>(dir)];
    d.read = true;
    d.reader.set_max_body(max_body(ctx));
    Messages sink{*this, dir, ctx};
    return d.reader.read(data, ctx.stream_offset(), sink);
  }

  // Lost bytes: the message they belong to is dropped (whatever was read of it is not a
  // message), and the direction resumes at the next HTTP start line. Bytes lost before any was
  // read (those of a connection claimed at a later message, or of a direction not held while
  // probing) lose no message the dissector was reading.
  void on_gap(Dir dir, uint64_t, FlowContext& ctx) override {
    DirState& d = dirs_[static_cast<int>(dir)];
    if (d.read) ctx.anomaly("sdc", "message_lost", ctx.stream_offset());
    d.reader.gap();
  }
  void on_end(Dir, FlowContext&) override {}

 private:
  struct DirState {
    http::Reader reader{http_options()};
    bool read = false;  // bytes of the direction were given to the reader
  };

  // What the reader finds: each message's body is a SOAP envelope.
  struct Messages final : http::Handler {
    SdcDissector& self;
    Dir dir;
    FlowContext& ctx;
    Messages(SdcDissector& s, Dir d, FlowContext& c) : self(s), dir(d), ctx(c) {}
    void message(const http::Message& m) override {
      HttpInfo info{m.method, m.target, m.status, m.content_type};
      if (m.codings.empty() || m.body.empty()) {
        self.soap(dir, m.body, &info, ctx);
        return;
      }
      // A compressed body (Content-Encoding or a transfer coding gzip/deflate, which SDC stacks
      // send when the peer accepts it) is read as its text: its PHI is as much in clear.
      std::string text;
      switch (http::undo_codings(m.codings, m.body, max_body(ctx), text)) {
        case http::Decoding::ok: self.soap(dir, text, &info, ctx); return;
        case http::Decoding::too_long: ctx.anomaly("sdc", "body_too_long", m.offset); return;
        case http::Decoding::unknown:
        case http::Decoding::broken:
          // Another exchange of the connection (a WSDL, a health check) is let be, as uncompressed.
          if (ifind(m.content_type, "soap") != npos) ctx.anomaly("sdc", "undecodable_body", m.offset);
          return;
      }
    }
    // Where the fault was found; in the order of http::Anomaly (truncated_body never comes:
    // the end of a stream is not given to the reader).
    void anomaly(http::Anomaly a, uint64_t, uint64_t at) override {
      static constexpr std::string_view kNames[] = {"bad_http_start_line", "http_header_too_long", "body_too_long",
                                                    "bad_chunk",           "no_content_length",    "truncated_body",
                                                    "body_memory_budget"};
      ctx.anomaly("sdc", kNames[static_cast<size_t>(a)], at);
    }
  };

  static void words(std::string_view v, std::vector<std::string>& out) {
    for_each_word(v, [&](std::string_view w) {
      if (out.size() < kMaxList && std::find(out.begin(), out.end(), w) == out.end()) out.emplace_back(w);
    });
  }

  // One SOAP envelope as the steps of soap() read it, in their order. `body` points into the
  // envelope; values are its text (text_of).
  struct Message {
    std::string_view body;                               // the SOAP Body's content
    std::string action, short_action;                    // wsa:Action and its last path segment
    std::string message_id, relates_to;                  // wsa:MessageID, wsa:RelatesTo
    std::vector<Participant> parts;                      // announced or matched participants (discovery)
    std::vector<std::string> query_types, query_scopes;  // what a Probe or Resolve asks for
    DeviceInfo dev;                                      // DPWS metadata seen in clear
    std::string host_address;                            // the Host's endpoint reference, with metadata
    std::vector<std::string> phi, patients;              // PHI field names seen in clear; patient pseudonyms
    std::vector<std::string> orders, physicians;         // pseudonyms of a workflow's order ids and physicians' names
    std::vector<std::string> operators;                  // pseudonyms of operators' names (OperatorContextState)
    // A WS-Discovery announcement (Hello or a match): it describes its sender.
    bool announces() const {
      return short_action == "Hello" || short_action == "ProbeMatches" || short_action == "ResolveMatches";
    }
    // The message describes its sender: an announcement of itself (not only of devices a
    // discovery proxy answers for), or DPWS metadata.
    bool describes() const {
      return (announces() && std::any_of(parts.begin(), parts.end(), [](const Participant& p) { return p.sender; })) ||
             dev.any();
    }
  };

  // One envelope: read, PHI hidden, flow facts and identities recorded, then its event.
  void soap(Dir dir, std::string_view xml, const HttpInfo* http, FlowContext& ctx) {
    Message m;
    if (!read_envelope(xml, http, m, ctx)) return;
    read_discovery(m);
    read_metadata(m);
    hide_addresses(dir, m, ctx);
    read_patient(m, ctx);
    hide_person_scopes(m, ctx);
    record_facts(dir, m, ctx);
    add_identities(dir, m, ctx);
    write_event(dir, http, m, ctx);
  }

  // The Body and the WS-Addressing header; false (with an anomaly unless it is an empty HTTP
  // body, or one that does not say it is SOAP) when the text is not a SOAP envelope.
  static bool read_envelope(std::string_view xml, const HttpInfo* http, Message& m, FlowContext& ctx) {
    std::string_view header = element_text(xml, "Header");
    m.body = element_text(xml, "Body");
    m.action = trim(element_value(header, "Action"));
    if (m.action.empty() && m.body.empty()) {
      if (http && xml.empty()) return false;  // e.g. 202 Accepted for a one-way message
      // Another exchange of the connection (a GET of the service's WSDL, a health check): let be.
      if (http && ifind(http->content_type, "soap") == npos) return false;
      ctx.anomaly("sdc", "not_a_soap_envelope", ctx.stream_offset());
      return false;
    }
    size_t slash = m.action.rfind('/');
    m.short_action = m.action.substr(slash == std::string::npos ? 0 : slash + 1);
    m.message_id = trim(element_value(header, "MessageID"));
    m.relates_to = trim(element_value(header, "RelatesTo"));
    return true;
  }

  // Discovery: Hello, Bye, ProbeMatch, ResolveMatch blocks, or the query of Probe/Resolve.
  static void read_discovery(Message& m) {
    for (std::string_view block_name : {"Hello", "Bye", "ProbeMatch", "ResolveMatch"}) {
      size_t pos = 0;
      while (m.parts.size() < kMaxList) {
        size_t next = 0;
        std::string_view b = element_text(m.body, block_name, pos, &next);
        if (next == 0 || next <= pos) break;
        pos = next;
        if (b.empty()) continue;
        Participant p;
        p.address.assign(trim(element_value(element_text(b, "EndpointReference"), "Address")));
        words(element_value(b, "Types"), p.types);
        words(element_value(b, "Scopes"), p.scopes);
        words(element_value(b, "XAddrs"), p.xaddrs);
        p.metadata_version.assign(trim(element_value(b, "MetadataVersion")));
        m.parts.push_back(std::move(p));
      }
    }
    if (m.parts.empty()) {
      std::string_view q = element_text(m.body, "Probe");
      if (q.empty()) q = element_text(m.body, "Resolve");
      words(element_value(q, "Types"), m.query_types);
      words(element_value(q, "Scopes"), m.query_scopes);
    }
  }

  // DPWS metadata (WS-Transfer GetResponse / WS-MetadataExchange), and with it the Host's address.
  static void read_metadata(Message& m) {
    DeviceInfo& dev = m.dev;
    std::string_view model = element_text(m.body, "ThisModel");
    std::string_view device = element_text(m.body, "ThisDevice");
    dev.manufacturer.assign(trim(element_value(model, "Manufacturer")));
    dev.model_name.assign(trim(element_value(model, "ModelName")));
    dev.model_number.assign(trim(element_value(model, "ModelNumber")));
    dev.friendly_name.assign(trim(element_value(device, "FriendlyName")));
    dev.firmware_version.assign(trim(element_value(device, "FirmwareVersion")));
    dev.serial_number.assign(trim(element_value(device, "SerialNumber")));
    if (!dev.any()) return;
    std::string_view host = element_text(m.body, "Host");
    m.host_address.assign(trim(element_value(element_text(host, "EndpointReference"), "Address")));
  }

  // Endpoint reference addresses are written as address_written gives them, and each
  // participant is told apart as its sender's own or one a proxy answers for.
  static void hide_addresses(Dir dir, Message& m, FlowContext& ctx) {
    for (auto& p : m.parts) {
      if (!p.address.empty()) p.address = address_written(p.address, ctx);
      p.sender = is_sender(p, sender_ip(dir, ctx));
    }
    if (!m.host_address.empty()) m.host_address = address_written(m.host_address, ctx);
  }

  // A start tag of a context state of the given type: named so, or typed so with xsi:type (any
  // prefixes) as BICEPS writes it: <msg:ContextState xsi:type="pm:PatientContextState">
  // (GetContextStates, reports) or <pm:State xsi:type="pm:PatientContextState"> (the MDIB).
  static bool context_state(const Tag& t, std::string_view type) {
    if (local_name(t.qname) == type) return true;
    bool typed = false;
    for_each_attribute(t.attrs, [&](std::string_view name, std::string_view value) {
      if (name.find(':') != std::string_view::npos && local_name(name) == "type" && local_name(trim(value)) == type)
        typed = true;
    });
    return typed;
  }

  static void add_unique(std::vector<std::string>& v, std::string x) {
    if (v.size() < kMaxList && std::find(v.begin(), v.end(), x) == v.end()) v.push_back(std::move(x));
  }

  // The name of a person reference (its Name: BaseDemographics) in DICOM PN component order,
  // Familyname^Givenname^Middlename, trailing '^' trimmed; empty when it gives none.
  static std::string person_name(std::string_view person) { return name_of(element_text(person, "Name")); }
  // The same of a BaseDemographics element's content (its Familyname, Givenname, Middlename).
  static std::string name_of(std::string_view name) {
    std::string pn;
    for (std::string_view part : {"Familyname", "Givenname", "Middlename"}) {
      if (part != "Familyname") pn.push_back('^');
      pn.append(trim(element_value(name, part)));
    }
    while (!pn.empty() && pn.back() == '^') pn.pop_back();
    return pn;
  }

  // Patient context (BICEPS PatientContextState), and the patient a workflow context names
  // (WorkflowContextState: WorkflowDetail/Patient, a person reference with demographics):
  // identifiers and demographics are PHI; an operator's (OperatorContextState) identifier and name
  // are personal data. Every state of the message counts (up to kMaxStates): a message may hold
  // several, earlier ones empty or not associated.
  static void read_patient(Message& m, FlowContext& ctx) {
    static constexpr std::pair<std::string_view, std::string_view> kPhi[] = {
        {"Givenname", "sdc.patient.givenname"}, {"Middlename", "sdc.patient.middlename"},
        {"Familyname", "sdc.patient.familyname"}, {"Birthname", "sdc.patient.birthname"},
        {"DateOfBirth", "sdc.patient.date_of_birth"}};
    // The ids of a workflow's order (InstanceIdentifier: the value is its Extension), in its
    // RequestedOrderDetail, PerformedOrderDetail and their ImagingProcedure.
    static constexpr std::pair<std::string_view, std::string_view> kOrderIds[] = {
        {"PlacerOrderNumber", "sdc.workflow.placer_order_number"},
        {"FillerOrderNumber", "sdc.workflow.filler_order_number"},
        {"AccessionIdentifier", "sdc.workflow.accession_identifier"},
        {"RequestedProcedureId", "sdc.workflow.requested_procedure_id"}};
    // The physicians of a RequestedOrderDetail (PersonReference), and the performers of an order
    // (Performer, a PersonParticipation of either order detail).
    static constexpr std::pair<std::string_view, std::string_view> kPhysicians[] = {
        {"ReferringPhysician", "sdc.workflow.referring_physician"},
        {"RequestingPhysician", "sdc.workflow.requesting_physician"},
        {"Performer", "sdc.workflow.performer"}};
    bool identified = false, visit = false, mother_identified = false, mother_named = false;
    bool operator_identified = false, operator_named = false;
    std::array<bool, std::size(kPhi)> seen{};
    std::array<bool, std::size(kOrderIds)> order_seen{};
    std::array<bool, std::size(kPhysicians)> physician_seen{};
    // The element that starts with tag t, up to its end tag or, when it does not end, to the end
    // of x (its PHI is on the wire all the same); `next` receives where reading goes on.
    auto element = [](std::string_view x, const Tag& t, size_t& next) {
      size_t e = end_tag(x, t.qname, t.end, next);
      if (e == std::string_view::npos) next = x.size();
      return x.substr(t.end, e == std::string_view::npos ? e : e - t.end);
    };
    // The identifier of every Identification in x (its Extension, or its Root alone), as
    // pseudonyms in `patients`.
    auto ids = [&](std::string_view x, bool& found) {
      Tag id;
      for (size_t k = 0; next_tag(x, k, id); k = id.end) {
        if (id.closing || local_name(id.qname) != "Identification") continue;
        std::string value = instance_id(id.attrs);
        if (value.empty()) continue;
        found = true;
        std::string p = ctx.pseudonym(value);
        if (m.patients.size() < kMaxList && std::find(m.patients.begin(), m.patients.end(), p) == m.patients.end())
          m.patients.push_back(std::move(p));
      }
    };
    // The identifiers and demographics of one patient's element. A neonate's Mother
    // (NeonatalPatientDemographicsCoreData, a person reference) is another person: her
    // identifiers (pseudonyms in `patients` too) and name are PHI of their own, not the patient's.
    auto read = [&](std::string_view person) {
      std::string own;  // the element without its Mother elements
      std::vector<std::string_view> mothers;
      size_t from = 0;
      Tag t;
      for (size_t k = 0; next_tag(person, k, t);) {
        k = t.end;
        if (t.closing || local_name(t.qname) != "Mother") continue;
        own.append(person.substr(from, t.start - from));
        if (!t.empty) mothers.push_back(element(person, t, k));
        from = k;
      }
      own.append(person.substr(std::min(from, person.size())));
      ids(own, identified);
      for (size_t f = 0; f < std::size(kPhi); ++f)
        if (!seen[f] && !trim(element_value(own, kPhi[f].first)).empty()) seen[f] = true;
      for (std::string_view mother : mothers) {
        ids(mother, mother_identified);
        if (!person_name(mother).empty()) mother_named = true;
      }
    };
    Tag t;
    size_t states = 0;
    for (size_t i = 0; states < kMaxStates && i < m.body.size() && next_tag(m.body, i, t);) {
      i = t.end;
      if (t.closing || t.empty) continue;
      bool patient = context_state(t, "PatientContextState");
      bool operator_state = !patient && context_state(t, "OperatorContextState");
      if (!patient && !operator_state && !context_state(t, "WorkflowContextState")) continue;
      ++states;
      // The search goes on after the state, so the body is read once (a state inside it is read
      // with it).
      std::string_view state = element(m.body, t, i);
      if (patient) { read(state); continue; }
      if (operator_state) {
        // The clinician operating the device (what an sdc.ctxt.opr scope names): the state's
        // Identification is the operator's, OperatorDetails their name (BaseDemographics).
        Tag id;
        for (size_t k = 0; next_tag(state, k, id); k = id.end)
          if (!id.closing && local_name(id.qname) == "Identification" && !instance_id(id.attrs).empty())
            operator_identified = true;
        if (std::string pn = name_of(element_text(state, "OperatorDetails")); !pn.empty()) {
          operator_named = true;
          add_unique(m.operators, ctx.pseudonym(pn));
        }
        continue;
      }
      // A workflow's own identification names the workflow, not the patient: its patient's
      // element is read, whether it gives the visit number (an account of the patient's stay,
      // an identifier HIPAA counts), the ids of the order (placer, filler, accession, requested
      // procedure: pseudonymised, as HL7 ORC/OBR and DICOM give them) and the names of the
      // referring and requesting physicians (personal data: pseudonymised).
      Tag p;
      for (size_t k = 0; next_tag(state, k, p);) {
        k = p.end;
        if (p.closing) continue;
        std::string_view name = local_name(p.qname);
        if (name == "VisitNumber") {
          if (!instance_id(p.attrs).empty()) visit = true;
        } else if (!p.empty && name == "Patient") {
          read(element(state, p, k));
        } else if (auto o = std::find_if(std::begin(kOrderIds), std::end(kOrderIds), [&](auto& x) { return x.first == name; });
                   o != std::end(kOrderIds)) {
          std::string v(trim(instance_id(p.attrs)));
          if (v.empty()) continue;
          order_seen[o - std::begin(kOrderIds)] = true;
          add_unique(m.orders, ctx.pseudonym(v));
        } else if (auto d = std::find_if(std::begin(kPhysicians), std::end(kPhysicians), [&](auto& x) { return x.first == name; });
                   !p.empty && d != std::end(kPhysicians)) {
          std::string pn = person_name(element(state, p, k));
          if (pn.empty()) continue;
          physician_seen[d - std::begin(kPhysicians)] = true;
          add_unique(m.physicians, ctx.pseudonym(pn));
        }
      }
    }
    if (identified) m.phi.emplace_back("sdc.patient.identification");
    if (visit) m.phi.emplace_back("sdc.workflow.visit_number");
    for (size_t f = 0; f < std::size(kPhi); ++f)
      if (seen[f]) m.phi.emplace_back(kPhi[f].second);
    if (mother_identified) m.phi.emplace_back("sdc.patient.mother_identification");
    if (mother_named) m.phi.emplace_back("sdc.patient.mother_name");
    for (size_t f = 0; f < std::size(kOrderIds); ++f)
      if (order_seen[f]) m.phi.emplace_back(kOrderIds[f].second);
    for (size_t f = 0; f < std::size(kPhysicians); ++f)
      if (physician_seen[f]) m.phi.emplace_back(kPhysicians[f].second);
    if (operator_identified) m.phi.emplace_back("sdc.operator.identification");
    if (operator_named) m.phi.emplace_back("sdc.operator.name");
    for (auto& f : m.phi) ctx.facts().add_phi(f);
  }

  // Discovery scopes may name a person in a context scope: the patient (sdc.ctxt.pat), a
  // workflow step of their care (sdc.ctxt.wfl: order, visit, accession ids) or an operator
  // (sdc.ctxt.opr). These are never written in clear, in what a device announces and in what a
  // Probe or Resolve asks for; location, ensemble and means contexts (sdc.ctxt.loc, .ens, .mns)
  // name places and equipment and stay as sent. The scopes are XML text already decoded; a URI
  // scheme is case-insensitive, and the scheme is looked for anywhere in the scope, so that
  // nothing in front of it (a no-break space, another URI around it) lets it through.
  static void hide_person_scopes(Message& m, FlowContext& ctx) {
    struct PersonScope { std::string_view scheme, phi_field; };
    static constexpr PersonScope kScopes[] = {{"sdc.ctxt.pat", "sdc.scope.patient"},
                                              {"sdc.ctxt.wfl", "sdc.scope.workflow"},
                                              {"sdc.ctxt.opr", "sdc.scope.operator"}};
    auto hide = [&](std::vector<std::string>& scopes) {
      for (auto& s : scopes) {
        for (const PersonScope& k : kScopes) {
          size_t at = ifind(s, k.scheme);
          if (at == std::string::npos) continue;
          // The scheme in lower case, so the same value gets one pseudonym however it is cased.
          if (at == 0) std::transform(s.begin(), s.begin() + k.scheme.size(), s.begin(), lower);
          s = std::string(k.scheme) + ":" + ctx.pseudonym(s);
          if (std::find(m.phi.begin(), m.phi.end(), k.phi_field) == m.phi.end()) m.phi.emplace_back(k.phi_field);
          ctx.facts().add_phi(k.phi_field);
          break;
        }
      }
    };
    for (auto& p : m.parts) hide(p.scopes);
    hide(m.query_scopes);
  }

  // The sender's address: the device a describing message describes (the announcing device, or
  // the server answering with its metadata).
  static const IpAddr& sender_ip(Dir dir, FlowContext& ctx) {
    const EventEndpoints& ep = ctx.endpoints();
    return dir == Dir::to_server ? ep.src : ep.dst;
  }

  // Flow facts sdc.* for the asset inventory; https XAddrs are remembered to label TLS flows.
  static void record_facts(Dir dir, const Message& m, FlowContext& ctx) {
    const IpAddr& sender = sender_ip(dir, ctx);
    for (auto& p : m.parts) {
      for (auto& x : p.xaddrs) {
        IpAddr ip;
        uint16_t port = 0;
        // Only a device's own addresses (the sender's, or of its other family) name its TLS
        // flows: else any host could have another's TLS server, one outside among them, judged
        // as SDC by announcing it. A proxy's answer names none; the device's own Hello does.
        if (!parse_https(x, ip, port) || !p.sender || (ip.family == sender.family && !(ip == sender))) continue;
        if (remember_endpoint(ip, port)) ++ctx.counters().at(kAnnouncedServersEvicted);
      }
      // The flow's device: never one a proxy answered for, which is on another host.
      if (!p.address.empty() && p.sender) ctx.facts().set_attr("sdc.endpoint", p.address);
    }
    const DeviceInfo& dev = m.dev;
    if (dev.any()) {
      if (!dev.manufacturer.empty()) ctx.facts().set_attr("sdc.manufacturer", dev.manufacturer);
      if (!dev.model_name.empty()) ctx.facts().set_attr("sdc.model", dev.model_name);
    }
    if (m.describes()) ctx.facts().set_attr("sdc.device_side", dir == Dir::to_server ? "client" : "server");
    if (dev.any()) {
      if (!dev.serial_number.empty()) ctx.facts().set_attr("sdc.serial", dev.serial_number);
      if (!dev.firmware_version.empty()) ctx.facts().set_attr("sdc.firmware", dev.firmware_version);
      if (!m.host_address.empty()) ctx.facts().set_attr("sdc.endpoint", m.host_address);
    }
  }

  // Identity for the asset inventory, of the side that sent it: the announcing device (not the
  // multicast group it announces to) or the server answering with its metadata. Endpoint
  // references are stable, so periodic Hellos add nothing new.
  static void add_identities(Dir dir, const Message& m, FlowContext& ctx) {
    if (m.announces()) {
      for (auto& p : m.parts) {
        if (p.address.empty() || !p.sender) continue;
        DeviceIdentity id;
        id.client = dir == Dir::to_server;
        id.source = "sdc discovery";
        id.id = p.address;
        ctx.facts().add_identity(std::move(id));
      }
    }
    const DeviceInfo& dev = m.dev;
    if (dev.any()) {
      DeviceIdentity id;
      id.client = dir == Dir::to_server;
      id.source = "sdc metadata";
      id.id = m.host_address;
      id.manufacturer = dev.manufacturer;
      id.model = dev.model_name.empty() ? dev.model_number : dev.model_name;
      id.serial = dev.serial_number;
      id.version = dev.firmware_version;
      if (!id.id.empty() || !id.manufacturer.empty() || !id.model.empty() || !id.serial.empty())
        ctx.facts().add_identity(std::move(id));
    }
  }

  // The `sdc` event (and its count).
  static void write_event(Dir dir, const HttpInfo* http, const Message& m, FlowContext& ctx) {
    ++ctx.counters().at("sdc.messages");
    auto& w = ctx.begin_event("sdc");
    w.object("sdc");
    w.field("direction", dir_name(dir));
    w.field("transport", http ? "http" : "udp");
    if (http) {
      if (!http->method.empty()) {
        // The path names the hosted service, but a service may also name a patient or an
        // episode in it (/patients/PAT123/...), as a query string may: the path is written as its
        // pseudonym (one path, one pseudonym), without the query string or fragment ("/" when
        // the target is only a query). The Action names the service in clear.
        // A target in absolute form (a request sent through a proxy) gives the path of its URL,
        // so a service's requests get one pseudonym however they were addressed.
        std::string_view target = http->path;
        if (Url u; !target.empty() && target[0] != '/' && split_url(target, u)) target = u.rest;
        std::string_view path = target.substr(0, target.find_first_of("?#"));
        w.field("http_method", http->method);
        if (path.empty() || path == "/") w.field("http_path", std::string_view("/"));
        else w.field("http_path", ctx.pseudonym(path));
      }
      if (http->status) w.field("http_status", http->status);
    }
    if (!m.short_action.empty()) w.field("action", m.short_action);
    if (!m.action.empty()) w.field("action_uri", m.action);
    if (!m.message_id.empty()) w.field("message_id", m.message_id);
    if (!m.relates_to.empty()) w.field("relates_to", m.relates_to);
    const IpAddr& device_ip = sender_ip(dir, ctx);
    if (m.describes() && device_ip.family) {
      w.field("device_ip", device_ip);
    }
    if (!m.parts.empty()) {
      w.array("participants");
      for (auto& p : m.parts) {
        w.begin_object();
        if (!p.address.empty()) w.field("endpoint", p.address);
        write_list(w, "types", p.types);
        write_list(w, "scopes", p.scopes);
        // Two addresses that differ only in what is left out are written once.
        std::vector<std::string> xaddrs;
        for (auto& x : p.xaddrs)
          if (std::string v = xaddr_written(x, ctx); std::find(xaddrs.begin(), xaddrs.end(), v) == xaddrs.end())
            xaddrs.push_back(std::move(v));
        write_list(w, "xaddrs", xaddrs);
        if (!p.metadata_version.empty()) w.field("metadata_version", p.metadata_version);
        w.end_object();
      }
      w.end_array();
    }
    write_list(w, "query_types", m.query_types);
    write_list(w, "query_scopes", m.query_scopes);
    if (m.dev.any()) {
      w.object("device");
      write_device(w, m.dev);
      if (!m.host_address.empty()) w.field("endpoint", m.host_address);
      w.end_object();
    }
    write_list(w, "patients", m.patients);
    write_list(w, "orders", m.orders);
    write_list(w, "physicians", m.physicians);
    write_list(w, "operators", m.operators);
    write_list(w, "phi_fields", m.phi);
    w.end_object();
    ctx.end_event();
  }

  // A list of strings as an array, left out when empty.
  static void write_list(JsonWriter& w, std::string_view k, const std::vector<std::string>& v) {
    if (v.empty()) return;
    w.array(k);
    for (auto& x : v) w.value(x);
    w.end_array();
  }

  static void write_device(JsonWriter& w, const DeviceInfo& d) {
    w.field_if_nonempty("manufacturer", d.manufacturer);
    w.field_if_nonempty("model_name", d.model_name);
    w.field_if_nonempty("model_number", d.model_number);
    w.field_if_nonempty("friendly_name", d.friendly_name);
    w.field_if_nonempty("firmware_version", d.firmware_version);
    w.field_if_nonempty("serial_number", d.serial_number);
  }

  std::array<DirState, 2> dirs_;
};

std::unique_ptr<Dissector> make() { return std::make_unique<SdcDissector>(); }

}  // namespace

bool is_sdc_endpoint(const IpAddr& ip, uint16_t port) {
  Endpoints& e = endpoints();
  std::lock_guard<std::mutex> lock(e.mu);
  return e.index.count({ip, port}) != 0;
}

bool remember_endpoint(const IpAddr& ip, uint16_t port) {
  if (recorded_for_merge(&remember_endpoint, ip, port)) return false;
  Endpoints& e = endpoints();
  std::lock_guard<std::mutex> lock(e.mu);
  Endpoints::Key key{ip, port};
  if (auto it = e.index.find(key); it != e.index.end()) {
    e.order.splice(e.order.end(), e.order, it->second);  // announced again: the newest
    return false;
  }
  bool evicted = false;
  if (e.index.size() >= kMaxEndpoints) {
    e.index.erase(e.order.front());
    e.order.pop_front();
    evicted = true;
  }
  e.order.push_back(key);
  e.index.emplace(key, std::prev(e.order.end()));
  return evicted;
}

// An HTTP connection (request or status line) may carry SOAP in a later message, after a GET of
// the service's WSDL or some other exchange: such a message (a request or a response, at the start
// of a TCP segment or pipelined behind the messages before it) is probed as a stream's start is.
bool carried_by(std::span<const uint8_t> first, Dir) { return http::sender(first) != StreamSender::unknown; }
Probe later_probe(std::span<const uint8_t> b, Dir dir) {
  static constexpr std::string_view kStarts[] = {"POST ", "HTTP/1."};  // a GET has no envelope
  for (std::string_view k : kStarts) {
    size_t n = std::min(k.size(), b.size());
    if (n && std::memcmp(b.data(), k.data(), n) == 0) return n < k.size() ? Probe::need_more : probe(b, dir);
  }
  return Probe::no;
}
// The HTTP message at the front of a segment; a body with a length, or in chunks, that goes on past
// the segment is measured too, so the message behind it is looked for where it begins in a later
// segment. A response whose body runs to the close ends what its direction may carry.
size_t later_next(std::span<const uint8_t> b, Dir, LaterCursor& cursor) {
  return http::message_length(b, http::Syntax::strict, true, &cursor);
}

}  // namespace sdc

const DissectorInfo kSdcInfo = {
    .name = "sdc",
    .transport = Transport::both,
    .probe = &sdc::probe,
    .make = &sdc::make,
    .port_hints = sdc::kPorts,
    .tls_server = &sdc::is_sdc_endpoint,  // https XAddrs announced by WS-Discovery
    .carried_by = &sdc::carried_by,
    .later_probe = &sdc::later_probe,
    .later_next = &sdc::later_next,
};

}  // namespace medmon
