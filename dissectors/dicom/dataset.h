#pragma once
// Dataset header walker: reads the elements of a DIMSE dataset as its fragments arrive, per the
// presentation context's transfer syntax (implicit VR LE, explicit VR LE/BE, deflated explicit
// LE), through sequences and items of defined or undefined length, and stops at Pixel Data.
// It keeps only what the event needs: which PHI attributes had a value, a few device strings,
// and the raw patient values that become pseudonyms.
//
// Caps (bounded memory and time per message):
//  - kBufferCap: bytes held at once: one incomplete element or one top-level sequence.
//    Larger sequences are read as they stream past (scan): item and element headers are
//    followed (depth <= kMaxDepth), the values the walk keeps are held one at a time, and every
//    other value is stepped over; larger values are skipped, never buffered.
//  - kHeaderBudget: dataset bytes read per message: element headers, values up to kValueCap
//    and sequences held whole; longer values, stepped over, count only their header. Checked
//    at each element, so the walk stops at the same element however the stream was split
//    (truncated). Large sequences read as they stream past have a budget of their own: past
//    it, one of defined length is stepped over by its length and the walk goes on after it.
//  - kInflateBudget: bytes inflated per deflated message (inflating costs even the bytes that
//    are stepped over).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dissectors/dicom/phi_tags.h"

namespace medmon::dicom {

// `detect`: transfer syntax unknown (association start not seen, or a private syntax): implicit
// VR LE, explicit VR LE, explicit VR BE or deflated explicit VR LE is decided from the first
// bytes.
enum class Syntax : uint8_t { implicit_le, explicit_le, explicit_be, deflated, detect };
Syntax syntax_of(std::string_view transfer_syntax_uid);
// The syntax the first bytes of a dataset are in; `detect` while too few bytes have come to
// tell and more may come (`open`). `cut`: the bytes stop at a hole; `complete`: the dataset
// ends there, so an element running past the end cannot be right.
enum class DetectEnd : uint8_t { open, cut, complete };
Syntax detect_syntax(std::span<const uint8_t> dataset_start, DetectEnd end);

// A value that says something: not only padding, empty components or wildcards (`*`, `?`),
// which are C-FIND universal matching keys.
bool has_value(std::string_view v);

struct DatasetSummary {
  PhiMask phi_mask;  // bit i: phi_tags()[i] was present with a value
  std::string charset;    // (0008,0005), raw
  std::string sop_class, modality, manufacturer, model, software, station;  // raw bytes
  std::string serial, patient_name, patient_id, accession;  // raw; only ever pseudonymised
  bool pixel_data = false;
  bool truncated = false;
  // Why the walk stopped early, set whenever `truncated` is: a cap of the walker
  // ("walk_budget", "element_too_large", "inflate_budget", "depth_limit"), a malformed dataset
  // ("malformed", error() names it), or the reason given to cut().
  const char* truncated_by = nullptr;
  uint32_t elements = 0;
  uint32_t max_depth = 0;
  void clear();
};

class DatasetWalker {
 public:
  static constexpr size_t kBufferCap = 64 * 1024;
  static constexpr uint64_t kHeaderBudget = 1024 * 1024;
  static constexpr uint64_t kInflateBudget = 64ull * 1024 * 1024;
  static constexpr size_t kValueCap = 1024;  // longer values only count as present
  static constexpr int kMaxDepth = 16;

  DatasetWalker();
  ~DatasetWalker();
  DatasetWalker(const DatasetWalker&) = delete;
  DatasetWalker& operator=(const DatasetWalker&) = delete;

  void start(Syntax s);
  // Feeds the next fragment bytes. Returns true once walking is over (pixel data reached,
  // budget spent, or malformed): the rest of the dataset can be skipped.
  bool feed(std::span<const uint8_t> bytes);
  // The dataset ended: elements still incomplete mean a truncated dataset.
  void finish();
  // The dataset will get no more bytes, or bytes that would be misread (a hole): stop walking
  // it and mark it truncated for `why`.
  void cut(const char* why);
  bool done() const { return done_; }
  bool active() const { return active_; }
  const DatasetSummary& summary() const { return sum_; }
  // Anomaly name when the dataset was malformed (nullptr otherwise) and its offset.
  const char* error() const { return error_; }
  uint64_t error_offset() const { return error_offset_; }

 private:
  struct Zlib;
  bool feed_plain(std::span<const uint8_t> bytes, bool raw);  // raw: as received, not inflated
  void walk(DetectEnd how = DetectEnd::open);  // `how` decides a `detect` syntax
  void walk_pass(DetectEnd how);
  // Reads a sequence too large to hold as it streams past: follows item and element headers,
  // holds only the values the walk keeps (one at a time) and steps over the rest, until the
  // sequence ends (its delimiter, or its defined length).
  void scan(size_t& p, size_t end);
  // A malformed structure inside the scan at dataset offset `at`: a UN value of defined length
  // that only looked like a sequence is stepped over as a value; anything else fails the walk.
  void scan_bad(size_t& p, size_t end, uint64_t at, const char* why = "malformed");
  void scan_to(size_t& p, size_t end, uint64_t to);  // steps over to dataset offset `to`
  // A malformed dataset (`name` the anomaly): the walk stops, truncated for `why`.
  void fail(const char* name, uint64_t off, const char* why = "malformed");
  void stop_at_cap(const char* why);

  Syntax syntax_ = Syntax::implicit_le;
  bool active_ = false;
  bool done_ = false;
  std::vector<uint8_t> buf_;
  uint64_t buf_offset_ = 0;  // dataset offset of buf_[0]
  uint64_t skip_ = 0;        // value bytes to drop before buffering again
  uint64_t walked_ = 0;
  // What the scan of large sequences read, counted as walked_ is (headers, values up to kValueCap):
  // at an element past kHeaderBudget a sequence of defined length is stepped over by its length
  // (leave_scan), one of undefined length ends the walk, as its end is only found by reading it.
  uint64_t scanned_ = 0;
  bool scan_over_ = false;  // the scan stopped at an element past its budget: leave_scan()
  bool leave_scan();  // true when the walk can go on at once with the bytes held
  size_t walk_at_ = 0;       // buffer size at which walk() runs again
  const char* error_ = nullptr;
  uint64_t error_offset_ = 0;
  uint64_t inflated_ = 0;
  // Open sequences, items and encapsulated values (whose items are fragments, stepped over) of
  // the scan, innermost last, each with the syntax of its content and its end (dataset offset;
  // kOpen for undefined length).
  static constexpr uint64_t kOpen = ~uint64_t(0);
  struct ScanFrame {
    enum Kind : uint8_t { sequence, item, fragments } kind;
    Syntax syntax;
    bool un = false;      // a UN value: not a sequence after all when its items do not frame
    bool valued = false;  // holds an element with a value (so a PHI sequence counts)
    uint32_t tag = 0;
    uint64_t end = kOpen;
  };
  std::vector<ScanFrame> scan_;
  void scan_push(ScanFrame f);
  void scan_pop();
  void scan_valued();  // an element with a value was read inside the open frames
  std::unique_ptr<Zlib> z_;
  DatasetSummary sum_;
};

// Decodes a text value to UTF-8 per Specific Character Set (0008,0005). Unknown or undecodable
// text is passed through; the JSON writer escapes invalid bytes.
void decode_text(std::string_view raw, std::string_view charset, std::string& out);

}  // namespace medmon::dicom
