#pragma once
// Packet sources through libpcap: pcap and pcapng files (or "-" for stdin) and live
// interfaces (promiscuous, BPF filter, snaplen, kernel drop counters).
#include <pcap/pcap.h>

#include <cstdint>
#include <memory>
#include <string>

namespace medmon {

class PcapSource {
 public:
  enum class Next { packet, timeout, end, error };

  ~PcapSource();
  // Throws std::runtime_error with a one-line message naming the file.
  static std::unique_ptr<PcapSource> open_file(const std::string& path);
  static std::unique_ptr<PcapSource> open_live(const std::string& iface, int snaplen, bool promisc,
                                               const std::string& bpf, int buffer_mb);

  int datalink() const;
  Next next(const pcap_pkthdr*& hdr, const uint8_t*& data);
  std::string error() const;
  void set_filter(const std::string& bpf);
  void breakloop();
  // Offline: bytes read so far and file size (0 when unknown, e.g. stdin).
  uint64_t position() const;
  uint64_t file_size() const { return file_size_; }
  // Live: packets received and dropped by the kernel and the interface.
  bool stats(uint64_t& received, uint64_t& dropped, uint64_t& if_dropped) const;
  int selectable_fd() const;
  const std::string& name() const { return name_; }

 private:
  PcapSource() = default;
  static constexpr size_t kFileBuffer = 1u << 20;
  pcap_t* p_ = nullptr;
  std::unique_ptr<char[]> file_buffer_;  // stdio buffer of the file libpcap reads; outlives p_
  std::string name_;
  uint64_t file_size_ = 0;
  bool live_ = false;
};

}  // namespace medmon
