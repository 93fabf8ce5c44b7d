#include <catch2/catch.hpp>

#include <string>

#include "dissectors/http/test/deflated.h"

#include "dissectors/http/http_coding.h"

using namespace medmon::http;

namespace {

using http_test::deflated;

const std::string kText = "MSH|^~\\&|EHR|WARD|LAB|HOSP|20240101120000||ADT^A01|C1|P|2.5\rPID|1||MRN77||QUILL^ZED\r";

}  // namespace

TEST_CASE("http coding: gzip, x-gzip and deflate bodies are undone, the last applied first") {
  std::string out;
  CHECK(undo_codings("gzip", deflated(kText, 31), 1 << 20, out) == Decoding::ok);
  CHECK(out == kText);
  CHECK(undo_codings(" X-GZIP ", deflated(kText, 31) + deflated(kText, 31), 1 << 20, out) == Decoding::ok);
  CHECK(out == kText + kText);  // two members
  CHECK(undo_codings("deflate", deflated(kText, 15), 1 << 20, out) == Decoding::ok);
  CHECK(out == kText);
  CHECK(undo_codings("deflate", deflated(kText, -15), 1 << 20, out) == Decoding::ok);
  CHECK(out == kText);
  CHECK(undo_codings("deflate, gzip", deflated(deflated(kText, 15), 31), 1 << 20, out) == Decoding::ok);
  CHECK(out == kText);
  CHECK(undo_codings("", kText, 1 << 20, out) == Decoding::ok);
  CHECK(out == kText);
}

TEST_CASE("http coding: another coding, broken or cut data, and a text past the cap") {
  std::string out;
  const std::string gz = deflated(kText, 31);
  CHECK(undo_codings("br", gz, 1 << 20, out) == Decoding::unknown);
  CHECK(undo_codings("gzip, br", gz, 1 << 20, out) == Decoding::unknown);
  CHECK(undo_codings("gzip", gz.substr(0, gz.size() / 2), 1 << 20, out) == Decoding::broken);
  CHECK(undo_codings("gzip", "not compressed at all", 1 << 20, out) == Decoding::broken);
  CHECK(undo_codings("gzip", "", 1 << 20, out) == Decoding::broken);
  // A small body that inflates to a large text stops at the cap.
  const std::string bomb = deflated(std::string(8 << 20, ' '), 31);
  REQUIRE(bomb.size() < 64 * 1024);
  CHECK(undo_codings("gzip", bomb, 1 << 20, out) == Decoding::too_long);
  CHECK(out.size() == (1u << 20));
}

TEST_CASE("http coding: the start of a compressed body inflates as far as it goes") {
  const std::string gz = deflated(kText, 31);
  std::string out;
  bool whole = false;
  for (size_t n = 0; n <= gz.size(); ++n) {
    INFO(n);
    REQUIRE(inflate_prefix("gzip", gz.substr(0, n), 1 << 10, out, whole));
    CHECK(kText.compare(0, out.size(), out) == 0);  // a prefix of the text
    CHECK(whole == (n == gz.size()));
  }
  CHECK(out == kText);
  // Capped: as much as the cap, and nothing more to look for.
  REQUIRE(inflate_prefix("gzip", gz, 8, out, whole));
  CHECK(out == kText.substr(0, 8));
  CHECK(whole);
  CHECK_FALSE(inflate_prefix("br", gz, 1 << 10, out, whole));
  CHECK_FALSE(inflate_prefix("gzip", "<s12:Envelope>", 1 << 10, out, whole));
  // Stacked codings, each cut.
  const std::string twice = deflated(deflated(kText, 15), 31);
  REQUIRE(inflate_prefix("deflate, gzip", twice.substr(0, twice.size() - 4), 1 << 10, out, whole));
  CHECK(kText.compare(0, out.size(), out) == 0);
  CHECK_FALSE(whole);
}

TEST_CASE("http coding: the codings a head gives its body") {
  CHECK(head_codings("POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n") == "gzip");
  CHECK(head_codings("POST / HTTP/1.1\nTransfer-Encoding: gzip, chunked\ncontent-encoding: deflate\n") == "deflate,gzip");
  CHECK(head_codings("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: identity\r\n") == "");
  CHECK(head_codings("HTTP/1.1 200 OK\r\nX-Content-Encoding: gzip\r\n") == "");
}
