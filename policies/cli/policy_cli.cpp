// `medmon mds2 import` and `medmon policy check`.
#include "policies/cli/policy_cli.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>

#include "dissectors/proprietary/signature.h"
#include "policies/mds2/mds2_form.h"
#include "sensor/common/diag.h"
#include "sensor/common/paths.h"

namespace medmon {
namespace {

// The SHA-256 of a file, or of `data` when given (a form read from a pipe cannot be read twice).
std::string sha256_file(const std::string& path, const std::string* data = nullptr) {
  std::ifstream in;
  if (!data) {
    in.open(path, std::ios::binary);
    if (!in) return {};
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  char buf[65536];
  if (data) EVP_DigestUpdate(ctx, data->data(), data->size());
  while (in) {
    in.read(buf, sizeof buf);
    if (in.gcount() > 0) EVP_DigestUpdate(ctx, buf, static_cast<size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) { s.push_back(hex[md[i] >> 4]); s.push_back(hex[md[i] & 15]); }
  return s;
}

// Why an input file cannot be read (missing, a directory, no permission), or "" when it can. An
// input that cannot be read is an input error (exit 3); one read but not a form is exit 2. Not
// opened here: a FIFO's writer would see its reader go away.
std::string cannot_read_reason(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || ::access(path.c_str(), R_OK) != 0) return std::strerror(errno);
  if (S_ISDIR(st.st_mode)) return std::strerror(EISDIR);
  return {};
}

int run_import(const std::string& form, const std::string& out, const std::string& ports, const std::string& id) {
  // The model written over the form (or the port list) would destroy what it was made from.
  for (const std::string* in : {&form, &ports})
    if (out != "-" && !in->empty() && same_existing_file(*in, out)) {
      std::fprintf(stderr, "medmon: %s is the input file %s: refused, it would be overwritten\n", out.c_str(), in->c_str());
      return 2;
    }
  // A model file that cannot be created is an output error (3), found before the form is read (a
  // PDF's layout may take half a minute; a form from a pipe cannot be read twice).
  if (out != "-")
    if (std::string why = cannot_write_reason(out); !why.empty()) {
      std::fprintf(stderr, "medmon: %s: cannot write the model: %s\n", out.c_str(), why.c_str());
      return 3;
    }
  for (const std::string* in : {&form, &ports})
    if (!in->empty())
      if (std::string why = cannot_read_reason(*in); !why.empty()) {
        std::fprintf(stderr, "medmon: %s: cannot open file: %s\n", in->c_str(), why.c_str());
        return 3;
      }
  try {
    // A form from a pipe is read once: its bytes give the form and its SHA-256.
    std::string streamed;
    bool stream = mds2::is_stream(form);
    if (stream) streamed = mds2::read_form_stream(form);
    mds2::Form f = stream ? mds2::read_any_buffer(streamed, form) : mds2::read_any(form);
    std::vector<mds2::PortEntry> pt;
    std::vector<std::string> port_warnings;
    if (!ports.empty()) pt = mds2::read_ports_csv(ports, &port_warnings);
    mds2::ImportOptions opt;
    opt.sha256 = sha256_file(form, stream ? &streamed : nullptr);
    opt.model_id = id;
    // A site names a model by its file, <models dir>/<id>.yaml, which must declare that id: a model
    // written to a file is named after it unless --id says otherwise.
    // Not for stdout or a device (/dev/null), which no site reads.
    std::error_code ec;
    bool to_file = out != "-" && (!std::filesystem::exists(out, ec) || std::filesystem::is_regular_file(out, ec));
    std::string stem = to_file ? std::filesystem::path(out).stem().string() : std::string();
    if (opt.model_id.empty()) opt.model_id = stem.empty() ? mds2::default_model_id(f) : stem;
    else if (!stem.empty() && stem != opt.model_id)
      f.warnings.push_back("model id '" + opt.model_id + "' differs from the file name " + out +
                           ": a site finds model '" + opt.model_id + "' by file name in " + opt.model_id + ".yaml or " +
                           opt.model_id + ".yml");
    std::string yaml = mds2::render_model(f, pt, opt);
    for (auto& w : f.warnings) std::fprintf(stderr, "medmon: %s: warning: %s\n", form.c_str(), w.c_str());
    for (auto& w : port_warnings) std::fprintf(stderr, "medmon: %s: warning: %s\n", ports.c_str(), w.c_str());
    if (out == "-") {
      std::fwrite(yaml.data(), 1, yaml.size(), stdout);
      if (!flush_stdout("the model")) return 3;
    } else {
      errno = 0;
      std::ofstream o(out, std::ios::binary | std::ios::trunc);
      if (!o || !(o << yaml) || !o.flush()) {
        int e = errno ? errno : EIO;
        std::fprintf(stderr, "medmon: %s: cannot write the model: %s\n", out.c_str(), std::strerror(e));
        return 3;
      }
      std::fprintf(stderr, "medmon: %s: model '%s', %zu answers from %s (%s%s%s)\n", out.c_str(), opt.model_id.c_str(),
                   f.questions.size(), form.c_str(), f.source_format.c_str(), f.sheet.empty() ? "" : ", sheet ",
                   f.sheet.c_str());
    }
    return 0;
  } catch (const std::bad_alloc&) {
    // The readers name their file themselves; what is left is the model being written.
    std::fprintf(stderr, "medmon: %s: out of memory\n", form.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "medmon: %s\n", e.what());
    return 2;
  }
}

int run_check(const std::string& site, const std::string& models, const std::vector<std::string>& signatures) {
  // A model may name a signature's protocol: the signatures analyze would load are known here too.
  bool sig_errors = false;
  for (const auto& dir : signatures)
    for (const auto& e : proprietary::add_signatures(dir)) {
      std::fprintf(stderr, "medmon: %s\n", e.str().c_str());
      sig_errors = true;
    }
  if (sig_errors) return 2;
  policy::Errors errs;
  auto s = policy::load_site(site, models, errs);
  for (auto& e : errs.list) std::fprintf(stderr, "%s\n", e.format().c_str());
  if (!s || !errs.empty()) {
    std::fprintf(stderr, "medmon: policy check failed: %zu error%s\n", errs.list.size(), errs.list.size() == 1 ? "" : "s");
    return 2;
  }
  size_t flows = 0;
  for (auto& m : s->models) flows += m->flows.size();
  std::printf("%s: ok: %zu zones, %zu roles, %zu devices, %zu models, %zu declared flows\n", site.c_str(),
              s->zones.size(), s->roles.size(), s->devices.size(), s->models.size(), flows);
  if (!flush_stdout("the summary")) return 3;
  return 0;
}

}  // namespace

void register_policy_commands(CLI::App& app, int& exit_code) {
  auto* mds2 = app.add_subcommand("mds2", "MDS2 (ANSI/NEMA HN 1-2019) manufacturer declarations");
  mds2->require_subcommand(1);
  auto* imp = mds2->add_subcommand("import", "Import an MDS2 form (XLSX, CSV/TSV, Markdown, text, PDF) as a device model");
  struct ImportArgs { std::string form, out = "-", ports, id; };
  auto ia = std::make_shared<ImportArgs>();
  imp->add_option("form", ia->form, "The MDS2 form")->required();
  imp->add_option("-o,--out", ia->out, "Model YAML to write ('-' = stdout)");
  imp->add_option("--ports", ia->ports, "Vendor port table (CSV: port, protocol, direction, service, default state)");
  imp->add_option("--id", ia->id, "Model id (default: the name of the -o file without .yaml; with -o -, from DOC-3 / DOC-2)");
  imp->callback([ia, &exit_code] { exit_code = run_import(ia->form, ia->out, ia->ports, ia->id); });

  auto* pol = app.add_subcommand("policy", "Site policies");
  pol->require_subcommand(1);
  auto* chk = pol->add_subcommand("check", "Validate a site file and the device models it names");
  struct CheckArgs { std::string site, models; std::vector<std::string> signatures; };
  auto ca = std::make_shared<CheckArgs>();
  chk->add_option("site", ca->site, "Site YAML")->required();
  chk->add_option("--models", ca->models, "Directory of device models (default: <site dir>/../devices)");
  chk->add_option("--signatures", ca->signatures, "Directory of protocol signature YAML files whose names models may use")
      ->check(CLI::ExistingDirectory);
  chk->callback([ca, &exit_code] { exit_code = run_check(ca->site, ca->models, ca->signatures); });
}

std::unique_ptr<policy::PolicyJudge> load_policy_judge(const std::string& site_path, const std::string& models_dir,
                                                       const std::string& baseline_path) {
  policy::Errors errs;
  policy::JudgeOptions opt;
  opt.baseline_path = baseline_path;
  auto j = policy::PolicyJudge::load(site_path, models_dir, opt, errs);
  for (auto& e : errs.list) std::fprintf(stderr, "%s\n", e.format().c_str());
  if (!errs.empty()) return nullptr;
  return j;
}

}  // namespace medmon
