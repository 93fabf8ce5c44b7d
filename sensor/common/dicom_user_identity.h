#pragma once
// DICOM user identity types (PS3.7 D.3.3.7, User Identity Negotiation): the one table of their
// names. The DICOM dissector names the type a request presents with it (events, the
// dicom.user_identity fact); the policy reads a model's user_identity list with it, so what a model
// declares and what the sensor reports are the same words.
#include <cstdint>
#include <string_view>

namespace medmon {

struct UserIdentityType {
  uint8_t code;           // the User-Identity-Type byte on the wire
  std::string_view name;  // as events name it
};
inline constexpr UserIdentityType kUserIdentityTypes[] = {
    {1, "username"}, {2, "username_passcode"}, {3, "kerberos"}, {4, "saml"}, {5, "jwt"}};

// The name of a type byte; "unknown" for a byte the standard does not define.
constexpr std::string_view user_identity_type_name(uint8_t code) {
  for (auto& t : kUserIdentityTypes) if (t.code == code) return t.name;
  return "unknown";
}

// The type byte a name stands for; 0 for "none" (a request without the item), -1 for a name that
// is no type. A model may also write username_password for username_passcode (2).
constexpr int user_identity_code(std::string_view name) {
  if (name == "none") return 0;
  if (name == "username_password") return 2;
  for (auto& t : kUserIdentityTypes) if (t.name == name) return t.code;
  return -1;
}

}  // namespace medmon
