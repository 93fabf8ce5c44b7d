#pragma once
// Names for the numbers and UIDs DICOM puts on the wire: UID names (from DCMTK's table),
// DIMSE command names, status classes, upper-layer reject/abort reasons.
#include <cstdint>
#include <string_view>

#include "sensor/common/dicom_user_identity.h"

namespace medmon::dicom {

// DCMTK keyword of a UID ("CTImageStorage"), or empty when unknown. Cached per thread.
std::string_view uid_name(std::string_view uid);

// "C-STORE" for 0x0001 and 0x8001; empty when unknown.
std::string_view command_name(uint16_t command_field);
inline bool is_response(uint16_t command_field) { return (command_field & 0x8000) != 0; }

// PS3.7 Annex C status classes.
enum class StatusClass : uint8_t { success, pending, cancel, warning, failure, unknown };
StatusClass status_class(uint16_t status);
std::string_view status_class_name(StatusClass c);
// Short stable name of well-known statuses ("out_of_resources"); empty otherwise. A few codes
// mean something else for C-STORE (PS3.4 B.2.3): `command` is the command field.
std::string_view status_name(uint16_t status, uint16_t command = 0);

std::string_view priority_name(uint16_t p);
std::string_view pc_result_name(uint8_t result);
std::string_view reject_result_name(uint8_t result);
std::string_view reject_source_name(uint8_t source);
std::string_view reject_reason_name(uint8_t source, uint8_t reason);
std::string_view abort_source_name(uint8_t source);
std::string_view abort_reason_name(uint8_t reason);
// User identity type names: one table with the policy's (sensor/common/dicom_user_identity.h).
using medmon::user_identity_type_name;

}  // namespace medmon::dicom
