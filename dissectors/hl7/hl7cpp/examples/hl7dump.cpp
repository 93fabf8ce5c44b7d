// hl7dump: prints the HL7 v2 messages of a file (plain ER7, a batch file, or an MLLP stream).
//   hl7dump FILE            named summary and every non-empty field, e.g. "PID-5.1  DOE"
//   hl7dump --tree FILE     one JSON array per message: segments > fields > repetitions >
//                           components > sub-components, each leaf as [raw, unescaped]
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "hl7cpp/message.h"
#include "hl7cpp/mllp.h"

namespace {

void json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void print_tree(const hl7cpp::Message& m) {
  std::string out = "[";
  for (size_t i = 0; i < m.size(); ++i) {
    hl7cpp::Segment s = m.segment(i);
    out += i ? ",[" : "[";
    size_t nf = s.field_count();
    for (size_t f = 0; f <= nf; ++f) {
      hl7cpp::Field fld = s.field(f);
      out += f ? ",[" : "[";
      for (size_t r = 1; r <= fld.repetitions(); ++r) {
        hl7cpp::Repetition rep = fld.repetition(r);
        out += r > 1 ? ",[" : "[";
        for (size_t c = 1; c <= rep.size(); ++c) {
          hl7cpp::Component comp = rep.component(c);
          out += c > 1 ? ",[" : "[";
          for (size_t k = 1; k <= comp.size(); ++k) {
            std::string_view leaf = comp.sub(k);
            std::string text;
            if (fld.is_leaf()) text.assign(leaf);
            else hl7cpp::unescape_to(leaf, m.separators(), text);
            if (k > 1) out += ",";
            out += "[";
            json_string(out, leaf);
            out += ",";
            json_string(out, text);
            out += "]";
          }
          out += "]";
        }
        out += "]";
      }
      out += "]";
    }
    out += "]";
  }
  out += "]";
  std::cout << out << "\n";
}

void print_named(const hl7cpp::Message& m) {
  auto msh = m.msh();
  std::cout << "# " << msh.message_code() << "^" << msh.trigger_event() << " control id "
            << msh.message_control_id().raw() << ", version " << msh.version_id().raw() << ", from "
            << msh.sending_application().text() << " to " << msh.receiving_application().text() << "\n";
  if (auto pid = m.pid())
    std::cout << "# patient " << pid.patient_name().component(1).text() << ", "
              << pid.patient_name().component(2).text() << " (id " << pid.patient_identifier_list().component(1).text()
              << ")\n";
  if (auto msa = m.msa())
    std::cout << "# ack " << msa.acknowledgment_code().raw() << " for " << msa.message_control_id().raw() << "\n";
  for (size_t i = 0; i < m.size(); ++i) {
    hl7cpp::Segment s = m.segment(i);
    std::string name(s.name());
    size_t occ = 1;
    for (size_t j = 0; j < i; ++j) if (m.segment(j).name() == s.name()) ++occ;
    if (occ > 1) name.append("(").append(std::to_string(occ)).append(")");
    for (size_t f = 1; f <= s.field_count(); ++f) {
      hl7cpp::Field fld = s.field(f);
      if (fld.empty()) continue;
      for (size_t r = 1; r <= fld.repetitions(); ++r) {
        auto rep = fld.repetition(r);
        for (size_t c = 1; c <= rep.size(); ++c) {
          auto comp = rep.component(c);
          if (comp.empty()) continue;
          std::string path = name;
          path.append("-").append(std::to_string(f));
          if (fld.repetitions() > 1) path.append("[").append(std::to_string(r)).append("]");
          if (rep.size() > 1) path.append(".").append(std::to_string(c));
          std::cout << path << "\t" << (fld.is_leaf() ? std::string(comp.raw()) : comp.text()) << "\n";
        }
      }
    }
  }
}

struct Collector : hl7cpp::MllpHandler {
  std::vector<std::string> frames;
  void frame(const hl7cpp::MllpFrame& f) override { frames.emplace_back(f.payload); }
  void anomaly(hl7cpp::MllpAnomaly a, uint64_t off) override {
    std::cerr << "mllp: " << hl7cpp::to_string(a) << " at " << off << "\n";
  }
};

struct Printer : hl7cpp::PayloadHandler {
  bool tree = false;
  hl7cpp::Message msg;
  int status = 0;
  void message(std::string_view text, size_t, bool) override {
    auto st = msg.parse(text);
    if (st != hl7cpp::ParseStatus::ok) {
      std::cerr << "hl7: " << hl7cpp::to_string(st) << "\n";
      status = 1;
      if (st != hl7cpp::ParseStatus::too_many_segments) return;
    }
    if (tree) print_tree(msg); else print_named(msg);
  }
  void stray_segment(std::string_view s, size_t off) override {
    std::cerr << "hl7: segment outside a message at " << off << ": " << s.substr(0, 3) << "\n";
    status = 2;
  }
};

}  // namespace

int main(int argc, char** argv) {
  Printer p;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tree") p.tree = true;
    else path = a;
  }
  if (path.empty()) {
    std::cerr << "usage: hl7dump [--tree] FILE\n";
    return 2;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) { std::cerr << path << ": cannot open\n"; return 2; }
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> payloads;
  if (data.find('\x0b') != std::string::npos) {
    Collector c;
    hl7cpp::MllpFramer framer;
    framer.feed(data, c);
    framer.finish(c);
    payloads = std::move(c.frames);
  } else {
    payloads.push_back(std::move(data));
  }
  int rc = 0;
  for (auto& pl : payloads) {
    hl7cpp::PayloadInfo info = hl7cpp::split_payload(pl, p);
    if (info.headers_out_of_place) {
      std::cerr << "hl7: batch/file header or trailer out of place\n";
      rc = 2;
    }
  }
  return rc ? rc : p.status;
}
