#pragma once
// POCT1-A (CLSI POCT1-A2) device messaging over TCP: XML messages named <TOPIC.R0n> (HEL hello,
// DST device status, REQ request, OBS observations, EOT end of topic, ACK, END, OPL, KPA...).
// One `poct1` event per message with the header (control id, version), the device identity
// from DEV.* (device, vendor, model, serial, software), acknowledgements, observation counts,
// and patient/operator ids only as pseudonyms.
#include <functional>
#include <span>
#include <string_view>

#include "dissectors/api/dissector.h"

namespace medmon {

extern const DissectorInfo kPoct1Info;

namespace poct1 {
// Optional BOM, XML declaration and whitespace, then a root element <ABC.R0n>.
Probe probe(std::span<const uint8_t> first, Dir dir);
// Calls f(element, V attribute) for every element of an XML text that carries a V="..."
// attribute (entities decoded). Bounded by the text; malformed tags are skipped.
void for_each_value(std::string_view xml, const std::function<void(std::string_view, std::string_view)>& f);
}  // namespace poct1

}  // namespace medmon
