#include "sensor/output/community_id.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <cstring>
#include <utility>

namespace medmon {

std::string community_id(const IpAddr& src, uint16_t src_port, const IpAddr& dst, uint16_t dst_port, uint8_t proto,
                         uint16_t seed) {
  if (!src.family || src.family != dst.family || proto == 1 || proto == 58 || proto == 132) return {};
  const bool ports = proto == 6 || proto == 17;
  if (!ports) src_port = dst_port = 0;
  // The lower endpoint (address, then port) first, so both directions hash alike.
  const size_t n = src.family == 4 ? 4 : 16;
  const uint8_t *a = src.b.data(), *b = dst.b.data();
  uint16_t pa = src_port, pb = dst_port;
  int order = std::memcmp(a, b, n);
  if (order > 0 || (order == 0 && pa > pb)) {
    std::swap(a, b);
    std::swap(pa, pb);
  }
  uint8_t in[2 + 16 + 16 + 2 + 4];
  size_t len = 0;
  in[len++] = static_cast<uint8_t>(seed >> 8);
  in[len++] = static_cast<uint8_t>(seed);
  std::memcpy(in + len, a, n); len += n;
  std::memcpy(in + len, b, n); len += n;
  in[len++] = proto;
  in[len++] = 0;  // padding
  if (ports) {
    in[len++] = static_cast<uint8_t>(pa >> 8);
    in[len++] = static_cast<uint8_t>(pa);
    in[len++] = static_cast<uint8_t>(pb >> 8);
    in[len++] = static_cast<uint8_t>(pb);
  }
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(in, len, digest);
  unsigned char b64[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  int m = EVP_EncodeBlock(b64, digest, SHA_DIGEST_LENGTH);
  std::string id = "1:";
  id.append(reinterpret_cast<const char*>(b64), static_cast<size_t>(m));
  return id;
}

}  // namespace medmon
