#include <catch2/catch.hpp>

#include "sensor/common/utf8.h"

using namespace medmon;
using namespace std::string_literals;

TEST_CASE("append_utf8 writes 1 to 4 bytes, at each boundary") {
  std::string s;
  for (uint32_t cp : {0x00u, 0x41u, 0x7Fu, 0x80u, 0xE9u, 0x7FFu, 0x800u, 0xFFFDu, 0xFFFFu, 0x10000u, 0x1F600u, 0x10FFFFu})
    append_utf8(s, cp);
  CHECK(s == "\x00" "A" "\x7f" "\xc2\x80" "\xc3\xa9" "\xdf\xbf" "\xe0\xa0\x80" "\xef\xbf\xbd"
             "\xef\xbf\xbf" "\xf0\x90\x80\x80" "\xf0\x9f\x98\x80" "\xf4\x8f\xbf\xbf"s);
}

TEST_CASE("append_latin1_as_utf8 keeps ASCII and encodes the upper half in two bytes; it appends") {
  std::string s = "x";
  append_latin1_as_utf8(s, "M\xfcller\x80\xff\0!"s);
  CHECK(s == "xM\xc3\xbcller\xc2\x80\xc3\xbf\0!"s);
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  std::string once, each;
  append_latin1_as_utf8(once, all);
  for (int c = 0; c < 256; ++c) append_utf8(each, static_cast<uint32_t>(c));
  CHECK(once == each);
  CHECK(once.size() == 128 + 2 * 128);
}
