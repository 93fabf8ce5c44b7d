#include "dissectors/registry.h"

#include "dissectors/dhcp/dhcp_dissector.h"
#include "dissectors/dicom/dicom_dissector.h"
#include "dissectors/hl7/hl7_dissector.h"
#include "dissectors/astm/astm_dissector.h"
#include "dissectors/poct1/poct1_dissector.h"
#include "dissectors/proprietary/signature.h"
#include "dissectors/sdc/sdc_dissector.h"

// Adding a protocol: include its header and add one line to kAll.

namespace medmon {

namespace {
const DissectorInfo* const kAll[] = {
    nullptr,  // keeps the array non-empty; skipped by all_dissectors()
    &kDicomInfo,
    &kHl7Info,
    &kAstmInfo, &kPoct1Info, &kSdcInfo, &kDhcpInfo, &kBootpInfo, &kProprietaryInfo, &kProprietaryUdpInfo,
};
}  // namespace

std::span<const DissectorInfo* const> all_dissectors() {
  return std::span<const DissectorInfo* const>(kAll + 1, std::size(kAll) - 1);
}

std::vector<const DissectorInfo*> probe_candidates() {
  auto sigs = proprietary::signature_dissectors();
  std::vector<const DissectorInfo*> v(sigs.begin(), sigs.end());
  auto all = all_dissectors();
  v.insert(v.end(), all.begin(), all.end());
  return v;
}

}  // namespace medmon
