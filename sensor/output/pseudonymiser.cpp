#include "sensor/output/pseudonymiser.h"

// The SHA-256 context struct is what makes a precomputed HMAC state cheap to reuse: a plain
// struct copy. Through EVP, each copy allocates and frees a provider context, which cost more
// than the hash of a short value. The functions are deprecated in OpenSSL 3 but kept, and run
// the same accelerated code.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>
#include <memory>

namespace medmon {

std::string_view Pseudonymiser::normalise(std::string_view v) {
  auto junk = [](char c) { return c == ' ' || c == '\0' || c == '\t' || c == '\r' || c == '\n'; };
  while (!v.empty() && junk(v.front())) v.remove_prefix(1);
  while (!v.empty() && (junk(v.back()) || v.back() == '^')) v.remove_suffix(1);
  return v;
}

Pseudonymiser::Pseudonymiser(std::string key, Mode mode) : key_(std::move(key)), mode_(mode) { init(); }
Pseudonymiser::Pseudonymiser(const Pseudonymiser& o) : key_(o.key_), mode_(o.mode_) { init(); }

struct Pseudonymiser::Pads {
  SHA256_CTX inner, outer;
};

Pseudonymiser::~Pseudonymiser() = default;

void Pseudonymiser::init() {
  // RFC 2104: keys longer than the block are hashed first; then zero-padded to 64 bytes.
  unsigned char k[64] = {0};
  if (key_.size() > 64) {
    SHA256(reinterpret_cast<const unsigned char*>(key_.data()), key_.size(), k);
  } else {
    std::memcpy(k, key_.data(), key_.size());
  }
  unsigned char ipad[64], opad[64];
  for (int i = 0; i < 64; ++i) { ipad[i] = k[i] ^ 0x36; opad[i] = k[i] ^ 0x5c; }
  pads_ = std::make_unique<Pads>();
  SHA256_Init(&pads_->inner);
  SHA256_Update(&pads_->inner, ipad, 64);
  SHA256_Init(&pads_->outer);
  SHA256_Update(&pads_->outer, opad, 64);
}

std::string Pseudonymiser::operator()(std::string_view value) const {
  std::string out;
  into(value, out);
  return out;
}

std::string_view Pseudonymiser::into(std::string_view value, std::string& out) const {
  std::string_view v = normalise(value);
  if (mode_ == Mode::raw) { out.assign(v); return out; }
  unsigned char inner[SHA256_DIGEST_LENGTH], mac[SHA256_DIGEST_LENGTH];
  SHA256_CTX c = pads_->inner;
  SHA256_Update(&c, v.data(), v.size());
  SHA256_Final(inner, &c);
  c = pads_->outer;
  SHA256_Update(&c, inner, sizeof inner);
  SHA256_Final(mac, &c);
  static constexpr char hex[] = "0123456789abcdef";
  char buf[20] = {'p', 'h', 'i', ':'};
  for (int i = 0; i < 8; ++i) { buf[4 + 2 * i] = hex[mac[i] >> 4]; buf[5 + 2 * i] = hex[mac[i] & 15]; }
  out.assign(buf, sizeof buf);
  return out;
}

}  // namespace medmon
