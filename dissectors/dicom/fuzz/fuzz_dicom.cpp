// libFuzzer target for the DICOM byte-stream parser. The input is a script of deliveries:
//   byte h: bit 0 = direction; bits 1-2: 0-2 deliver the next (next byte + 1) bytes, 3 = a gap
//   of (next byte) bytes. Deliveries honour the sensor's contract (held bytes, need, skip), so
//   every framing path, resynchronisation and dataset walk is reachable. Also fuzzes the
//   dataset walker on the raw input in each transfer syntax, and the probe and the sender on it.
#include <cstddef>
#include <cstdint>

#include "dissectors/dicom/fuzz/script.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dicom_fuzz::run_script(std::span<const uint8_t>(data, size));
  return 0;
}
