#pragma once
// Packet sources through libpcap: pcap and pcapng files (or "-" for stdin) and live
// interfaces (promiscuous, BPF filter, snaplen, kernel drop counters). The records of a classic
// pcap file and the packet blocks of a pcapng file are read in place from a memory mapping (see
// pcap_source.cpp); libpcap still opens every file and reads whatever the mapping does not handle.
#include <pcap/pcap.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace medmon {

// What in a pcapng file libpcap would refuse part way through although the format allows it:
// an interface whose link type differs from the first interface's (in this section or a later
// one), or a section whose byte order differs from the first section's. A one-line message
// naming the file and the block's offset; empty when there is none, when the file is not
// pcapng or cannot be read (opening it reports that). A walk over the block headers only.
std::string pcapng_unsupported(const std::string& path);

class PcapSource {
 public:
  enum class Next { packet, timeout, end, error };

  ~PcapSource();
  static constexpr size_t kDefaultMapWindow = size_t(2) << 20;  // mapped bytes at a time (bounds RSS)
  // Throws std::runtime_error with a one-line message naming the file. map_window: bytes of the
  // file mapped at a time (rounded up to whole pages); tests and fuzzing make it small so that
  // short files cross many windows.
  static std::unique_ptr<PcapSource> open_file(const std::string& path, size_t map_window = kDefaultMapWindow);
  static std::unique_ptr<PcapSource> open_live(const std::string& iface, int snaplen, bool promisc,
                                               const std::string& bpf, int buffer_mb);

  int datalink() const;
  Next next(const pcap_pkthdr*& hdr, const uint8_t*& data);
  std::string error() const;
  // Only packets the BPF expression accepts are returned (files: records read in place are
  // matched here as libpcap matches the ones it reads). Throws std::runtime_error on a bad one.
  void set_filter(const std::string& bpf);
  // Throws as set_filter does when the expression is not BPF at all (checked for Ethernet, before
  // any file is open; whether it fits a file's link type is known only once that file is).
  static void check_filter(const std::string& bpf);
  void breakloop();
  // Offline: bytes read so far and file size (0 when unknown, e.g. stdin).
  uint64_t position() const;
  uint64_t file_size() const { return file_size_; }
  // Live: packets received and dropped by the kernel and the interface.
  bool stats(uint64_t& received, uint64_t& dropped, uint64_t& if_dropped) const;
  // Live, stopping: the kernel puts no more frames into the capture ring (a socket filter that
  // takes none); what the ring holds is still returned by next(), which no longer waits (it
  // returns `timeout` when no frame is ready). False when the filter could not be attached
  // (errno says why): frames keep coming.
  bool close_intake();
  int selectable_fd() const;
  // Live: whether the interface is up. libpcap waits, saying nothing, while it is down (and
  // fails with "The interface disappeared" once it is deleted); true when that cannot be told.
  bool interface_up() const;
  const std::string& name() const { return name_; }
  // True while records come from the file's mapping rather than through libpcap.
  bool reads_in_place() const { return mapped_; }

 private:
  PcapSource() = default;
  static constexpr size_t kFileBuffer = 1u << 20;

  void open_mapping(const std::string& path);
  bool open_mapping_ng(int fd, uint64_t size);
  struct NgInterface {
    bool nsec = false;           // nanosecond time stamps (scaled to microseconds)
    int64_t offset = 0;          // seconds added to every time stamp (if_tsoffset)
  };
  bool read_interface(int fd, uint64_t at, uint64_t len, NgInterface& out) const;
  bool map_window(uint64_t offset, size_t need);
  const uint8_t* in_window(size_t need);
  Next next_mapped(const pcap_pkthdr*& hdr, const uint8_t*& data);
  Next next_record(const pcap_pkthdr*& hdr, const uint8_t*& data);  // through libpcap
  Next next_mapped_ng(const pcap_pkthdr*& hdr, const uint8_t*& data);
  Next next_lent(const pcap_pkthdr*& hdr, const uint8_t*& data);
  Next cut_short();
  void hand_over();
  void stop_mapping();
  void lend();
  void take_back();
  bool shrank() const;
  void unmap();

  pcap_t* p_ = nullptr;
  // Mapped reading of a classic pcap or pcapng file: which records it may take, and where it is.
  int fd_ = -1;
  bool mapped_ = false;          // records still come from the mapping
  bool ng_ = false;              // pcapng: records are Enhanced Packet Blocks
  bool swapped_ = false;         // file written in the other byte order
  bool nsec_ = false;            // classic pcap: nanosecond time stamps (scaled to microseconds)
  std::vector<NgInterface> interfaces_;  // pcapng: the interfaces libpcap has described, in order
  bool lent_ = false;            // pcapng: libpcap reads up to its next packet, then take_back
  uint64_t lent_at_ = 0;         // file offset where libpcap started reading the lent file
  uint32_t snapshot_ = 0;        // libpcap's snapshot length for the file
  uint64_t pos_ = 0;             // file offset of the next record
  const uint8_t* window_ = nullptr;
  uint64_t window_off_ = 0;      // file offset of window_[0]
  size_t window_len_ = 0;
  size_t window_size_ = kDefaultMapWindow;  // bytes mapped at a time, whole pages
  pcap_pkthdr hdr_{};
  bpf_program filter_{};         // files: the filter set_filter compiled (no instructions = none)
  std::string error_;            // set when the file was cut under the mapping
  std::unique_ptr<char[]> file_buffer_;  // stdio buffer of the file libpcap reads; outlives p_
  std::string name_;
  uint64_t file_size_ = 0;
  bool live_ = false;
  bool capturing_ = false;       // live: opened; a filter set now changes the one in force
  uint64_t read_since_setfilter_ = 0;  // records libpcap returned since its last pcap_setfilter
};

}  // namespace medmon
