#include <catch2/catch.hpp>

#include <string>

#include "hl7cpp/message.h"

using namespace hl7cpp;

namespace {
std::string un(std::string_view s, bool* ok = nullptr, Separators sep = {}) {
  std::string out;
  bool r = unescape_to(s, sep, out);
  if (ok) *ok = r;
  return out;
}
}  // namespace

TEST_CASE("delimiter escapes") {
  CHECK(un("O\\T\\BRIEN") == "O&BRIEN");
  CHECK(un("A\\S\\B\\F\\C\\R\\D\\E\\E") == "A^B|C~D\\E");
  CHECK(un("plain") == "plain");
  CHECK(un("") == "");
  Separators custom;
  custom.field = '#'; custom.component = '@'; custom.escape = '$';
  CHECK(un("a$S$b$F$c", nullptr, custom) == "a@b#c");
}

TEST_CASE("hex, formatting, highlighting, character sets") {
  CHECK(un("\\X41424344\\") == "ABCD");
  CHECK(un("x\\X0D0A\\y") == "x\r\ny");
  CHECK(un("a\\.br\\b") == "a\rb");
  CHECK(un("a\\.sp2\\b") == "a\r\rb");
  CHECK(un("a\\.in4\\b") == std::string("a") + std::string(16, ' ') + "b");
  CHECK(un("\\.fi\\\\.nf\\x") == "x");
  CHECK(un("\\H\\bold\\N\\") == "bold");
  CHECK(un("\\C2842\\abc\\M2442\\") == "abc");
  // As the ISO 2022 escape sequences they stand for (HL7 v2 2.7.2).
  std::string iso;
  CHECK(unescape_to("\\M2442\\;3\\C2842\\a\\M242844\\\\C2D41\\", Separators{}, iso, CharsetSwitch::iso2022));
  CHECK(iso == "\x1b$B;3\x1b(Ba\x1b$(D\x1b-A");
  CHECK(un("\\Zvendor\\ok") == "ok");
  Separators t;
  t.truncation = '#';
  CHECK(un("a\\P\\b", nullptr, t) == "a#b");
}

TEST_CASE("malformed escapes are reported and bounded") {
  bool ok = true;
  CHECK(un("abc\\F", &ok) == "abc");
  CHECK_FALSE(ok);
  CHECK(un("\\X4\\", &ok).empty());
  CHECK_FALSE(ok);
  CHECK(un("\\XZZ\\", &ok).empty());
  CHECK_FALSE(ok);
  CHECK(un("a\\\\b", &ok) == "ab");
  CHECK_FALSE(ok);
  CHECK(un("\\Q\\", &ok).empty());
  CHECK_FALSE(ok);
  for (const char* bad : {"\\C28\\", "\\C284\\", "\\C284242\\", "\\M24\\", "\\M24284\\", "\\C2G42\\", "\\C1B42\\", "\\M24428080\\"}) {
    INFO(bad);
    std::string out;
    CHECK_FALSE(unescape_to(bad, Separators{}, out, CharsetSwitch::iso2022));
    CHECK(out.empty());
  }
  CHECK(un("\\.sp999999999\\", &ok).size() == 64);  // hostile repeat counts are capped
  CHECK(ok);
  CHECK(un("\\T\\", &ok) == "&");
  CHECK(ok);
}
