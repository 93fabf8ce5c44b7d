// The small shared value types: parsing their text forms.
#include <catch2/catch.hpp>

#include "sensor/common/types.h"

TEST_CASE("Ethernet addresses as sites and events write them", "[common][mac]") {
  medmon::MacAddr m{};
  REQUIRE(medmon::parse_mac("00:1a:2B:3c:4D:5e", m));
  CHECK(m == medmon::MacAddr{0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e});
  REQUIRE(medmon::parse_mac("02-00-00-00-00-ff", m));
  CHECK(m == medmon::MacAddr{0x02, 0, 0, 0, 0, 0xff});
  medmon::MacAddr kept = m;
  for (const char* bad : {"", "00:1a:2b:3c:4d", "00:1a:2b:3c:4d:5e:6f", "00:1a:2b:3c:4d:5g", "001a:2b:3c:4d:5e:",
                          "00:1a:2b:3c:4d:5", "00 1a 2b 3c 4d 5e", "0x:1a:2b:3c:4d:5e"}) {
    INFO(bad);
    CHECK_FALSE(medmon::parse_mac(bad, m));
    CHECK(m == kept);  // untouched on failure
  }
}
