#include "sensor/assets/data_files.h"

#include "sensor/assets/impl_table.h"
#include "sensor/assets/oui_table.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#ifndef MEDMON_SOURCE_DATA_DIR
#define MEDMON_SOURCE_DATA_DIR ""
#endif

namespace medmon {

std::string find_data_file(const std::string& name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (const char* d = std::getenv("MEDMON_DATA_DIR"); d && *d) {
    fs::path p = fs::path(d) / name;
    return fs::exists(p, ec) ? p.string() : std::string();  // an explicit override is never second-guessed
  }
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const char* rel : {"../share/medmon", "data"}) {
      fs::path p = exe.parent_path() / rel / name;
      if (fs::exists(p, ec)) return p.string();
    }
  }
  if (*MEDMON_SOURCE_DATA_DIR) {
    fs::path p = fs::path(MEDMON_SOURCE_DATA_DIR) / name;
    if (fs::exists(p, ec)) return p.string();
  }
  return {};
}

std::string ieee_data_dir() {
  if (const char* d = std::getenv("MEDMON_IEEE_DATA"); d && *d) return d;
  return "/usr/share/ieee-data";
}

void load_reference_tables(OuiTable& oui, ImplTable& impl) {
  oui.load_dir_on_first_use(ieee_data_dir());
  std::string table = find_data_file("dicom-implementations.csv");
  if (table.empty() || !impl.load(table))
    std::fprintf(stderr, "medmon: warning: data/dicom-implementations.csv not found (set MEDMON_DATA_DIR); "
                         "DICOM products will not be named\n");
}

}  // namespace medmon
