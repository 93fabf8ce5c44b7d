#pragma once
// DICOM attributes that carry PHI (PS3.15 Table E.1-1, tiers as in docs/dicom.md):
// tier 1 = direct identifiers (alert on any cleartext occurrence), tier 2 = dates,
// quasi-identifiers, staff and device names, and the Study, Series and SOP Instance UIDs, which
// link a study to its patient (counted, never alerted on alone).
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <span>

namespace medmon::dicom {

struct PhiTag {
  uint32_t tag;          // (group << 16) | element
  const char* keyword;   // DICOM keyword, as in the `phi` lists of events
  uint8_t tier;
};

inline constexpr size_t kMaxPhiTags = 128;
using PhiMask = std::bitset<kMaxPhiTags>;  // bit i: phi_tags()[i]

std::span<const PhiTag> phi_tags();  // sorted by tag; at most kMaxPhiTags entries
int phi_index(uint32_t tag);         // index in phi_tags(), -1 when not PHI

}  // namespace medmon::dicom
