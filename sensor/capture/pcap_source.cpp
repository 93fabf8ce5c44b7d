#include "sensor/capture/pcap_source.h"

#include <stdio_ext.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace medmon {

PcapSource::~PcapSource() {
  if (p_) pcap_close(p_);
}

std::unique_ptr<PcapSource> PcapSource::open_file(const std::string& path) {
  char err[PCAP_ERRBUF_SIZE] = {0};
  std::unique_ptr<PcapSource> s(new PcapSource());
  s->name_ = path;
  // Microsecond timestamps whatever the file's own precision: output is microseconds.
  if (path == "-") {
    s->p_ = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_MICRO, err);
  } else {
    // libpcap reads a record as two freads; with stdio's default 4 KiB buffer that is a read()
    // system call every few packets. A 1 MiB buffer makes it one per MiB.
    FILE* f = std::fopen(path.c_str(), "rbe");
    if (!f) throw std::runtime_error(path + ": " + std::strerror(errno));
    s->file_buffer_.reset(new char[kFileBuffer]);
    setvbuf(f, s->file_buffer_.get(), _IOFBF, kFileBuffer);
    // Only the reading thread touches the stream: no stdio lock per fread (two per packet).
    __fsetlocking(f, FSETLOCKING_BYCALLER);
    s->p_ = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_MICRO, err);
    if (!s->p_) std::fclose(f);  // on success pcap_close closes it
  }
  if (!s->p_) throw std::runtime_error(path + ": " + err);
  struct stat st;
  if (path != "-" && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) s->file_size_ = static_cast<uint64_t>(st.st_size);
  return s;
}

std::unique_ptr<PcapSource> PcapSource::open_live(const std::string& iface, int snaplen, bool promisc,
                                                  const std::string& bpf, int buffer_mb) {
  char err[PCAP_ERRBUF_SIZE] = {0};
  std::unique_ptr<PcapSource> s(new PcapSource());
  s->name_ = iface;
  s->live_ = true;
  s->p_ = pcap_create(iface.c_str(), err);
  if (!s->p_) throw std::runtime_error(iface + ": " + err);
  pcap_set_snaplen(s->p_, snaplen);
  pcap_set_promisc(s->p_, promisc ? 1 : 0);
  pcap_set_timeout(s->p_, 100);  // ms: lets the loop flush output and check signals
  pcap_set_buffer_size(s->p_, buffer_mb << 20);
  pcap_set_tstamp_precision(s->p_, PCAP_TSTAMP_PRECISION_MICRO);
  int rc = pcap_activate(s->p_);
  if (rc < 0) throw std::runtime_error(iface + ": " + pcap_geterr(s->p_));
  if (!bpf.empty()) s->set_filter(bpf);
  return s;
}

void PcapSource::set_filter(const std::string& bpf) {
  bpf_program prog;
  if (pcap_compile(p_, &prog, bpf.c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0)
    throw std::runtime_error("bad BPF filter '" + bpf + "': " + pcap_geterr(p_));
  int rc = pcap_setfilter(p_, &prog);
  pcap_freecode(&prog);
  if (rc < 0) throw std::runtime_error("cannot set BPF filter: " + std::string(pcap_geterr(p_)));
}

int PcapSource::datalink() const { return pcap_datalink(p_); }

PcapSource::Next PcapSource::next(const pcap_pkthdr*& hdr, const uint8_t*& data) {
  pcap_pkthdr* h = nullptr;
  const u_char* d = nullptr;
  int rc = pcap_next_ex(p_, &h, &d);
  if (rc == 1) { hdr = h; data = d; return Next::packet; }
  if (rc == 0) return Next::timeout;
  if (rc == PCAP_ERROR_BREAK) return Next::end;
  return Next::error;
}

std::string PcapSource::error() const { return pcap_geterr(p_); }

void PcapSource::breakloop() { pcap_breakloop(p_); }

uint64_t PcapSource::position() const {
  if (live_ || file_size_ == 0) return 0;
  FILE* f = pcap_file(p_);
  if (!f) return 0;
  long pos = ftell(f);
  return pos > 0 ? static_cast<uint64_t>(pos) : 0;
}

bool PcapSource::stats(uint64_t& received, uint64_t& dropped, uint64_t& if_dropped) const {
  if (!live_) return false;
  pcap_stat st{};
  if (pcap_stats(p_, &st) != 0) return false;
  received = st.ps_recv;
  dropped = st.ps_drop;
  if_dropped = st.ps_ifdrop;
  return true;
}

int PcapSource::selectable_fd() const { return pcap_get_selectable_fd(p_); }

}  // namespace medmon
