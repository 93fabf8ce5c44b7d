#pragma once
// Bounds-checked reader over a byte span. Every read past the end returns zero and clears ok();
// callers check ok() once after a group of reads. No pointer casts onto packet memory.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace medmon {

class ByteReader {
 public:
  ByteReader() = default;
  explicit ByteReader(std::span<const uint8_t> d) : d_(d) {}

  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }
  size_t size() const { return d_.size(); }
  size_t remaining() const { return pos_ <= d_.size() ? d_.size() - pos_ : 0; }
  bool has(size_t n) const { return remaining() >= n; }
  std::span<const uint8_t> rest() const { return d_.subspan(pos_ <= d_.size() ? pos_ : d_.size()); }

  uint8_t u8() { if (!need(1)) return 0; return d_[pos_++]; }
  uint16_t be16() { if (!need(2)) return 0; uint16_t v = static_cast<uint16_t>(d_[pos_] << 8 | d_[pos_ + 1]); pos_ += 2; return v; }
  uint32_t be32() {
    if (!need(4)) return 0;
    uint32_t v = uint32_t(d_[pos_]) << 24 | uint32_t(d_[pos_ + 1]) << 16 | uint32_t(d_[pos_ + 2]) << 8 | d_[pos_ + 3];
    pos_ += 4; return v;
  }
  uint16_t le16() { if (!need(2)) return 0; uint16_t v = static_cast<uint16_t>(d_[pos_] | d_[pos_ + 1] << 8); pos_ += 2; return v; }
  uint32_t le32() {
    if (!need(4)) return 0;
    uint32_t v = uint32_t(d_[pos_]) | uint32_t(d_[pos_ + 1]) << 8 | uint32_t(d_[pos_ + 2]) << 16 | uint32_t(d_[pos_ + 3]) << 24;
    pos_ += 4; return v;
  }
  std::span<const uint8_t> bytes(size_t n) {
    if (!need(n)) return {};
    auto s = d_.subspan(pos_, n); pos_ += n; return s;
  }
  std::string_view str(size_t n) {
    auto s = bytes(n);
    return {reinterpret_cast<const char*>(s.data()), s.size()};
  }
  void skip(size_t n) { if (need(n)) pos_ += n; }
  // A reader over the next n bytes; this reader moves past them.
  ByteReader sub(size_t n) { return ByteReader(bytes(n)); }

 private:
  bool need(size_t n) {
    if (!ok_ || remaining() < n) { ok_ = false; pos_ = d_.size(); return false; }
    return true;
  }
  std::span<const uint8_t> d_;
  size_t pos_ = 0;
  bool ok_ = true;
};

inline std::string_view as_chars(std::span<const uint8_t> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

}  // namespace medmon
