#pragma once
// Append-only JSON writer with caller-controlled key order. Events are written straight into
// a line buffer: no DOM, no allocation per field, so output order is exactly the call order.
#include <cstdint>
#include <string>
#include <string_view>

namespace medmon {

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
  // ASCII, nothing to escape), so they are copied as they are.
  void key(std::string_view k) {
    comma();
    out_.push_back('"');
    out_.append(k);
    out_.append("\":", 2);
    after_key_ = true;
  }
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

 private:
  void comma() {
    if (after_key_) { after_key_ = false; return; }
    if (depth_ > 0) {
      uint64_t bit = 1ULL << ((depth_ - 1) & 63);
      if (has_items_ & bit) out_.push_back(',');
      has_items_ |= bit;
    }
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
