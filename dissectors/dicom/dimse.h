#pragma once
// DIMSE command sets (PS3.7): group 0000, always Implicit VR Little Endian.
#include <cstdint>
#include <span>
#include <string>

#include "dissectors/dicom/pdu.h"

namespace medmon::dicom {

constexpr uint16_t kNoDataset = 0x0101;  // CommandDataSetType: no dataset follows
constexpr size_t kMaxCommandSet = 64 * 1024;  // real command sets are a few hundred bytes

struct Command {
  enum Has : uint32_t {
    kField = 1, kMessageId = 2, kRespondedId = 4, kPriority = 8, kDatasetType = 16, kStatus = 32,
    kRemaining = 64, kCompleted = 128, kFailed = 256, kWarning = 512, kMoveOrigId = 1024,
    kEventType = 2048, kActionType = 4096,
  };
  uint32_t has = 0;
  uint16_t field = 0;
  uint16_t message_id = 0, responded_id = 0;
  uint16_t priority = 0;
  uint16_t dataset_type = kNoDataset;
  uint16_t status = 0;
  uint16_t remaining = 0, completed = 0, failed = 0, warning = 0;
  uint16_t move_originator_id = 0;
  uint16_t event_type = 0, action_type = 0;
  std::string affected_sop_class, requested_sop_class;
  std::string affected_sop_instance, requested_sop_instance;
  std::string move_destination, move_originator_ae;

  bool has_dataset() const { return dataset_type != kNoDataset; }
  const std::string& sop_class() const { return affected_sop_class.empty() ? requested_sop_class : affected_sop_class; }
  const std::string& sop_instance() const { return affected_sop_instance.empty() ? requested_sop_instance : affected_sop_instance; }
};

// Parses a complete command set. Returns false when it has no CommandField.
bool parse_command(std::span<const uint8_t> bytes, Command& out, Issues& issues);

// Bytes [begin, end) of a command set lost in a hole of the stream (zero-filled, so the offsets
// after them hold).
struct Hole { size_t begin = 0, end = 0; };
constexpr size_t kMaxCommandHoles = 16;  // more holes in one command set: nothing of it is kept

// A command set that lost the bytes of `holes` (ascending, disjoint): reads the elements whose
// bytes all arrived. An element whose value a hole hit is dropped, but when its header arrived
// its length still frames what follows; after a hole that took an element header, reading
// resumes at the first run of well-formed elements (looked for in the next 512 bytes) that ends
// the set exactly or runs into the next hole. No anomalies: the holes are already counted.
// Returns false when no element was read.
bool parse_command_around_holes(std::span<const uint8_t> bytes, std::span<const Hole> holes, Command& out);

}  // namespace medmon::dicom
