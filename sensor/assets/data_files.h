#pragma once
// Where medmon's run-time data tables live: $MEDMON_DATA_DIR, then share/medmon next to the
// installed binary, then the source tree's data/ (compiled in) so a build runs in place.
#include <string>

namespace medmon {

// Full path of data file `name` (first existing candidate), or "" when none exists.
std::string find_data_file(const std::string& name);

// Directory of the IEEE registry CSVs: $MEDMON_IEEE_DATA or /usr/share/ieee-data.
std::string ieee_data_dir();

class OuiTable;
class ImplTable;
// The asset inventory's reference tables: MAC vendors from ieee_data_dir() (read on first use)
// and DICOM implementations from data/dicom-implementations.csv (a warning on stderr when it
// cannot be read: products are then not named).
void load_reference_tables(OuiTable& oui, ImplTable& impl);

}  // namespace medmon
