#include "dissectors/dicom/names.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <string>
#include <unordered_map>

namespace medmon::dicom {

std::string_view uid_name(std::string_view uid) {
  if (uid.empty() || uid.size() > 64) return {};
  // DCMTK searches its table linearly; associations repeat the same few dozen UIDs.
  thread_local std::unordered_map<std::string, const char*> cache;
  thread_local std::string key;
  key.assign(uid);
  auto it = cache.find(key);
  if (it == cache.end()) {
    const char* n = dcmFindNameOfUID(key.c_str(), nullptr);
    if (cache.size() > 4096) cache.clear();  // unknown UIDs are unbounded; keep the cache small
    it = cache.emplace(key, n).first;
  }
  return it->second ? std::string_view(it->second) : std::string_view();
}

std::string_view command_name(uint16_t f) {
  switch (f & 0x7FFF) {
    case 0x0001: return "C-STORE";
    case 0x0010: return "C-GET";
    case 0x0020: return "C-FIND";
    case 0x0021: return "C-MOVE";
    case 0x0030: return "C-ECHO";
    case 0x0FFF: return "C-CANCEL";
    case 0x0100: return "N-EVENT-REPORT";
    case 0x0110: return "N-GET";
    case 0x0120: return "N-SET";
    case 0x0130: return "N-ACTION";
    case 0x0140: return "N-CREATE";
    case 0x0150: return "N-DELETE";
    default: return {};
  }
}

StatusClass status_class(uint16_t s) {
  if (s == 0x0000) return StatusClass::success;
  if (s == 0xFF00 || s == 0xFF01) return StatusClass::pending;
  if (s == 0xFE00) return StatusClass::cancel;
  if (s == 0x0001 || s == 0x0107 || s == 0x0116 || (s >= 0xB000 && s <= 0xBFFF)) return StatusClass::warning;
  if ((s >= 0xA000 && s <= 0xAFFF) || (s >= 0xC000 && s <= 0xCFFF) || (s >= 0x0100 && s <= 0x02FF))
    return StatusClass::failure;
  return StatusClass::unknown;
}

std::string_view status_class_name(StatusClass c) {
  switch (c) {
    case StatusClass::success: return "success";
    case StatusClass::pending: return "pending";
    case StatusClass::cancel: return "cancel";
    case StatusClass::warning: return "warning";
    case StatusClass::failure: return "failure";
    default: return "unknown";
  }
}

std::string_view status_name(uint16_t s, uint16_t command) {
  if ((command & 0x7FFF) == 0x0001) {  // C-STORE (PS3.4 Table B.2-1)
    if (s == 0xB000) return "coercion_of_data_elements";
    if (s == 0xA900) return "dataset_does_not_match_sop_class";
    if (s == 0xC000) return "cannot_understand";
  }
  switch (s) {
    case 0x0000: return "success";
    case 0xFF00: return "pending";
    case 0xFF01: return "pending_optional_keys_unsupported";
    case 0xFE00: return "cancelled";
    case 0x0001: return "attribute_list_error";
    case 0x0107: return "attribute_list_error";
    case 0x0116: return "attribute_value_out_of_range";
    case 0xB000: return "sub_operations_complete_with_failures";
    case 0xB006: return "elements_discarded";
    case 0xB007: return "dataset_does_not_match_sop_class";
    case 0xA700: return "out_of_resources";
    case 0xA701: return "out_of_resources_match_count";
    case 0xA702: return "out_of_resources_sub_operations";
    case 0xA801: return "move_destination_unknown";
    case 0xA900: return "identifier_does_not_match_sop_class";
    case 0xC000: return "unable_to_process";
    case 0x0105: return "no_such_attribute";
    case 0x0106: return "invalid_attribute_value";
    case 0x0110: return "processing_failure";
    case 0x0111: return "duplicate_sop_instance";
    case 0x0112: return "no_such_object_instance";
    case 0x0113: return "no_such_event_type";
    case 0x0114: return "no_such_argument";
    case 0x0115: return "invalid_argument_value";
    case 0x0117: return "invalid_object_instance";
    case 0x0118: return "no_such_sop_class";
    case 0x0119: return "class_instance_conflict";
    case 0x0120: return "missing_attribute";
    case 0x0121: return "missing_attribute_value";
    case 0x0122: return "sop_class_not_supported";
    case 0x0123: return "no_such_action_type";
    case 0x0124: return "not_authorized";
    case 0x0210: return "duplicate_invocation";
    case 0x0211: return "unrecognized_operation";
    case 0x0212: return "mistyped_argument";
    case 0x0213: return "resource_limitation";
    default: return {};
  }
}

std::string_view priority_name(uint16_t p) {
  switch (p) { case 0: return "medium"; case 1: return "high"; case 2: return "low"; default: return "unknown"; }
}

std::string_view pc_result_name(uint8_t r) {
  switch (r) {
    case 0: return "acceptance";
    case 1: return "user_rejection";
    case 2: return "no_reason";
    case 3: return "abstract_syntax_not_supported";
    case 4: return "transfer_syntaxes_not_supported";
    default: return "unknown";
  }
}

std::string_view reject_result_name(uint8_t r) {
  switch (r) { case 1: return "permanent"; case 2: return "transient"; default: return "unknown"; }
}

std::string_view reject_source_name(uint8_t s) {
  switch (s) {
    case 1: return "service_user";
    case 2: return "service_provider_acse";
    case 3: return "service_provider_presentation";
    default: return "unknown";
  }
}

std::string_view reject_reason_name(uint8_t s, uint8_t r) {
  if (s == 1) {
    switch (r) {
      case 1: return "no_reason";
      case 2: return "application_context_not_supported";
      case 3: return "calling_ae_not_recognized";
      case 7: return "called_ae_not_recognized";
      default: return "unknown";
    }
  }
  if (s == 2) {
    switch (r) { case 1: return "no_reason"; case 2: return "protocol_version_not_supported"; default: return "unknown"; }
  }
  if (s == 3) {
    switch (r) { case 1: return "temporary_congestion"; case 2: return "local_limit_exceeded"; default: return "unknown"; }
  }
  return "unknown";
}

std::string_view abort_source_name(uint8_t s) {
  switch (s) { case 0: return "service_user"; case 1: return "reserved"; case 2: return "service_provider"; default: return "unknown"; }
}

std::string_view abort_reason_name(uint8_t r) {
  switch (r) {
    case 0: return "not_specified";
    case 1: return "unrecognized_pdu";
    case 2: return "unexpected_pdu";
    case 4: return "unrecognized_pdu_parameter";
    case 5: return "unexpected_pdu_parameter";
    case 6: return "invalid_pdu_parameter_value";
    default: return "unknown";
  }
}

}  // namespace medmon::dicom
