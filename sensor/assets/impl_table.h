#pragma once
// DICOM Implementation Class UID / Version Name -> product (DCMTK, dcm4che, fo-dicom, ...).
// The table is data (data/dicom-implementations.csv), loaded at run time.
#include <string>
#include <string_view>
#include <vector>

namespace medmon {

struct ImplProduct {
  std::string product, vendor;
};

class ImplTable {
 public:
  static constexpr size_t kMaxRows = 4096;
  // Loads the CSV (header: match,value,product,vendor,note; '#' lines are comments).
  // Returns false when the file cannot be read.
  bool load(const std::string& path);
  void add(bool by_version, std::string value, std::string product, std::string vendor);
  // The most specific match: the longest version-name prefix, else the longest UID root.
  // nullptr when nothing matches.
  const ImplProduct* lookup(std::string_view class_uid, std::string_view version_name) const;
  size_t size() const { return rows_.size(); }

 private:
  struct Row {
    bool by_version;
    std::string value;
    ImplProduct p;
  };
  std::vector<Row> rows_;
};

}  // namespace medmon
