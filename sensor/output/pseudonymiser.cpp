#include "sensor/output/pseudonymiser.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

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

Pseudonymiser::~Pseudonymiser() {
  EVP_MD_CTX_free(inner_);
  EVP_MD_CTX_free(outer_);
}

void Pseudonymiser::init() {
  // RFC 2104: keys longer than the block are hashed first; then zero-padded to 64 bytes.
  unsigned char k[64] = {0};
  if (key_.size() > 64) {
    unsigned int n = 0;
    EVP_Digest(key_.data(), key_.size(), k, &n, EVP_sha256(), nullptr);
  } else {
    std::memcpy(k, key_.data(), key_.size());
  }
  unsigned char ipad[64], opad[64];
  for (int i = 0; i < 64; ++i) { ipad[i] = k[i] ^ 0x36; opad[i] = k[i] ^ 0x5c; }
  inner_ = EVP_MD_CTX_new();
  outer_ = EVP_MD_CTX_new();
  EVP_DigestInit_ex(inner_, EVP_sha256(), nullptr);
  EVP_DigestUpdate(inner_, ipad, 64);
  EVP_DigestInit_ex(outer_, EVP_sha256(), nullptr);
  EVP_DigestUpdate(outer_, opad, 64);
}

std::string Pseudonymiser::operator()(std::string_view value) const {
  std::string out;
  into(value, out);
  return out;
}

std::string_view Pseudonymiser::into(std::string_view value, std::string& out) const {
  std::string_view v = normalise(value);
  if (mode_ == Mode::raw) { out.assign(v); return out; }
  // One scratch context per thread, freed when the thread ends (worker threads come and go).
  struct CtxFree { void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); } };
  thread_local std::unique_ptr<EVP_MD_CTX, CtxFree> scratch(EVP_MD_CTX_new());
  EVP_MD_CTX* tmp = scratch.get();
  unsigned char inner[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX_copy_ex(tmp, inner_);
  EVP_DigestUpdate(tmp, v.data(), v.size());
  EVP_DigestFinal_ex(tmp, inner, &len);
  EVP_MD_CTX_copy_ex(tmp, outer_);
  EVP_DigestUpdate(tmp, inner, len);
  EVP_DigestFinal_ex(tmp, mac, &len);
  static constexpr char hex[] = "0123456789abcdef";
  char buf[20] = {'p', 'h', 'i', ':'};
  for (int i = 0; i < 8; ++i) { buf[4 + 2 * i] = hex[mac[i] >> 4]; buf[5 + 2 * i] = hex[mac[i] & 15]; }
  out.assign(buf, sizeof buf);
  return out;
}

}  // namespace medmon
