#pragma once
// Append-only JSON writer with caller-controlled key order. Events are written straight into
// a line buffer: no DOM, no allocation per field, so output order is exactly the call order.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "sensor/common/types.h"

// The in-page over-read of copy_plain is deliberate; the address sanitizer would flag it.
#if defined(__clang__) || defined(__GNUC__)
#define MEDMON_NO_ASAN __attribute__((no_sanitize_address))
#else
#define MEDMON_NO_ASAN
#endif

namespace medmon {

// Copies a short run without a call to memcpy: event fields are mostly a few bytes long, where
// the call costs more than the copy.
inline char* copy_short(char* d, const char* s, size_t n) {
  if (n > 64) {
    std::memcpy(d, s, n);
    return d + n;
  }
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

#if defined(__SSE2__)
// 16 bytes from p, which may run past the end of the object p points into (never past its
// page: callers check). The empty asm hides where p points, so that the compiler neither
// warns about nor reasons from the bounds of that object.
MEDMON_NO_ASAN inline __m128i load16_in_page(const void* p) {
  asm("" : "+r"(p));
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}
inline bool in_page(const void* p, size_t n) { return (reinterpret_cast<uintptr_t>(p) & 4095) <= 4096 - n; }
#endif

// Growable byte buffer holding one JSON text. Writers ask for room for a whole field once
// (tail) and fill it through a pointer (commit): a std::string append per piece costs a call, a
// capacity check and a terminator each, which dominated the event path.
class JsonBuffer {
 public:
  JsonBuffer() = default;
  ~JsonBuffer() { std::free(data_); }
  JsonBuffer(const JsonBuffer&) = delete;
  JsonBuffer& operator=(const JsonBuffer&) = delete;
  JsonBuffer(JsonBuffer&& o) noexcept : data_(o.data_), size_(o.size_), cap_(o.cap_) {
    o.data_ = nullptr; o.size_ = o.cap_ = 0;
  }

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }
  std::string_view view() const { return {data_, size_}; }
  operator std::string_view() const { return view(); }
  std::string str() const { return std::string(view()); }
  char back() const { return data_[size_ - 1]; }

  // Room for n more bytes at the end; write them through the pointer, then commit(end).
  char* tail(size_t n) {
    if (cap_ - size_ < n) grow(size_ + n);
    return data_ + size_;
  }
  void commit(char* end) { size_ = static_cast<size_t>(end - data_); }

  void push_back(char c) { *tail(1) = c; ++size_; }
  void pop_back() { if (size_) --size_; }
  void append(const char* s, size_t n) { char* p = tail(n); std::memcpy(p, s, n); size_ += n; }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void resize_down(size_t n) { if (n < size_) size_ = n; }

 private:
  void grow(size_t need) {
    size_t cap = cap_ ? cap_ : 1024;
    while (cap < need) cap *= 2;
    char* d = static_cast<char*>(std::realloc(data_, cap));
    if (!d) throw std::bad_alloc();
    data_ = d;
    cap_ = cap;
  }
  char* data_ = nullptr;
  size_t size_ = 0, cap_ = 0;
};

class JsonWriter {
 public:
  explicit JsonWriter(JsonBuffer& out) : out_(out) {}
  // Forgets nesting state (the buffer is left as is).
  void reset() { depth_ = 0; has_items_ = 0; after_key_ = false; }

  void begin_object() { put_open('{'); }
  void end_object() { pop(); out_.push_back('}'); }
  void begin_array() { put_open('['); }
  void end_array() { pop(); out_.push_back(']'); }

  // Writes a key; the next value call writes its value. Keys are program literals (plain
  // ASCII, nothing to escape), so they are copied as they are.
  void key(std::string_view k) {
    char* p = out_.tail(k.size() + 4 + 16);
    p = put_key(p, k);
    out_.commit(p);
    after_key_ = true;
  }
  // "key":"value"; the value is escaped where it needs to be.
  void field(std::string_view k, std::string_view v) {
    char* start = out_.tail(k.size() + v.size() + 6 + 16);
    bool comma_state_after = after_key_;
    uint64_t items = has_items_;
    char* p = put_key(start, k);
    *p++ = '"';
    p = copy_plain(p, v.data(), v.size());
    if (!p) {
      // Something to escape: undo and take the general path.
      after_key_ = comma_state_after;
      has_items_ = items;
      key(k);
      value(v);
      return;
    }
    *p++ = '"';
    out_.commit(p);
  }
  void field(std::string_view k, const char* v) { field(k, std::string_view(v)); }
  void field(std::string_view k, const std::string& v) { field(k, std::string_view(v)); }
  void field(std::string_view k, bool b) { key(k); value(b); }
  void field(std::string_view k, uint64_t v) {
    char* p = out_.tail(k.size() + 4 + 20 + 16);
    p = put_key(p, k);
    out_.commit(put_uint(p, v));
  }
  void field(std::string_view k, uint32_t v) { field(k, static_cast<uint64_t>(v)); }
  void field(std::string_view k, uint16_t v) { field(k, static_cast<uint64_t>(v)); }
  void field(std::string_view k, uint8_t v) { field(k, static_cast<uint64_t>(v)); }
  void field(std::string_view k, int64_t v) { key(k); value(v); }
  void field(std::string_view k, int v) { key(k); value(v); }
  void field(std::string_view k, double v) { key(k); value(v); }
  // Optional text members: an empty value is left out rather than written as "".
  void field_if_nonempty(std::string_view k, std::string_view v) {
    if (!v.empty()) field(k, v);
  }

  void value(std::string_view s) {
    char* p = out_.tail(s.size() + 3 + 16);
    if (need_comma()) *p++ = ',';
    *p = '"';
    char* e = copy_plain(p + 1, s.data(), s.size());
    if (e) {
      *e++ = '"';
      out_.commit(e);
      return;
    }
    out_.commit(p);  // the comma stays; the escaping path writes the string
    append_escaped(out_, s);
  }
  void value(const char* s) { value(std::string_view(s)); }
  void value(const std::string& s) { value(std::string_view(s)); }
  void value(bool b) { comma(); out_.append(b ? std::string_view("true") : std::string_view("false")); }
  void value(uint64_t v) {
    char* p = out_.tail(21);
    if (need_comma()) *p++ = ',';
    out_.commit(put_uint(p, v));
  }
  void value(uint32_t v) { value(static_cast<uint64_t>(v)); }
  void value(uint16_t v) { value(static_cast<uint64_t>(v)); }
  void value(uint8_t v) { value(static_cast<uint64_t>(v)); }
  void value(int64_t v) {
    char* p = out_.tail(22);
    if (need_comma()) *p++ = ',';
    if (v < 0) { *p++ = '-'; p = put_uint(p, 0 - static_cast<uint64_t>(v)); }
    else p = put_uint(p, static_cast<uint64_t>(v));
    out_.commit(p);
  }
  void value(int v) { value(static_cast<int64_t>(v)); }
  void value(double v);  // fixed 6 decimals, deterministic
  // RFC 3339 time and IP address as JSON strings.
  void value(Timestamp ts) {
    char* p = out_.tail(kRfc3339Len + 3);
    if (need_comma()) *p++ = ',';
    *p++ = '"';
    p = write_rfc3339(p, ts);
    *p++ = '"';
    out_.commit(p);
  }
  void value(const IpAddr& a) {
    char* p = out_.tail(kIpTextMax + 3);
    if (need_comma()) *p++ = ',';
    *p++ = '"';
    p = a.write_to(p);
    *p++ = '"';
    out_.commit(p);
  }
  void field(std::string_view k, Timestamp ts) { key(k); value(ts); }
  void field(std::string_view k, const IpAddr& a) { key(k); value(a); }
  void null() { comma(); out_.append("null", 4); }
  // Inserts already-serialised JSON as one value.
  void raw(std::string_view json) { comma(); out_.append(json); }
  // Appends members this writer rendered earlier at the same place of an object that already
  // holds members (so each starts with its comma), as they are.
  void members(std::string_view json) { out_.append(json); }
  // Starts a value the caller appends itself (already valid JSON) to the returned buffer.
  JsonBuffer& raw_value() { comma(); return out_; }

  template <class T> void field(std::string_view k, const T& v) { key(k); value(v); }
  void object(std::string_view k) { key(k); begin_object(); }
  void array(std::string_view k) { key(k); begin_array(); }

  JsonBuffer& buffer() { return out_; }
  // Escapes s as a JSON string (quotes included). Invalid UTF-8 bytes become \u00XX.
  static void append_escaped(JsonBuffer& out, std::string_view s);
  static void append_escaped(std::string& out, std::string_view s);
  static bool needs_escape(unsigned char c) { return kSpecial[c]; }
  // True when s can be copied into a JSON string as it is (printable ASCII, no quote/backslash).
  static bool plain(std::string_view s) {
    const auto* d = reinterpret_cast<const unsigned char*>(s.data());
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 16 <= s.size(); i += 16)
      if (special_mask(d + i)) return false;
#endif
    for (; i < s.size(); ++i)
      if (kSpecial[d[i]]) return false;
    return true;
  }
  // Copies n bytes that need no escaping to d and returns the end, or nullptr (d partly
  // written) when one of them needs escaping. Checks and copies in the same pass. d must have
  // room for n + 16 bytes: the last block is stored whole.
  MEDMON_NO_ASAN static char* copy_plain(char* d, const char* s, size_t n) {
    const auto* u = reinterpret_cast<const unsigned char*>(s);
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 16 <= n; i += 16) {
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u + i));
      if (special_mask_of(b)) return nullptr;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), b);
    }
    size_t rest = n - i;
    if (rest == 0) return d + n;
    // The last few bytes: one 16-byte load when it stays inside the page of the value (it
    // cannot fault there), with the bytes past the end masked out. Most values are short.
    if (in_page(u + i, 16)) {
      __m128i b = load16_in_page(u + i);
      if (special_mask_of(b) & ((1 << rest) - 1)) return nullptr;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), b);
      return d + n;
    }
#endif
    for (; i < n; ++i) {
      if (kSpecial[u[i]]) return nullptr;
      d[i] = s[i];
    }
    return d + n;
  }

 private:
  // 1 for bytes that cannot be copied as they are: controls, quote, backslash, non-ASCII.
  static constexpr auto kSpecial = [] {
    std::array<uint8_t, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) ? 1 : 0;
    return t;
  }();
#if defined(__SSE2__)
  // As signed bytes, controls (< 0x20) and non-ASCII (>= 0x80) are both below 0x20, so one
  // compare catches both; quote and backslash are compared for equality.
  static int special_mask_of(__m128i b) {
    const __m128i lim = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
    __m128i bad = _mm_or_si128(_mm_cmplt_epi8(b, lim), _mm_or_si128(_mm_cmpeq_epi8(b, quote), _mm_cmpeq_epi8(b, bs)));
    return _mm_movemask_epi8(bad);
  }
  static int special_mask(const unsigned char* p) {
    return special_mask_of(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
#endif

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
  void put_open(char c) {
    char* p = out_.tail(2);
    if (need_comma()) *p++ = ',';
    *p++ = c;
    out_.commit(p);
    push();
  }
  // Keys are short (literals, counter names): one or two 16-byte moves, reading past the key
  // only inside its page; d has room for n + 16 bytes.
  MEDMON_NO_ASAN static char* copy_key(char* d, const char* s, size_t n) {
#if defined(__SSE2__)
    if (n <= 32 && in_page(s, 32)) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d), load16_in_page(s));
      if (n > 16) _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 16), load16_in_page(s + 16));
      return d + n;
    }
#endif
    return copy_short(d, s, n);
  }
  // Writes [,]"k": at p (room for k.size() + 4 + 16 reserved by the caller).
  char* put_key(char* p, std::string_view k) {
    if (need_comma()) *p++ = ',';
    *p++ = '"';
    p = copy_key(p, k.data(), k.size());
    *p++ = '"';
    *p++ = ':';
    return p;
  }
  static char* put_uint(char* p, uint64_t v) {
    char buf[20];
    char* q = buf + sizeof buf;
    do { *--q = static_cast<char>('0' + v % 10); v /= 10; } while (v);
    size_t n = static_cast<size_t>(buf + sizeof buf - q);
    std::memcpy(p, q, n);
    return p + n;
  }
  void push() { ++depth_; has_items_ &= ~(1ULL << ((depth_ - 1) & 63)); }
  void pop() { if (depth_ > 0) --depth_; }

  JsonBuffer& out_;
  int depth_ = 0;
  uint64_t has_items_ = 0;
  bool after_key_ = false;
};

}  // namespace medmon
