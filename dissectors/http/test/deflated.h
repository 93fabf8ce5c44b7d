// Test helper: text compressed as a client or server does, for the HTTP coding tests of every
// dissector that reads HTTP bodies.
#pragma once

#include <catch2/catch.hpp>
#include <zlib.h>

#include <string>

namespace http_test {

// window_bits: gzip 31, zlib 15, raw deflate -15.
inline std::string deflated(const std::string& text, int window_bits) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, text.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace http_test
