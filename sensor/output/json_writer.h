#pragma once
// Append-only JSON writer with caller-controlled key order. Events are written straight into
// a line buffer: no DOM, no allocation per field, so output order is exactly the call order.
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace medmon {

// Copies a short run without a call to memcpy: event fields are mostly a few bytes long, where
// the call costs more than the copy.
inline char* copy_short(char* d, const char* s, size_t n) {
  while (n >= 8) {
    uint64_t x;
    std::memcpy(&x, s, 8);
    std::memcpy(d, &x, 8);
    d += 8; s += 8; n -= 8;
  }
  if (n >= 4) {
    uint32_t x;
    std::memcpy(&x, s, 4);
    std::memcpy(d, &x, 4);
    d += 4; s += 4; n -= 4;
  }
  if (n >= 2) {
    uint16_t x;
    std::memcpy(&x, s, 2);
    std::memcpy(d, &x, 2);
    d += 2; s += 2; n -= 2;
  }
  if (n) *d++ = *s;
  return d;
}

class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}
  // Forgets nesting state (the buffer is left as is).
  void reset() { depth_ = 0; has_items_ = 0; after_key_ = false; }

  void begin_object() { comma(); out_.push_back('{'); push(); }
  void end_object() { pop(); out_.push_back('}'); }
  void begin_array() { comma(); out_.push_back('['); push(); }
  void end_array() { pop(); out_.push_back(']'); }

  // Writes a key; the next value call writes its value. Keys are program literals (plain
  // ASCII, nothing to escape), so they are copied as they are. Comma, quotes and colon go out
  // in one append: on the event path the per-append overhead of std::string dominates.
  void key(std::string_view k) {
    char buf[kShortKey + 4];
    if (k.size() > kShortKey) { slow_key(k); return; }
    char* p = buf;
    if (need_comma()) *p++ = ',';
    *p++ = '"';
    p = copy_short(p, k.data(), k.size());
    *p++ = '"';
    *p++ = ':';
    out_.append(buf, static_cast<size_t>(p - buf));
    after_key_ = true;
  }
  // "key":"value" in one go when both are short and the value needs no escaping.
  void field(std::string_view k, std::string_view v) {
    char buf[kShortField + 8];
    if (k.size() + v.size() > kShortField || !plain(v)) { key(k); value(v); return; }
    char* p = buf;
    if (need_comma()) *p++ = ',';
    *p++ = '"';
    p = copy_short(p, k.data(), k.size());
    *p++ = '"';
    *p++ = ':';
    *p++ = '"';
    p = copy_short(p, v.data(), v.size());
    *p++ = '"';
    out_.append(buf, static_cast<size_t>(p - buf));
  }
  void field(std::string_view k, const char* v) { field(k, std::string_view(v)); }
  void field(std::string_view k, const std::string& v) { field(k, std::string_view(v)); }
  void value(std::string_view s) { comma(); write_string(s); }
  void value(const char* s) { value(std::string_view(s)); }
  void value(const std::string& s) { value(std::string_view(s)); }
  void value(bool b) { comma(); out_.append(b ? "true" : "false"); }
  void value(uint64_t v) { comma(); append_uint(v); }
  void value(uint32_t v) { value(static_cast<uint64_t>(v)); }
  void value(uint16_t v) { value(static_cast<uint64_t>(v)); }
  void value(uint8_t v) { value(static_cast<uint64_t>(v)); }
  void value(int64_t v) {
    comma();
    if (v < 0) { out_.push_back('-'); append_uint(0 - static_cast<uint64_t>(v)); }
    else append_uint(static_cast<uint64_t>(v));
  }
  void value(int v) { value(static_cast<int64_t>(v)); }
  void value(double v);  // fixed 6 decimals, deterministic
  void null() { comma(); out_.append("null"); }
  // Inserts already-serialised JSON as one value.
  void raw(std::string_view json) { comma(); out_.append(json); }
  // Starts a value the caller appends itself (already valid JSON) to the returned buffer.
  std::string& raw_value() { comma(); return out_; }

  template <class T> void field(std::string_view k, const T& v) { key(k); value(v); }
  void object(std::string_view k) { key(k); begin_object(); }
  void array(std::string_view k) { key(k); begin_array(); }

  std::string& buffer() { return out_; }
  // Escapes s as a JSON string (quotes included). Invalid UTF-8 bytes become \u00XX.
  static void append_escaped(std::string& out, std::string_view s);
  // True when s can be copied into a JSON string as it is (printable ASCII, no quote/backslash).
  static bool plain(std::string_view s) {
    const auto* d = reinterpret_cast<const unsigned char*>(s.data());
    size_t i = 0;
#if defined(__SSE2__)
    // 16 bytes per step. As signed bytes, controls (< 0x20) and non-ASCII (>= 0x80) are both
    // below 0x20, so one compare catches both; quote and backslash are compared for equality.
    const __m128i lim = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
    for (; i + 16 <= s.size(); i += 16) {
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
      __m128i bad = _mm_or_si128(_mm_cmplt_epi8(b, lim), _mm_or_si128(_mm_cmpeq_epi8(b, quote), _mm_cmpeq_epi8(b, bs)));
      if (_mm_movemask_epi8(bad)) return false;
    }
#endif
    for (; i < s.size(); ++i)
      if (kSpecial[d[i]]) return false;
    return true;
  }

 private:
  static constexpr size_t kShortKey = 60;
  static constexpr size_t kShortField = 120;
  // 1 for bytes that cannot be copied as they are: controls, quote, backslash, non-ASCII.
  static constexpr auto kSpecial = [] {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) ? 1 : 0;
    return t;
  }();

  // Whether the next item needs a separating comma; marks the current level as non-empty.
  bool need_comma() {
    if (after_key_) { after_key_ = false; return false; }
    if (depth_ <= 0) return false;
    uint64_t bit = 1ULL << ((depth_ - 1) & 63);
    bool c = has_items_ & bit;
    has_items_ |= bit;
    return c;
  }
  void comma() {
    if (need_comma()) out_.push_back(',');
  }
  void slow_key(std::string_view k) {
    comma();
    out_.push_back('"');
    out_.append(k);
    out_.append("\":", 2);
    after_key_ = true;
  }
  void push() { ++depth_; has_items_ &= ~(1ULL << ((depth_ - 1) & 63)); }
  void pop() { if (depth_ > 0) --depth_; }
  void write_string(std::string_view s) { append_escaped(out_, s); }
  void append_uint(uint64_t v) {
    char buf[24];
    char* p = buf + sizeof buf;
    do { *--p = static_cast<char>('0' + v % 10); v /= 10; } while (v);
    out_.append(p, static_cast<size_t>(buf + sizeof buf - p));
  }

  std::string& out_;
  int depth_ = 0;
  uint64_t has_items_ = 0;
  bool after_key_ = false;
};

}  // namespace medmon
