#pragma once
// Shared by the MDS2 importer targets: whatever an importer accepts is rendered as a device
// model, and the rendered YAML must parse (answer text from the file is quoted correctly).
#include <yaml-cpp/yaml.h>

#include "policies/mds2/mds2_form.h"

namespace mds2_fuzz {

inline void render_and_reparse(const medmon::mds2::Form& f) {
  std::string yaml = medmon::mds2::render_model(f, {}, {});
  try {
    (void)YAML::Load(yaml);
  } catch (const YAML::Exception&) {
    __builtin_trap();  // the importer wrote a model that no YAML parser reads
  }
}

}  // namespace mds2_fuzz
