#include "sensor/output/pseudonymiser.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace medmon {

std::string_view Pseudonymiser::normalise(std::string_view v) {
  auto junk = [](char c) { return c == ' ' || c == '\0' || c == '\t' || c == '\r' || c == '\n'; };
  while (!v.empty() && junk(v.front())) v.remove_prefix(1);
  while (!v.empty() && (junk(v.back()) || v.back() == '^')) v.remove_suffix(1);
  return v;
}

std::string Pseudonymiser::operator()(std::string_view value) const {
  std::string_view v = normalise(value);
  if (mode_ == Mode::raw) return std::string(v);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(v.data()), v.size(), mac, &len);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "phi:";
  for (int i = 0; i < 8; ++i) { out.push_back(hex[mac[i] >> 4]); out.push_back(hex[mac[i] & 15]); }
  return out;
}

}  // namespace medmon
