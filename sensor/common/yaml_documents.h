#pragma once
// yaml-cpp's LoadFile reads the first document of a file and drops the rest without a word: a
// file of several documents ("---" and more settings after it) is refused instead.
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <fstream>
#include <optional>
#include <string>

namespace medmon {

// Where the second document of a YAML file starts, or nothing when it has one document (or
// none). Throws YAML::ParserException on a syntax error after the first document.
inline std::optional<YAML::Mark> second_yaml_document(const std::string& path) {
  // The parser's events only: no node is built, however large the file.
  struct Starts : YAML::EventHandler {
    YAML::Mark last;
    void OnDocumentStart(const YAML::Mark& m) override { last = m; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  YAML::Parser parser(in);
  Starts h;
  if (!parser.HandleNextDocument(h)) return std::nullopt;
  if (!parser.HandleNextDocument(h)) return std::nullopt;
  return h.last;
}

}  // namespace medmon
