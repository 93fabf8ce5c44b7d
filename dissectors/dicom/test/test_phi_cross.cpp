// The same made-up patient sent over HL7 (in an MSH-18 character set) and over DICOM (in the
// matching Specific Character Set) gets one pseudonym from both dissectors.
#include <catch2/catch.hpp>

#include "dissectors/dicom/dicom_dissector.h"
#include "dissectors/dicom/test/builder.h"
#include "dissectors/dicom/test/harness.h"
#include "dissectors/hl7/hl7_dissector.h"

using namespace dtest;
using medmon::Dir;
using nlohmann::json;

namespace {

std::string dicom_pseudonym(const std::string& charset, const std::string& name) {
  Assoc a;
  a.pcs.push_back({1, kCtImage, {kExplicitLe}, 0, kExplicitLe});
  Cmd st;
  st.field = 0x0001; st.msg_id = 1; st.sop_class = kCtImage; st.sop_instance = "1.2.3.4"; st.dataset = true;
  Ds d(Ts::explicit_le);
  d.str(0x0008, 0x0005, "CS", charset);
  d.str(0x0008, 0x0016, "UI", kCtImage);
  d.str(0x0010, 0x0010, "PN", name);
  d.str(0x0010, 0x0020, "LO", "ID1");
  Harness h(medmon::dicom::make_dissector(), [&](Harness& x) {
    x.feed(Dir::to_server, associate(a, false));
    x.feed(Dir::to_client, associate(a, true));
    x.feed(Dir::to_server, message(1, command(st), &d.b));
    x.finish();
  });
  auto ev = h.events("dicom");
  if (ev.empty() || ev[0]["dicom"]["ops"].empty()) return "(no op)";
  return ev[0]["dicom"]["ops"][0]["patient_names"][0].get<std::string>();
}

std::string hl7_pseudonym(const std::string& msh18, const std::string& name) {
  std::string m = "\x0bMSH|^~\\&|SND|SFAC|RCV|RFAC|20240101||ADT^A01|C1|P|2.5|||||XX|" + msh18 +
                  "\rPID|1||ID1||" + name + "\r\x1c\r";
  Harness h(medmon::kHl7Info.make(), [&](Harness& x) {
    x.feed(Dir::to_server, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(m.data()), m.size()));
    x.finish();
  });
  auto ev = h.events("hl7");
  if (ev.empty()) return "(no event)";
  return ev[0]["hl7"]["patient"]["name"].get<std::string>();
}

}  // namespace

TEST_CASE("a name pseudonymises the same from HL7 MSH-18 and DICOM (0008,0005)", "[dicom][hl7][phi]") {
  struct Case { std::string msh18, hl7_name, dicom_cs, dicom_name; };
  const std::string ivanov = "\xb8\xb2\xb0\xbd\xbe\xb2^\xb8\xb2\xb0\xbd";  // in ISO 8859-5
  const std::string yamada = "\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B";         // JIS X 0208
  const std::string igarashi = "\x1b$B8^==Mr\x1b(B^\x1b$BB@O:\x1b(B";
  const Case cases[] = {
      {"8859/1", "M\xdcLLER^HANS", "ISO_IR 100", "M\xdcLLER^HANS"},
      {"8859/9", "M\xdcLLER^HANS", "ISO_IR 100", "M\xdcLLER^HANS"},
      {"8859/9", "\xd0\xdcL^AY\xdd", "ISO_IR 148", "\xd0\xdcL^AY\xdd"},
      {"8859/5", ivanov, "ISO_IR 144", ivanov},
      {"8859/5", ivanov, "ISO 2022 IR 144", ivanov},
      {"8859/5", ivanov, "ISO_IR 192", "\xd0\x98\xd0\x92\xd0\x90\xd0\x9d\xd0\x9e\xd0\x92^\xd0\x98\xd0\x92\xd0\x90\xd0\x9d"},
      {"8859/7", "\xc1\xc8\xc7\xcd\xc1^\xcc\xc1\xd1\xc9\xc1", "ISO_IR 126", "\xc1\xc8\xc7\xcd\xc1^\xcc\xc1\xd1\xc9\xc1"},
      {"8859/2", "\xa3\xd3" "D\xac^\xaf" "ANETA", "ISO_IR 101", "\xa3\xd3" "D\xac^\xaf" "ANETA"},
      {"KS X 1001", "KIM^\xbc\xf8\xc0\xda", "\\ISO 2022 IR 149", "KIM^\x1b$)C\xbc\xf8\xc0\xda"},
      {"UNICODE UTF-8", "KIM^\xec\x88\x9c\xec\x9e\x90", "\\ISO 2022 IR 149", "KIM^\x1b$)C\xbc\xf8\xc0\xda"},
      {"GB 18030-2000", "\xd5\xc5^\xd0\xa1", "\\ISO 2022 IR 58", "\x1b$)A\xd5\xc5^\x1b$)A\xd0\xa1"},
      {"~ISO IR87", yamada, "ISO 2022 IR 6\\ISO 2022 IR 87", yamada},
      // 五十嵐^太郎: 五 is JIS 0x385E, whose second byte is HL7's component separator.
      {"~ISO IR87", igarashi, "\\ISO 2022 IR 87", igarashi},
      // Component groups: DICOM alphabetic=ideographic=phonetic, HL7 repetitions of PID-5. Both
      // pseudonymise the first (the alphabetic group); an empty trailing group changes nothing.
      {"~ISO IR87", "Yamada^Tarou~" + yamada, "ISO 2022 IR 6\\ISO 2022 IR 87", "Yamada^Tarou=" + yamada},
      {"~ISO IR87", "Yamada^Tarou~" + yamada + "~\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B", "\\ISO 2022 IR 87",
       "Yamada^Tarou=" + yamada + "=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"},
      {"", "DOE^JANE", "", "DOE^JANE="},
      {"", "DOE^JANE^^^^^L", "", "DOE^JANE=="},
      {"", "DOE^JANE~DOE^J", "", "DOE^JANE^="},
      // Only an ideographic group: the first group with a value.
      {"~ISO IR87", yamada, "\\ISO 2022 IR 87", "=" + yamada},
  };
  for (auto& c : cases) {
    INFO(c.msh18 << " / " << c.dicom_cs);
    std::string from_hl7 = hl7_pseudonym(c.msh18, c.hl7_name);
    CHECK(from_hl7.rfind("phi:", 0) == 0);
    CHECK(from_hl7 == dicom_pseudonym(c.dicom_cs, c.dicom_name));
  }
}
