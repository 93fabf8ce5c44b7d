#pragma once
// Minimal RFC 4180 CSV line splitter for the data tables (quoted fields, "" escapes).
#include <string>
#include <string_view>
#include <vector>

namespace medmon {

// Splits one line into fields; at most max_fields are kept (the rest is ignored).
void split_csv_line(std::string_view line, std::vector<std::string>& out, size_t max_fields = 16);

}  // namespace medmon
