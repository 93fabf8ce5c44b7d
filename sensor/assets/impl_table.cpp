#include "sensor/assets/impl_table.h"

#include <fstream>

#include "sensor/assets/csv.h"

namespace medmon {

namespace {
bool iprefix(std::string_view s, std::string_view p) {
  if (p.size() > s.size()) return false;
  for (size_t i = 0; i < p.size(); ++i) {
    char a = s[i], b = p[i];
    if (a >= 'a' && a <= 'z') a = static_cast<char>(a - 32);
    if (b >= 'a' && b <= 'z') b = static_cast<char>(b - 32);
    if (a != b) return false;
  }
  return true;
}
// UID roots match on whole components: 1.2.3 matches 1.2.3 and 1.2.3.4, not 1.2.34.
bool uid_under(std::string_view uid, std::string_view root) {
  if (uid.size() < root.size() || uid.substr(0, root.size()) != root) return false;
  return uid.size() == root.size() || uid[root.size()] == '.';
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\0')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
  return s;
}
}  // namespace

void ImplTable::add(bool by_version, std::string value, std::string product, std::string vendor) {
  if (rows_.size() >= kMaxRows || value.empty() || product.empty()) return;
  rows_.push_back({by_version, std::move(value), {std::move(product), std::move(vendor)}});
}

bool ImplTable::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  std::vector<std::string> f;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind("match,", 0) == 0) continue;
    split_csv_line(line, f, 5);
    if (f.size() < 3) continue;
    if (f[0] == "uid") add(false, f[1], f[2], f.size() > 3 ? f[3] : "");
    else if (f[0] == "version") add(true, f[1], f[2], f.size() > 3 ? f[3] : "");
  }
  return true;
}

const ImplProduct* ImplTable::lookup(std::string_view uid, std::string_view version) const {
  uid = trim(uid);
  version = trim(version);
  const Row* best_v = nullptr;
  const Row* best_u = nullptr;
  for (const Row& r : rows_) {
    if (r.by_version) {
      if (!version.empty() && iprefix(version, r.value) && (!best_v || r.value.size() > best_v->value.size())) best_v = &r;
    } else if (!uid.empty() && uid_under(uid, r.value) && (!best_u || r.value.size() > best_u->value.size())) {
      best_u = &r;
    }
  }
  if (best_v) return &best_v->p;
  return best_u ? &best_u->p : nullptr;
}

}  // namespace medmon
