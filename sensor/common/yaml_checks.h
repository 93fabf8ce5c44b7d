#pragma once
// Checks shared by the YAML readers of the sensor's own files (sensor config, sinks): each
// failure is an exception of the reader's own type whose message starts with file:line:column,
// so an operator sees where the file is wrong and what is expected there.
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <functional>
#include <map>
#include <set>
#include <string>

namespace medmon::yaml_checks {

template <class Error>
[[noreturn]] void fail(const std::string& file, const YAML::Node& n, const std::string& what) {
  const YAML::Mark m = n.Mark();
  throw Error(fmt::format("{}:{}:{}: {}", file, m.line + 1, m.column + 1, what));
}

// A number in [min, max] (NaN is outside every range); the error names the range and what was given.
template <class Error, class T>
T number(const std::string& file, const YAML::Node& n, const std::string& key, T min, T max) {
  T v{};
  bool ok = n.IsScalar();
  if (ok) {
    try {
      v = n.as<T>();
    } catch (const YAML::Exception&) {
      ok = false;  // not a number, or not one of this type (a sign or a fraction where a count goes)
    }
  }
  if (!ok || !(v >= min && v <= max)) {
    std::string got = n.IsScalar() ? fmt::format(" (got '{}')", n.Scalar()) : std::string();
    fail<Error>(file, n, fmt::format("'{}' must be a number between {} and {}{}", key, min, max, got));
  }
  return v;
}

template <class Error>
bool flag(const std::string& file, const YAML::Node& n, const std::string& key) {
  bool b = false;
  try {
    b = n.as<bool>();
  } catch (const YAML::Exception&) {
    fail<Error>(file, n, fmt::format("'{}' must be true or false", key));
  }
  return b;
}

using Handler = std::function<void(const YAML::Node&)>;

// A mapping whose keys must all be known: each value goes to its key's handler, an unknown key
// is an error that lists the expected ones, and so is a key given twice (yaml-cpp keeps both:
// a value would be read twice, a section merged with its repeat, a list appended to).
template <class Error>
void mapping(const std::string& file, const YAML::Node& node, const std::string& name,
             const std::map<std::string, Handler>& keys) {
  if (!node.IsMap()) fail<Error>(file, node, fmt::format("'{}' must be a mapping", name));
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) fail<Error>(file, it->first, fmt::format("keys of '{}' must be plain names", name));
    std::string k = it->first.as<std::string>();
    if (!seen.insert(k).second) fail<Error>(file, it->first, fmt::format("duplicate key '{}' in '{}'", k, name));
    auto h = keys.find(k);
    if (h == keys.end()) {
      std::string known;
      for (auto& [kk, _] : keys) known += (known.empty() ? "" : ", ") + kk;
      fail<Error>(file, it->first, fmt::format("unknown key '{}' in '{}' (expected one of: {})", k, name, known));
    }
    h->second(it->second);
  }
}

}  // namespace medmon::yaml_checks
