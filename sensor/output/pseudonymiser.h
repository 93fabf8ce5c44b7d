#pragma once
// The single place a PHI value may leave medmon. By default a value becomes a keyed pseudonym
// (HMAC-SHA256 with the site key, truncated): the same patient gives the same pseudonym across
// flows and protocols (a DICOM Patient ID and an HL7 PID-3 of the same value match), but the
// value cannot be recovered without the key. Raw mode exists for forensics only.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace medmon {

class Pseudonymiser {
 public:
  enum class Mode { pseudonym, raw };
  explicit Pseudonymiser(std::string key = default_key(), Mode mode = Mode::pseudonym);
  ~Pseudonymiser();
  Pseudonymiser(const Pseudonymiser& o);
  Pseudonymiser& operator=(const Pseudonymiser&) = delete;

  // "phi:" + 16 hex digits of HMAC-SHA256(key, normalise(value)); or the raw value in raw mode.
  std::string operator()(std::string_view value) const;
  // The same, written into `out` (replacing its content): no allocation once out has grown.
  std::string_view into(std::string_view value, std::string& out) const;
  // Trims spaces, NUL padding and trailing component separators ('^') so the same value
  // written by DICOM and HL7 peers compares equal.
  static std::string_view normalise(std::string_view value);
  Mode mode() const { return mode_; }
  // Fixed key used when no site key is configured (tests, demo). A deployment sets its own.
  static std::string default_key() { return "medmon-default-site-key"; }

 private:
  void init();
  std::string key_;
  Mode mode_;
  // SHA-256 states after absorbing key^ipad and key^opad: computed once, copied per value
  // (the one-shot HMAC() redoes this work every time).
  struct Pads;
  std::unique_ptr<Pads> pads_;
};

}  // namespace medmon
