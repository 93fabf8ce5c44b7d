// YAML -> Signature, with every error located (file:line:column from yaml-cpp marks).
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bitset>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "dissectors/proprietary/signature.h"

namespace medmon::proprietary {

std::string LoadError::str() const {
  std::string s = file;
  if (line > 0) s.append(":").append(std::to_string(line)).append(":").append(std::to_string(column));
  return s + ": " + message;
}

namespace {

// The stream feeder holds at most 2 MiB per direction (reassembly.max_dissector_buffer, default):
// a message waited for whole, plus the 64 KiB segment that completes it, must fit.
constexpr int64_t kMaxMessage = (2 << 20) - 65536;

struct Fail {
  YAML::Mark mark;
  std::string message;
};

// Where each node of the file being parsed is written (TreeBuilder): the nodes are built without
// marks of their own, and a node an alias stands for is located at the alias.
thread_local const std::vector<std::pair<YAML::Node, YAML::Mark>>* t_marks = nullptr;

YAML::Mark mark_of(const YAML::Node& n) {
  if (t_marks)
    for (const auto& [node, mark] : *t_marks)
      if (node.is(n)) return mark;
  return n.Mark();
}

[[noreturn]] void fail(const YAML::Node& n, std::string msg) { throw Fail{mark_of(n), std::move(msg)}; }

void only_keys(const YAML::Node& map, std::initializer_list<const char*> allowed, const char* what) {
  if (!map.IsMap()) fail(map, std::string(what) + " must be a mapping");
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    std::string k = it->first.as<std::string>("");
    // yaml-cpp keeps the first of two equal keys: a second `phi: true` would be ignored.
    if (!seen.insert(k).second) fail(it->first, "duplicate key '" + k + "' in " + what);
    bool ok = std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; });
    if (!ok) {
      std::string list;
      for (const char* a : allowed) { if (!list.empty()) list += ", "; list += a; }
      fail(it->first, "unknown key '" + k + "' in " + what + " (expected one of: " + list + ")");
    }
  }
}

std::string str(const YAML::Node& n, const char* what) {
  if (!n.IsScalar()) fail(n, std::string(what) + " must be a string");
  return n.Scalar();
}

int64_t integer(const YAML::Node& n, const char* what, int64_t lo, int64_t hi) {
  if (!n.IsScalar()) fail(n, std::string(what) + " must be an integer");
  const std::string& s = n.Scalar();
  int64_t v = 0;
  try {
    size_t used = 0;
    bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    v = std::stoll(s, &used, hex ? 16 : 10);  // decimal or 0x hex
    if (used != s.size()) throw std::invalid_argument(s);
  } catch (...) {
    fail(n, std::string(what) + " must be an integer, got '" + s + "'");
  }
  if (v < lo || v > hi) fail(n, std::string(what) + " must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return v;
}

bool boolean(const YAML::Node& n, const char* what) {
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    if (s == "true" || s == "yes") return true;
    if (s == "false" || s == "no") return false;
  }
  fail(n, std::string(what) + " must be true or false");
}

// "e1 00", "E100", "0xe100" -> bytes.
std::vector<uint8_t> hex_bytes(const YAML::Node& n, const char* what) {
  std::string s = str(n, what);
  std::string digits;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == ' ' || c == ':' || c == '-') continue;
    if (c == '0' && i + 1 < s.size() && (s[i + 1] == 'x' || s[i + 1] == 'X')) { ++i; continue; }
    if (!std::isxdigit(static_cast<unsigned char>(c))) fail(n, std::string(what) + ": '" + s + "' is not hex bytes");
    digits.push_back(c);
  }
  if (digits.empty() || digits.size() % 2) fail(n, std::string(what) + ": '" + s + "' needs an even, non-zero number of hex digits");
  std::vector<uint8_t> out;
  for (size_t i = 0; i < digits.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

// Numbers std::regex must not see: libstdc++ reads a backreference or repeat count into an int
// without an overflow check, and expands counted repeats into that many states (nested ones
// multiply), so `\99999999999` or `(a{1000}){1000}` would be undefined behaviour or exhaust memory.
void check_regex_numbers(const YAML::Node& n, const std::string& s, const char* what) {
  constexpr uint64_t kMaxCount = 1000, kMaxProduct = 100000;
  uint64_t product = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      size_t j = i + 1;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      if (j - (i + 1) > 2) fail(n, std::string(what) + ": backreference '" + s.substr(i, j - i) + "' is too large");
      i = std::max(i + 1, j - 1);  // an escaped '{' is not a repeat
      continue;
    }
    if (s[i] != '{') continue;
    // {n}, {n,} or {n,m}; anything else is a literal brace.
    size_t j = i + 1;
    uint64_t counts[2] = {0, 0};
    int k = 0;
    size_t digits = 0;
    while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || (s[j] == ',' && k == 0))) {
      if (s[j] == ',') { ++k; digits = 0; }
      else if (++digits > 6) fail(n, std::string(what) + ": repeat count too large");
      else counts[k] = counts[k] * 10 + static_cast<uint64_t>(s[j] - '0');
      ++j;
    }
    if (j >= s.size() || s[j] != '}' || j == i + 1) continue;
    uint64_t c = std::max(counts[0], counts[1]);
    if (c > kMaxCount) fail(n, std::string(what) + ": repeat count " + std::to_string(c) + " is over " + std::to_string(kMaxCount));
    product *= std::max<uint64_t>(c, 1);
    if (product > kMaxProduct)
      fail(n, std::string(what) + ": repeat counts multiply to over " + std::to_string(kMaxProduct) + " states");
    i = j;
  }
}

// Catastrophic backtracking: libstdc++'s std::regex backtracks without memory, so a repeated
// group whose text can be split into iterations, or into the parts of one iteration, in many
// ways takes time exponential in the input (`(a+)+`, `(\w+\s?)*`, `(a|a)*`), and a probe runs on
// every flow. Refused: under a repeat (a quantifier that allows more than one), a part of
// variable length (*, +, ?, {n,m}, a backreference, alternatives that can start alike and differ
// in length) that is not followed by a part that must match and starts with a character the
// variable part cannot hold, the next iteration counted (`(\w+\s)*` is accepted, `(\w+\s?)*` is
// not); and alternatives that can start with the same character. A lookahead's inside counts as
// following the parts before it.
class BacktrackCheck {
 public:
  using Set = std::bitset<256>;
  explicit BacktrackCheck(std::string s) : s_(std::move(s)) {}
  // Empty when the regex is accepted, else the reason.
  std::string run() {
    Seq top = alternatives();
    Loose loose;
    check_seq(top, {Set(), true, true}, false, loose);  // after the regex's end nothing can fail
    return why_;
  }

 private:
  struct Item;
  using Seq = std::vector<Item>;
  struct Item {
    enum Kind : uint8_t { atom, group, look, assertion, backref } kind = atom;
    Set set;                        // atom: the characters it matches
    std::vector<Seq> alts;          // group, look
    uint32_t min = 1, max = 1;      // quantifier; max kInf = unbounded
    size_t from = 0, to = 0;        // where it is written, for the message
  };
  static constexpr uint32_t kInf = 0xffffffff;

  bool more() const { return i_ < s_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(s_[i_]); }

  static Set word() {
    Set w;
    for (int c = '0'; c <= '9'; ++c) w[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) w[c] = w[c - 32] = true;
    w['_'] = true;
    return w;
  }
  static Set digit() { Set d; for (int c = '0'; c <= '9'; ++c) d[c] = true; return d; }
  static Set space() { Set s; for (int c : {' ', '\t', '\n', '\r', '\f', '\v'}) s[c] = true; return s; }

  int hex(size_t n) {
    int v = 0;
    for (size_t k = 0; k < n; ++k) {
      if (!more() || !std::isxdigit(peek())) return -1;
      char c = static_cast<char>(peek());
      v = v * 16 + (std::isdigit(peek()) ? c - '0' : (std::tolower(peek()) - 'a' + 10));
      ++i_;
    }
    return v;
  }
  // After a backslash: the set an escape stands for (class: inside [...]). A backreference or an
  // assertion sets `kind`.
  Set escape(bool in_class, Item::Kind& kind) {
    Set r;
    kind = Item::atom;
    if (!more()) { r['\\'] = true; return r; }
    char c = s_[i_++];
    switch (c) {
      case 'd': return digit();
      case 'D': return ~digit();
      case 'w': return word();
      case 'W': return ~word();
      case 's': return space();
      case 'S': return ~space();
      case 'n': r['\n'] = true; return r;
      case 'r': r['\r'] = true; return r;
      case 't': r['\t'] = true; return r;
      case 'f': r['\f'] = true; return r;
      case 'v': r['\v'] = true; return r;
      case 'b':
        if (in_class) { r['\b'] = true; return r; }
        kind = Item::assertion;
        return r;
      case 'B': kind = Item::assertion; return r;
      case 'c':
        if (more()) { r[peek() % 32] = true; ++i_; }
        return r;
      case 'x': { int v = hex(2); if (v >= 0) r[v] = true; return r; }
      case 'u': { int v = hex(4); if (v >= 0 && v < 256) r[v] = true; return r; }
      default: break;
    }
    if (c >= '1' && c <= '9' && !in_class) {
      while (more() && std::isdigit(peek())) ++i_;
      kind = Item::backref;
      return ~Set();
    }
    r[static_cast<unsigned char>(c == '0' ? '\0' : c)] = true;
    return r;
  }
  static int single(const Set& set) {  // the one character of a set, or -1
    if (set.count() != 1) return -1;
    for (int c = 0; c < 256; ++c)
      if (set[c]) return c;
    return -1;
  }
  // [:name:] inside a class: the bytes of that class in the classic locale. Empty when the name
  // is not known here.
  static std::optional<Set> named_class(const std::string& name) {
    Set r;
    auto add = [&](int (*is)(int)) { for (int c = 0; c < 128; ++c) if (is(c)) r[c] = true; };
    if (name == "w") return word();
    if (name == "s") return space();
    if (name == "d") return digit();
    static const std::pair<const char*, int (*)(int)> kNames[] = {
        {"alnum", [](int c) { return std::isalnum(c); }},  {"alpha", [](int c) { return std::isalpha(c); }},
        {"blank", [](int c) { return std::isblank(c); }},  {"cntrl", [](int c) { return std::iscntrl(c); }},
        {"digit", [](int c) { return std::isdigit(c); }},  {"graph", [](int c) { return std::isgraph(c); }},
        {"lower", [](int c) { return std::islower(c); }},  {"print", [](int c) { return std::isprint(c); }},
        {"punct", [](int c) { return std::ispunct(c); }},  {"space", [](int c) { return std::isspace(c); }},
        {"upper", [](int c) { return std::isupper(c); }},  {"xdigit", [](int c) { return std::isxdigit(c); }}};
    for (auto& [n, is] : kNames)
      if (name == n) { add(is); return r; }
    return std::nullopt;
  }
  Set char_class() {  // after '['
    bool negate = more() && peek() == '^';
    if (negate) ++i_;
    Set r;
    bool unsure = false;  // a part not understood here: the class is taken to match every byte
    while (more() && peek() != ']') {
      // [:name:], [.x.] and [=x=] end at their own ']'.
      if (peek() == '[' && i_ + 1 < s_.size() && (s_[i_ + 1] == ':' || s_[i_ + 1] == '.' || s_[i_ + 1] == '=')) {
        const char kind = s_[i_ + 1];
        size_t end = s_.find(std::string{kind, ']'}, i_ + 2);
        if (end != std::string::npos) {
          std::string name = s_.substr(i_ + 2, end - (i_ + 2));
          i_ = end + 2;
          std::optional<Set> set;
          if (kind == ':') set = named_class(name);
          else if (kind == '.' && name.size() == 1) { set = Set(); (*set)[static_cast<unsigned char>(name[0])] = true; }
          if (set) r |= *set;
          else unsure = true;  // an equivalence class or a named collating element
          continue;
        }
      }
      auto one = [&](Set& set) -> int {  // a single character's value, or -1 for a class escape
        unsigned char c = peek();
        ++i_;
        if (c != '\\') { set = Set(); set[c] = true; return c; }
        Item::Kind k;
        set = escape(true, k);
        return single(set);
      };
      Set a;
      int lo = one(a);
      if (lo >= 0 && i_ + 1 < s_.size() && peek() == '-' && s_[i_ + 1] != ']') {
        ++i_;
        Set b;
        int hi = one(b);
        if (hi >= lo) { for (int c = lo; c <= hi; ++c) r[c] = true; continue; }
        r |= b;
        r['-'] = true;
      }
      r |= a;
    }
    if (more()) ++i_;  // ']'
    if (unsure) return ~Set();
    return negate ? ~r : r;
  }
  void quantifier(Item& it) {
    if (!more()) return;
    char c = s_[i_];
    if (c == '*') { it.min = 0; it.max = kInf; ++i_; }
    else if (c == '+') { it.min = 1; it.max = kInf; ++i_; }
    else if (c == '?') { it.min = 0; it.max = 1; ++i_; }
    else if (c == '{') {
      size_t j = i_ + 1;
      uint64_t n[2] = {0, 0};
      int k = 0;
      bool digits = false, upper = false;
      while (j < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[j])) || (s_[j] == ',' && k == 0))) {
        if (s_[j] == ',') { k = 1; }
        else { n[k] = std::min<uint64_t>(n[k] * 10 + static_cast<uint64_t>(s_[j] - '0'), kInf - 1); digits = true; upper |= k == 1; }
        ++j;
      }
      if (j >= s_.size() || s_[j] != '}' || !digits) return;  // a literal brace
      it.min = static_cast<uint32_t>(n[0]);
      it.max = k == 0 ? it.min : upper ? static_cast<uint32_t>(n[1]) : kInf;
      i_ = j + 1;
    } else {
      return;
    }
    if (more() && peek() == '?') ++i_;  // lazy: the same choices, tried in another order
  }
  Seq sequence() {
    Seq seq;
    while (more() && peek() != '|' && peek() != ')') {
      Item it;
      it.from = i_;
      unsigned char c = peek();
      ++i_;
      if (c == '(') {
        it.kind = Item::group;
        if (more() && peek() == '?' && i_ + 1 < s_.size()) {
          char t = s_[i_ + 1];
          if (t == '=' || t == '!') it.kind = Item::look;
          i_ += 2;
        }
        it.alts = alternatives_list();
        if (more()) ++i_;  // ')'
      } else if (c == '[') {
        it.set = char_class();
      } else if (c == '\\') {
        Item::Kind k;
        it.set = escape(false, k);
        it.kind = k;
      } else if (c == '.') {
        it.set = ~Set();
        it.set['\n'] = it.set['\r'] = false;
      } else if (c == '^' || c == '$') {
        it.kind = Item::assertion;
      } else {
        it.set[c] = true;
      }
      if (it.kind != Item::assertion) quantifier(it);
      if (it.kind == Item::look) it.min = it.max = 1;  // a repeated lookahead tests the same place again
      it.to = i_;
      seq.push_back(std::move(it));
    }
    return seq;
  }
  std::vector<Seq> alternatives_list() {
    std::vector<Seq> alts{sequence()};
    while (more() && peek() == '|') { ++i_; alts.push_back(sequence()); }
    return alts;
  }
  Seq alternatives() {  // the whole regex as one group
    Item g;
    g.kind = Item::group;
    g.alts = alternatives_list();
    g.to = s_.size();
    return {std::move(g)};
  }

  static bool nullable(const Item& it) {
    if (it.min == 0 || it.kind == Item::look || it.kind == Item::assertion || it.kind == Item::backref) return true;
    if (it.kind == Item::atom) return false;
    for (auto& a : it.alts)
      if (std::all_of(a.begin(), a.end(), nullable)) return true;
    return false;
  }
  // looks: with what a lookahead's inside starts with, as what follows a part (the lookahead is
  // tried at each place the part can end).
  static Set first(const Item& it, bool looks = false) {
    if (it.kind == Item::assertion || (it.kind == Item::look && !looks)) return {};
    if (it.kind == Item::atom || it.kind == Item::backref) return it.set;
    Set r;
    for (auto& a : it.alts) r |= first_of(a, 0, looks);
    return r;
  }
  static Set first_of(const Seq& seq, size_t from, bool looks = false) {
    Set r;
    for (size_t k = from; k < seq.size(); ++k) {
      r |= first(seq[k], looks);
      if (!nullable(seq[k])) break;
    }
    return r;
  }
  // The shortest and the longest text a part can match (kInf: no bound).
  static std::pair<uint64_t, uint64_t> length(const Item& it) {
    if (it.kind == Item::look || it.kind == Item::assertion) return {0, 0};
    if (it.kind == Item::backref) return {0, kInf};
    auto times = [](uint64_t a, uint64_t b) -> uint64_t { return a == 0 || b == 0 ? 0 : std::min<uint64_t>(a * b, kInf); };
    uint64_t lo = 1, hi = 1;
    if (it.kind == Item::group) {
      lo = kInf;
      hi = 0;
      for (auto& a : it.alts) {
        auto [l, h] = length_of(a);
        lo = std::min(lo, l);
        hi = std::max(hi, h);
      }
    }
    return {times(lo, it.min), times(hi, it.max)};
  }
  static std::pair<uint64_t, uint64_t> length_of(const Seq& seq) {
    uint64_t lo = 0, hi = 0;
    for (auto& x : seq) {
      auto [l, h] = length(x);
      lo = std::min<uint64_t>(lo + l, kInf);
      hi = std::min<uint64_t>(hi + h, kInf);
    }
    return {lo, hi};
  }
  // A group matched once can still end in more than one place when two of its alternatives can
  // start alike (or one can be empty) and their lengths differ: (?:a|aa).
  static bool uneven(const Item& g) {
    for (size_t a = 0; a < g.alts.size(); ++a)
      for (size_t b = a + 1; b < g.alts.size(); ++b) {
        auto la = length_of(g.alts[a]), lb = length_of(g.alts[b]);
        if (la.first == la.second && la == lb) continue;
        auto empty = [](const Seq& s) { return std::all_of(s.begin(), s.end(), nullable); };
        if ((first_of(g.alts[a], 0) & first_of(g.alts[b], 0)).any() || empty(g.alts[a]) || empty(g.alts[b])) return true;
      }
    return false;
  }
  // Whether two alternatives of a group can match the same text (so the group can match it in
  // more than one way): single characters, position by position; anything else, when they can
  // start alike or be empty.
  static bool alike(const Seq& a, const Seq& b) {
    auto single_chars = [](const Seq& s) {
      return std::all_of(s.begin(), s.end(), [](const Item& x) { return x.kind == Item::atom && x.min == 1 && x.max == 1; });
    };
    if (single_chars(a) && single_chars(b)) {
      if (a.size() != b.size()) return false;
      for (size_t k = 0; k < a.size(); ++k)
        if ((a[k].set & b[k].set).none()) return false;
      return true;
    }
    auto empty = [](const Seq& s) { return std::all_of(s.begin(), s.end(), nullable); };
    return (first_of(a, 0) & first_of(b, 0)).any() || empty(a) || empty(b);
  }
  static bool ambiguous(const Item& g) {
    if (g.kind != Item::group) return false;
    for (size_t a = 0; a < g.alts.size(); ++a)
      for (size_t b = a + 1; b < g.alts.size(); ++b)
        if (alike(g.alts[a], g.alts[b])) return true;
    return false;
  }
  static Set cover(const Item& it) {
    if (it.kind == Item::look || it.kind == Item::assertion) return {};
    if (it.kind != Item::group) return it.set;
    Set r;
    for (auto& a : it.alts)
      for (auto& x : a) r |= cover(x);
    return r;
  }

  void refuse(const Item& it, const char* what) {
    if (!why_.empty()) return;
    why_ = "'" + text(it) + "' " + what;
  }
  // What comes after a part: the bytes it can start with; whether something must come (else
  // it may be empty); whether it can never fail (the regex's end, or parts that may all be empty).
  struct Follow {
    Set first;
    bool must = false, free = false;
  };
  static bool cannot_fail(const Item& it) {
    if (it.kind == Item::look || it.kind == Item::assertion) return false;
    if (it.min == 0) return true;
    if (it.kind != Item::group) return false;
    return std::any_of(it.alts.begin(), it.alts.end(), [](const Seq& a) { return std::all_of(a.begin(), a.end(), cannot_fail); });
  }
  // Parts before, outside a repeated group, that can end in more than one place: each place
  // multiplies the work of what follows, so a later variable part that can match the same bytes
  // and fail after them takes time growing as a power of the input's length (`\w*\w*!`,
  // `.*a.*b`): it is refused too.
  // And groups that can match the same text in more than one way ((?:a|a), (?:[ab]|a)): when what
  // follows fails, each way is tried, so a chain of them multiplies the work (22 of (?:a|a) take
  // 2.5 s on 40 bytes): a second one with a part that can fail after it is refused.
  struct Loose {
    const Item* first = nullptr;
    Set cover;
    const Item* ambiguous = nullptr;
  };
  void check_seq(const Seq& seq, const Follow& after, bool repeated, Loose& loose) {
    for (size_t k = 0; k < seq.size() && why_.empty(); ++k) {
      const Item& it = seq[k];
      Follow next{first_of(seq, k + 1, true), !std::all_of(seq.begin() + static_cast<std::ptrdiff_t>(k + 1), seq.end(), nullable), false};
      if (!next.must) { next.first |= after.first; next.must = after.must; }
      next.free = after.free && std::all_of(seq.begin() + static_cast<std::ptrdiff_t>(k + 1), seq.end(), cannot_fail);
      const bool variable = it.min != it.max || it.kind == Item::backref || (it.kind == Item::group && uneven(it));
      const bool fixed_end = next.must && (cover(it) & next.first).none();
      if (repeated && variable && !fixed_end)
        refuse(it, "is repeated inside a repeated group and can end in more than one place: matching could take "
                   "exponential time (nested quantifiers); make what follows it start with a character it cannot hold");
      if (loose.first && variable && !next.free && (loose.cover & cover(it)).any()) {
        why_ = "'" + text(*loose.first) + "' can end in more than one place and '" + text(it) +
               "', of variable length too, can match the same bytes after it: matching takes time growing as a power "
               "of the input's length; end the first with what it cannot match (e.g. [^;]*; instead of .*;)";
        return;
      }
      if (ambiguous(it) && !next.free) {
        if (loose.ambiguous) {
          why_ = "'" + text(*loose.ambiguous) + "' and '" + text(it) + "' can each match the same text in more than one "
                 "way (two of their alternatives are alike): the ways multiply, and matching could take exponential time; "
                 "write each with alternatives that differ";
          return;
        }
        loose.ambiguous = &it;
      }
      if (it.kind == Item::look) {
        // Atomic, but tried again at each place the loose parts before it can end: its inside
        // follows them. What it leaves loose does not reach past it.
        Loose inside = loose;
        check_alts(it.alts, {Set(), true, true}, false, inside);
      } else if (it.kind == Item::group) {
        if (it.max > 1) {  // an iteration is followed by the next one
          Set body;
          for (auto& a : it.alts) body |= first_of(a, 0);
          check_alts(it.alts, {body, true, false}, true, loose);
        } else {
          check_alts(it.alts, next, repeated, loose);
        }
        if (repeated || it.max > 1) overlap(it);
      }
      if (variable && !fixed_end && !next.free) {
        if (!loose.first) loose.first = &it;
        loose.cover |= cover(it);
      }
    }
  }
  // Each alternative starts after the same parts; what follows the group follows any of them.
  void check_alts(const std::vector<Seq>& alts, const Follow& after, bool repeated, Loose& loose) {
    const Loose before = loose;
    for (auto& a : alts) {
      Loose l = before;
      check_seq(a, after, repeated, l);
      if (!loose.first) loose.first = l.first;
      loose.cover |= l.cover;
      if (!loose.ambiguous) loose.ambiguous = l.ambiguous;
    }
  }
  std::string text(const Item& it) const { return s_.substr(it.from, it.to - it.from); }
  void overlap(const Item& g) {
    for (size_t a = 0; a < g.alts.size(); ++a)
      for (size_t b = a + 1; b < g.alts.size(); ++b)
        if ((first_of(g.alts[a], 0) & first_of(g.alts[b], 0)).any())
          refuse(g, "is repeated and two of its alternatives can start with the same character: matching could take "
                    "exponential time; write the common start once, before the alternatives");
  }

  const std::string s_;
  size_t i_ = 0;
  std::string why_;
};

// The pattern's bytes become one wide character each, as the bytes searched do (Latin-1): with
// char, whose values are signed, a range such as [\x20-\xff] would be refused as inverted.
std::wregex compile(const YAML::Node& n, const char* what) {
  std::string s = str(n, what);
  if (s.size() > 1024) fail(n, std::string(what) + " is longer than 1024 characters");
  check_regex_numbers(n, s, what);
  std::wstring w(s.begin(), s.end());
  for (size_t i = 0; i < s.size(); ++i) w[i] = static_cast<unsigned char>(s[i]);
  std::wregex r;
  try {
    r.imbue(std::locale::classic());  // \w, \s, \d: the same classes whatever the process locale
    r.assign(w, std::regex::ECMAScript | std::regex::optimize);
  } catch (const std::regex_error& e) {
    fail(n, std::string(what) + ": invalid regular expression: " + e.what());
  }
  if (std::string why = BacktrackCheck(s).run(); !why.empty()) fail(n, std::string(what) + ": " + why);
  return r;
}

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

ProbeRule parse_probe(const YAML::Node& n) {
  only_keys(n, {"direction", "min_length", "bytes", "regex"}, "probe");
  ProbeRule r;
  if (n["direction"]) {
    std::string d = str(n["direction"], "probe.direction");
    if (d == "any" || d == "both") r.dir = DirFilter::any;
    else if (d == "to_server") r.dir = DirFilter::to_server;
    else if (d == "to_client") r.dir = DirFilter::to_client;
    else fail(n["direction"], "probe.direction must be any, to_server or to_client, got '" + d + "'");
  }
  if (n["min_length"]) r.min_length = static_cast<uint32_t>(integer(n["min_length"], "probe.min_length", 0, 512));
  if (n["bytes"]) {
    const YAML::Node& b = n["bytes"];
    if (!b.IsSequence() || b.size() == 0) fail(b, "probe.bytes must be a non-empty list of {offset, hex, mask}");
    for (const auto& m : b) {
      only_keys(m, {"offset", "hex", "mask"}, "probe.bytes entry");
      if (!m["offset"]) fail(m, "probe.bytes entry needs 'offset'");
      if (!m["hex"]) fail(m, "probe.bytes entry needs 'hex'");
      ByteMatch bm;
      bm.offset = static_cast<uint32_t>(integer(m["offset"], "probe.bytes.offset", 0, 511));
      bm.value = hex_bytes(m["hex"], "probe.bytes.hex");
      if (m["mask"]) {
        bm.mask = hex_bytes(m["mask"], "probe.bytes.mask");
        if (bm.mask.size() != bm.value.size()) fail(m["mask"], "probe.bytes.mask must have as many bytes as hex");
        for (size_t i = 0; i < bm.value.size(); ++i) bm.value[i] &= bm.mask[i];
      }
      if (bm.offset + bm.value.size() > 512) fail(m, "probe.bytes entry reaches past the 512-byte probe window");
      r.bytes.push_back(std::move(bm));
    }
  }
  if (n["regex"]) {
    r.has_regex = true;
    r.regex_text = str(n["regex"], "probe.regex");
    r.regex = compile(n["regex"], "probe.regex");
  }
  if (r.bytes.empty() && !r.has_regex) fail(n, "probe needs 'bytes' or 'regex' (a probe that matches everything is not allowed)");
  return r;
}

Field parse_field(const YAML::Node& n) {
  only_keys(n, {"name", "offset", "length", "type", "regex", "group", "length_prefix", "within", "phi", "when", "encoding", "identity"}, "field");
  Field f;
  if (n["encoding"]) {
    static const std::pair<const char*, TextEncoding> kEncodings[] = {
        {"bytes", TextEncoding::bytes}, {"latin1", TextEncoding::latin1},
        {"utf16be", TextEncoding::utf16be}, {"utf16le", TextEncoding::utf16le}};
    std::string e = str(n["encoding"], "field.encoding");
    bool known = false;
    for (auto& [k, v] : kEncodings) if (e == k) { f.encoding = v; known = true; }
    if (!known) fail(n["encoding"], "field.encoding must be bytes, latin1, utf16be or utf16le, got '" + e + "'");
  }
  if (n["identity"]) {
    static const std::pair<const char*, IdentityPart> kParts[] = {
        {"id", IdentityPart::id},     {"udi", IdentityPart::udi},
        {"serial", IdentityPart::serial}, {"type", IdentityPart::type},
        {"manufacturer", IdentityPart::manufacturer}, {"model", IdentityPart::model},
        {"version", IdentityPart::version}};
    std::string i = str(n["identity"], "field.identity");
    for (auto& [k, v] : kParts) if (i == k) f.identity = v;
    if (f.identity == IdentityPart::none)
      fail(n["identity"], "field.identity must be id, udi, serial, type, manufacturer, model or version, got '" + i + "'");
    if (n["phi"] && boolean(n["phi"], "field.phi")) fail(n["identity"], "a PHI field cannot be a device identity");
  }
  if (const YAML::Node w = n["when"]) {
    only_keys(w, {"offset", "hex", "mask"}, "field.when");
    if (!w["offset"] || !w["hex"]) fail(w, "field.when needs 'offset' and 'hex'");
    f.has_when = true;
    f.when.offset = static_cast<uint32_t>(integer(w["offset"], "field.when.offset", 0, 1 << 20));
    f.when.value = hex_bytes(w["hex"], "field.when.hex");
    if (w["mask"]) {
      f.when.mask = hex_bytes(w["mask"], "field.when.mask");
      if (f.when.mask.size() != f.when.value.size()) fail(w["mask"], "field.when.mask must have as many bytes as hex");
      for (size_t i = 0; i < f.when.value.size(); ++i) f.when.value[i] &= f.when.mask[i];
    }
  }
  if (!n["name"]) fail(n, "field needs 'name'");
  f.name = str(n["name"], "field.name");
  if (!valid_name(f.name)) fail(n["name"], "field.name '" + f.name + "' must be lower case letters, digits, '-', '_' or '.'");
  if (n["phi"]) f.phi = boolean(n["phi"], "field.phi");
  if (n["regex"]) {
    if (n["offset"] || n["length"] || n["type"]) fail(n, "field '" + f.name + "': use either regex (and group) or offset/length/type");
    f.by_regex = true;
    f.regex = compile(n["regex"], "field.regex");
    f.group = n["group"] ? static_cast<int>(integer(n["group"], "field.group", 0, 9)) : 1;
    if (static_cast<size_t>(f.group) > f.regex.mark_count())
      fail(n["group"] ? n["group"] : n["regex"], "field '" + f.name + "': the regex has " + std::to_string(f.regex.mark_count()) +
                                                     " group(s), group " + std::to_string(f.group) + " asked");
    if (const YAML::Node p = n["length_prefix"]) {
      static const std::pair<const char*, FieldType> kPrefixes[] = {
          {"u8", FieldType::u8}, {"u16be", FieldType::u16be}, {"u16le", FieldType::u16le}, {"u32be", FieldType::u32be}, {"u32le", FieldType::u32le}};
      std::string t = str(p, "field.length_prefix");
      for (auto& [k, v] : kPrefixes) if (t == k) { f.type = v; f.length_prefix = true; }
      if (!f.length_prefix) fail(p, "field.length_prefix must be u8, u16be, u16le, u32be or u32le, got '" + t + "'");
    }
    if (const YAML::Node g = n["within"]) {
      if (!f.length_prefix) fail(g, "field.within needs a length_prefix");
      f.within = static_cast<int>(integer(g, "field.within", 1, 9));
      if (static_cast<size_t>(f.within) > f.regex.mark_count() || f.within == f.group)
        fail(g, "field '" + f.name + "': within names group " + std::to_string(f.within) +
                    ", which must be another group of the regex (it has " + std::to_string(f.regex.mark_count()) + ")");
    }
    return f;
  }
  if (n["group"]) fail(n["group"], "field.group needs a regex");
  if (n["length_prefix"]) fail(n["length_prefix"], "field.length_prefix needs a regex");
  if (n["within"]) fail(n["within"], "field.within needs a regex");
  if (!n["offset"]) fail(n, "field '" + f.name + "' needs 'offset' (or 'regex')");
  f.offset = static_cast<uint32_t>(integer(n["offset"], "field.offset", 0, 1 << 20));
  std::string t = n["type"] ? str(n["type"], "field.type") : "ascii";
  static const std::pair<const char*, FieldType> kTypes[] = {{"u8", FieldType::u8},       {"u16be", FieldType::u16be},
                                                             {"u16le", FieldType::u16le}, {"u32be", FieldType::u32be},
                                                             {"u32le", FieldType::u32le}, {"ascii", FieldType::ascii},
                                                             {"hex", FieldType::hex}};
  bool found = false;
  for (auto& [k, v] : kTypes) if (t == k) { f.type = v; found = true; }
  if (!found) fail(n["type"], "field.type must be u8, u16be, u16le, u32be, u32le, ascii or hex, got '" + t + "'");
  if (n["encoding"] && f.type != FieldType::ascii) fail(n["encoding"], "field.encoding is for text: type ascii or a regex");
  if (f.type == FieldType::ascii || f.type == FieldType::hex) {
    if (!n["length"]) fail(n, "field '" + f.name + "' of type " + t + " needs 'length'");
    f.length = static_cast<uint32_t>(integer(n["length"], "field.length", 1, 4096));
  } else {
    if (n["length"]) fail(n["length"], "field.length is implied by type " + t);
    f.length = f.type == FieldType::u8 ? 1 : (f.type == FieldType::u16be || f.type == FieldType::u16le) ? 2 : 4;
  }
  return f;
}

Framing parse_framing(const YAML::Node& n) {
  only_keys(n, {"length", "delimiters", "max_message"}, "framing");
  Framing fr;
  if (n["max_message"]) fr.max_message = static_cast<uint32_t>(integer(n["max_message"], "framing.max_message", 1, kMaxMessage));
  if (n["length"] && n["delimiters"]) fail(n, "framing takes either 'length' or 'delimiters', not both");
  if (const YAML::Node l = n["length"]) {
    only_keys(l, {"offset", "size", "endian", "adjust"}, "framing.length");
    fr.kind = Framing::Kind::length;
    if (!l["offset"]) fail(l, "framing.length needs 'offset'");
    fr.offset = static_cast<uint32_t>(integer(l["offset"], "framing.length.offset", 0, 4096));
    fr.size = l["size"] ? static_cast<uint32_t>(integer(l["size"], "framing.length.size", 1, 4)) : 2;
    if (fr.size == 3) fail(l["size"], "framing.length.size must be 1, 2 or 4");
    if (l["endian"]) {
      std::string e = str(l["endian"], "framing.length.endian");
      if (e == "big") fr.big_endian = true;
      else if (e == "little") fr.big_endian = false;
      else fail(l["endian"], "framing.length.endian must be big or little, got '" + e + "'");
    }
    if (l["adjust"]) fr.adjust = integer(l["adjust"], "framing.length.adjust", -65536, 65536);
    if (fr.offset + fr.size > fr.max_message)
      fail(l, "framing.length: the length field (offset " + std::to_string(fr.offset) + ", size " + std::to_string(fr.size) +
                  ") ends past max_message (" + std::to_string(fr.max_message) + "): no message could be read");
  } else if (const YAML::Node d = n["delimiters"]) {
    only_keys(d, {"start", "end", "escape", "escape_xor"}, "framing.delimiters");
    fr.kind = Framing::Kind::delimiters;
    if (!d["start"] || !d["end"]) fail(d, "framing.delimiters needs 'start' and 'end'");
    fr.start = hex_bytes(d["start"], "framing.delimiters.start");
    fr.end = hex_bytes(d["end"], "framing.delimiters.end");
    if (d["escape"]) {
      auto e = hex_bytes(d["escape"], "framing.delimiters.escape");
      if (e.size() != 1) fail(d["escape"], "framing.delimiters.escape is one byte");
      fr.has_escape = true;
      fr.escape = e[0];
    }
    if (d["escape_xor"]) {
      if (!fr.has_escape) fail(d["escape_xor"], "framing.delimiters.escape_xor needs 'escape'");
      auto x = hex_bytes(d["escape_xor"], "framing.delimiters.escape_xor");
      if (x.size() != 1) fail(d["escape_xor"], "framing.delimiters.escape_xor is one byte");
      fr.escape_xor = x[0];
    }
    if (fr.start.size() + fr.end.size() > fr.max_message)
      fail(d, "framing.delimiters: the delimiters are longer than max_message (" + std::to_string(fr.max_message) + ")");
  } else {
    fail(n, "framing needs 'length' or 'delimiters'");
  }
  return fr;
}

// A field, or its `when`, that lies past the longest message could never be read: with framing
// that is max_message; unframed over TCP only the first regex_window bytes of a direction are read.
void check_reach(const YAML::Node& root, const Signature& s) {
  uint64_t longest = 0;
  const char* limit = nullptr;
  if (s.framing.kind != Framing::Kind::none) {
    longest = s.framing.max_message;
    limit = "max_message";
  } else if (s.transport == Transport::tcp) {
    longest = s.regex_window;
    limit = "regex_window (the bytes read from an unframed TCP direction)";
  } else {
    return;  // an unframed datagram is one message of any size
  }
  for (size_t i = 0; i < s.fields.size(); ++i) {
    const Field& f = s.fields[i];
    const YAML::Node n = root["fields"][i];
    if (f.has_when && f.when.offset + f.when.value.size() > longest)
      fail(n["when"], "field '" + f.name + "': 'when' ends past " + limit + " (" + std::to_string(longest) + ")");
    if (!f.by_regex && uint64_t(f.offset) + f.length > longest)
      fail(n["offset"], "field '" + f.name + "' ends past " + limit + " (" + std::to_string(longest) + "): it could never be read");
  }
}

std::shared_ptr<Signature> parse_doc(const YAML::Node& root, const std::string& file) {
  if (!root.IsMap()) fail(root, "a signature file is a mapping (name, transport, probe, ...)");
  only_keys(root, {"name", "description", "vendor", "transport", "ports", "probe", "framing", "fields", "report", "regex_window", "references"},
            "signature");
  auto s = std::make_shared<Signature>();
  s->file = file;
  if (!root["name"]) fail(root, "missing 'name'");
  s->name = str(root["name"], "name");
  if (!valid_name(s->name)) fail(root["name"], "name '" + s->name + "' must be lower case letters, digits, '-', '_' or '.'");
  static const char* kReserved[] = {"dicom", "hl7", "astm", "poct1", "sdc", "proprietary", "dicom-tls", "hl7-tls", "sdc-tls"};
  for (const char* r : kReserved)
    if (s->name == r) fail(root["name"], "name '" + s->name + "' is a built-in protocol");
  // The flow's app becomes the name, and the policy gives these names a meaning: encrypted
  // (tls, ssh, a name ending in -tls), remote administration (lateral.admin_protocol),
  // infrastructure, the wildcard. A signature must not make its flows pass for one of them.
  static const char* kPolicyApps[] = {"tls", "dtls", "quic", "ssh", "smb", "netbios", "rpc", "rdp", "winrm",
                                      "telnet", "vnc", "ftp", "teamviewer", "anydesk", "http", "dns",
                                      "dhcp", "ntp", "icmp", "any"};
  for (const char* r : kPolicyApps)
    if (s->name == r) fail(root["name"], "name '" + s->name + "' is an application the policy treats specially");
  if (s->name.size() > 4 && s->name.ends_with("-tls"))
    fail(root["name"], "name '" + s->name + "': a name ending in -tls stands for a protocol seen inside TLS (counted as encrypted)");
  if (root["description"]) s->description = str(root["description"], "description");
  if (root["vendor"]) s->vendor = str(root["vendor"], "vendor");
  if (!root["transport"]) fail(root, "missing 'transport' (tcp, udp or both)");
  std::string t = str(root["transport"], "transport");
  if (t == "tcp") s->transport = Transport::tcp;
  else if (t == "udp") s->transport = Transport::udp;
  else if (t == "both") s->transport = Transport::both;
  else fail(root["transport"], "transport must be tcp, udp or both, got '" + t + "'");
  if (const YAML::Node p = root["ports"]) {
    if (!p.IsSequence()) fail(p, "ports must be a list of port numbers");
    for (const auto& x : p) s->ports.push_back(static_cast<uint16_t>(integer(x, "port", 1, 65535)));
  }
  if (!root["probe"]) fail(root, "missing 'probe'");
  const YAML::Node pr = root["probe"];
  if (pr.IsSequence()) {
    if (pr.size() == 0) fail(pr, "probe list is empty");
    for (const auto& x : pr) s->probes.push_back(parse_probe(x));
  } else {
    s->probes.push_back(parse_probe(pr));
  }
  if (root["framing"]) s->framing = parse_framing(root["framing"]);
  if (const YAML::Node f = root["fields"]) {
    if (!f.IsSequence()) fail(f, "fields must be a list");
    std::set<std::string> names;
    for (const auto& x : f) {
      Field fd = parse_field(x);
      if (!names.insert(fd.name).second) fail(x["name"], "field '" + fd.name + "' is defined twice");
      s->fields.push_back(std::move(fd));
    }
    if (s->fields.size() > 64) fail(f, "at most 64 fields");
  }
  if (root["report"]) {
    std::string r = str(root["report"], "report");
    if (r == "messages") s->report_messages = true;
    else if (r == "flow") s->report_messages = false;
    else fail(root["report"], "report must be messages or flow, got '" + r + "'");
  }
  if (root["regex_window"]) s->regex_window = static_cast<uint32_t>(integer(root["regex_window"], "regex_window", 16, 4096));
  check_reach(root, *s);
  if (root["references"] && !root["references"].IsSequence() && !root["references"].IsScalar())
    fail(root["references"], "references must be a string or a list of strings");
  return s;
}

}  // namespace

namespace {
// The parser's events of a signature file: those of the first document, and whether a later
// document holds anything, and where.
struct Event {
  enum Kind : uint8_t { null, scalar, alias, seq, seq_end, map, map_end } kind;
  YAML::Mark mark;
  YAML::anchor_t anchor = 0;
  std::string value;
};
struct Recorder : YAML::EventHandler {
  std::vector<Event> events;
  int docs = 0;
  bool later = false;
  YAML::Mark later_at;
  void add(Event::Kind k, const YAML::Mark& m, YAML::anchor_t a = 0, const std::string& v = {}) {
    if (docs < 2) events.push_back({k, m, a, v});
    else if (!later) { later = true; later_at = m; }
  }
  void OnDocumentStart(const YAML::Mark&) override { ++docs; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t a) override { add(Event::null, m, a); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t a) override { add(Event::alias, m, a); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t a, const std::string& v) override { add(Event::scalar, m, a, v); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override { add(Event::seq, m, a); }
  void OnSequenceEnd() override { if (docs < 2) events.push_back({Event::seq_end, {}, 0, {}}); }
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a, YAML::EmitterStyle::value) override { add(Event::map, m, a); }
  void OnMapEnd() override { if (docs < 2) events.push_back({Event::map_end, {}, 0, {}}); }
};

// The first document as nodes, each located in `marks`. A node an alias stands for is a copy of
// the anchored one, located at the alias: an error in how it is used points at the use (the
// nodes inside it stay where the anchor wrote them). YAML::Load would share one node, located at
// the anchor.
class TreeBuilder {
 public:
  explicit TreeBuilder(const std::vector<Event>& events) : ev_(events) {}
  YAML::Node build() {
    size_t i = 0;
    return node(i, nullptr, 0);
  }
  std::vector<std::pair<YAML::Node, YAML::Mark>> marks;

 private:
  // A signature is small: a file whose aliases expand past this is refused, not expanded
  // (a few nested aliases can stand for billions of nodes).
  static constexpr size_t kMaxNodes = 10000, kMaxDepth = 256;

  const Event& at(size_t i) const {
    if (i >= ev_.size()) throw Fail{ev_.empty() ? YAML::Mark() : ev_.back().mark, "unexpected end of the YAML document"};
    return ev_[i];
  }
  // The node whose events start at i; i moves past them. `alias`: the alias it is a copy for.
  YAML::Node node(size_t& i, const Event* alias, size_t depth) {
    const Event& e = at(i);
    const YAML::Mark where = alias ? alias->mark : e.mark;
    if (++count_ > kMaxNodes) throw Fail{where, "more than " + std::to_string(kMaxNodes) + " YAML nodes (aliases included)"};
    if (depth > kMaxDepth) throw Fail{where, "YAML nested more than " + std::to_string(kMaxDepth) + " levels deep (aliases included)"};
    if (e.kind == Event::alias) {
      ++i;
      auto a = anchors_.find(e.anchor);
      if (a == anchors_.end() || open_.count(e.anchor)) throw Fail{e.mark, "an alias to a node that contains it"};
      size_t from = a->second;
      return node(from, alias ? alias : &e, depth + 1);
    }
    const size_t start = i++;
    if (e.anchor) anchors_[e.anchor] = start;
    YAML::Node n;
    switch (e.kind) {
      case Event::null: n = YAML::Node(YAML::NodeType::Null); break;
      case Event::scalar: n = YAML::Node(e.value); break;
      case Event::seq:
        n = YAML::Node(YAML::NodeType::Sequence);
        open_.insert(e.anchor);
        while (at(i).kind != Event::seq_end) n.push_back(node(i, nullptr, depth + 1));
        ++i;
        open_.erase(e.anchor);
        break;
      case Event::map:
        n = YAML::Node(YAML::NodeType::Map);
        open_.insert(e.anchor);
        while (at(i).kind != Event::map_end) {
          YAML::Node k = node(i, nullptr, depth + 1);
          YAML::Node v = node(i, nullptr, depth + 1);
          n.force_insert(k, v);
        }
        ++i;
        open_.erase(e.anchor);
        break;
      default: throw Fail{where, "malformed YAML document"};
    }
    marks.emplace_back(n, where);
    return n;
  }

  const std::vector<Event>& ev_;
  std::map<YAML::anchor_t, size_t> anchors_;
  std::set<YAML::anchor_t> open_;
  size_t count_ = 0;
};

// The first line and column: where an error about the whole file points.
YAML::Mark file_start() { return YAML::Mark(); }
}  // namespace

LoadResult parse_signature(const std::string& text, const std::string& file) {
  LoadResult r;
  auto err = [&](const YAML::Mark& m, const std::string& msg) {
    LoadError e;
    e.file = file;
    if (!m.is_null()) { e.line = m.line + 1; e.column = m.column + 1; }
    e.message = msg;
    r.errors.push_back(std::move(e));
  };
  struct Located {
    ~Located() { t_marks = nullptr; }
  } located;
  try {
    // One signature per file: a second document after `---` would otherwise go unread. Read
    // with the parser's events only: yaml-cpp's LoadAll can take gigabytes on a few hundred
    // hostile bytes that the bare parser reads at once.
    std::istringstream in(text);
    YAML::Parser parser(in);
    Recorder rec;
    // (On some hostile input the parser reports empty documents without end: 16 is plenty.)
    while (!rec.later && rec.docs <= 16 && parser.HandleNextDocument(rec)) {}
    if (rec.later || rec.docs > 16)
      throw Fail{rec.later_at, "a signature file holds one signature: a second YAML document ('---') is not read"};
    if (rec.events.empty()) { err(file_start(), "empty signature file"); return r; }
    TreeBuilder builder(rec.events);
    YAML::Node root = builder.build();
    if (root.IsNull()) { err(builder.marks.back().second, "empty signature file"); return r; }
    t_marks = &builder.marks;
    auto sig = parse_doc(root, file);
    const YAML::Node& located_root = root;
    YAML::Mark name_at = mark_of(located_root["name"]);
    sig->line = name_at.line + 1;
    sig->column = name_at.column + 1;
    r.signatures.push_back(std::move(sig));
  } catch (const Fail& f) {
    err(f.mark, f.message);
  } catch (const YAML::Exception& e) {
    err(e.mark, e.msg);
  } catch (const std::exception& e) {
    err(YAML::Mark::null_mark(), e.what());
  }
  return r;
}

LoadResult load_signatures(const std::string& dir) {
  LoadResult r;
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    r.errors.push_back({dir, 0, 0, "not a directory"});
    return r;
  }
  std::vector<fs::path> files;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    auto ext = it->path().extension().string();
    if ((ext == ".yaml" || ext == ".yml") && it->is_regular_file(ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  std::map<std::string, std::string> names;  // name -> the file that has it
  // A signature takes a few kilobytes (10 000 YAML nodes at most): a larger file is refused
  // unread, as parsing takes about six times its size in memory (a 100 MB one, 18 s and 600 MB).
  constexpr size_t kMaxFile = 1 << 20;
  for (auto& p : files) {
    std::ifstream in(p, std::ios::binary);
    if (!in) { r.errors.push_back({p.string(), 0, 0, "cannot read"}); continue; }
    std::string text(kMaxFile + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxFile) {
      r.errors.push_back({p.string(), 1, 1, "larger than 1 MiB: a signature file is a few kilobytes (at most 10 000 YAML nodes)"});
      continue;
    }
    LoadResult one = parse_signature(text, p.string());
    for (auto& e : one.errors) r.errors.push_back(std::move(e));
    for (auto& s : one.signatures) {
      auto [other, fresh] = names.emplace(s->name, p.string());
      if (!fresh) {
        r.errors.push_back({p.string(), s->line, s->column, "signature name '" + s->name + "' is already used by " + other->second});
        continue;
      }
      r.signatures.push_back(std::move(s));
    }
  }
  return r;
}

}  // namespace medmon::proprietary
