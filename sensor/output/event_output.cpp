#include "sensor/output/event_output.h"

#include "sensor/output/community_id.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace medmon {

bool EventOutput::HeaderCache::matches(const EventEndpoints& ep, HeaderAnnotator* a) const {
  return valid && src_port == ep.src_port && dst_port == ep.dst_port && has_ports == ep.has_ports &&
         proto == ep.proto && vlan == ep.vlan && vlan_inner == ep.vlan_inner &&
         annotator == a && (!a || generation == a->annotation_generation()) && src == ep.src && dst == ep.dst &&
         flow_id == ep.flow_id && src_mac == ep.src_mac && dst_mac == ep.dst_mac;
}

EventOutput::~EventOutput() { pass_batch(); }

void EventOutput::pass_batch() {
  if (line_.empty()) return;
  for (auto* s : batch_sinks_) s->write_batch(line_.view());
  line_.clear();
}

JsonWriter& EventOutput::begin(std::string_view event_type, Timestamp ts, const EventEndpoints* ep) {
  if (batch_sinks_.empty() || line_.size() >= kOutputRunBytes) pass_batch();
  line_start_ = line_.size();
  type_.assign(event_type);
  writer_.reset();
  writer_.begin_object();
  writer_.field("ts", ts);
  writer_.field("event_type", event_type);
  current_ep_ = nullptr;
  if (ep && (!ep->flow_id.empty() || ep->src.family)) {
    current_ep_ = ep;
    // Same comma state after a cached header as after writing it: the object holds ts already.
    uint64_t gen = annotator_ ? annotator_->annotation_generation() : 0;
    if (HeaderSlot* slot = ep->header) {
      if (slot->valid && slot->annotator == annotator_ && slot->generation == gen) {
        line_.append(slot->text);
        header_end_ = line_.size() - line_start_;
        return writer_;
      }
      size_t from = line_.size();
      write_endpoints(*ep);
      slot->valid = true;
      slot->annotator = annotator_;
      slot->generation = gen;
      slot->text.assign(line_.data() + from, line_.size() - from);
      header_end_ = line_.size() - line_start_;
      return writer_;
    }
    if (header_.matches(*ep, annotator_)) {
      line_.append(header_.text);
      header_end_ = line_.size() - line_start_;
      return writer_;
    }
    size_t from = line_.size();
    write_endpoints(*ep);
    header_.valid = true;
    header_.flow_id.assign(ep->flow_id);
    header_.src = ep->src;
    header_.dst = ep->dst;
    header_.src_port = ep->src_port;
    header_.dst_port = ep->dst_port;
    header_.has_ports = ep->has_ports;
    header_.vlan = ep->vlan;
    header_.vlan_inner = ep->vlan_inner;
    header_.proto = ep->proto;
    header_.src_mac = ep->src_mac;
    header_.dst_mac = ep->dst_mac;
    header_.annotator = annotator_;
    header_.generation = gen;
    header_.text.assign(line_.data() + from, line_.size() - from);
    header_end_ = line_.size() - line_start_;
  }
  return writer_;
}

void EventOutput::write_endpoints(const EventEndpoints& ep) {
  if (!ep.flow_id.empty()) writer_.field("flow_id", ep.flow_id);
  if (!ep.src.family) return;
  writer_.field("src_ip", ep.src);
  if (ep.has_ports) writer_.field("src_port", ep.src_port);
  writer_.field("dst_ip", ep.dst);
  if (ep.has_ports) writer_.field("dst_port", ep.dst_port);
  writer_.field("proto", l4_name(ep.proto));
  if (ep.vlan || ep.vlan_inner) writer_.field("vlan", ep.vlan);  // 0: a priority tag over the inner one
  if (ep.vlan_inner) writer_.field("vlan_inner", ep.vlan_inner);
  if (community_id_ && !ep.flow_id.empty()) {
    std::string id = community_id(ep.src, ep.src_port, ep.dst, ep.dst_port, ep.proto, community_seed_);
    if (!id.empty()) writer_.field("community_id", id);
  }
  if (annotator_) annotator_->annotate(ep, writer_);
}

void EventOutput::end() {
  writer_.end_object();
  ++events_;
  ++type_counter();
  std::string_view line = line_.view().substr(line_start_);
  for (auto* o : observers_) o->on_event(type_, line);
  for (auto* s : line_sinks_) s->write_line(type_, line);
  current_ep_ = nullptr;
  if (!batch_sinks_.empty()) line_.push_back('\n');
}

uint64_t& EventOutput::type_counter() {
  // A handful of event types: a linear scan beats building "events.<type>" for every event.
  for (auto& [t, c] : type_counters_)
    if (t == type_) return *c;
  type_counters_.emplace_back(type_, &counters_.at("events." + type_));
  return *type_counters_.back().second;
}

void EventOutput::emit_line(std::string_view event_type, std::string_view line) {
  ++events_;
  for (auto* o : observers_) o->on_event(event_type, line);
  for (auto* s : line_sinks_) s->write_line(event_type, line);
  if (!batch_sinks_.empty()) {
    line_.append(line);
    line_.push_back('\n');
    if (line_.size() >= kOutputRunBytes) pass_batch();
  }
}

void EventOutput::flush() {
  pass_batch();
  for (auto& s : sinks_) s->flush();
}

int write_lines(int fd, std::string_view lines) {
  size_t off = 0;
  while (off < lines.size()) {
    ssize_t n = ::write(fd, lines.data() + off, lines.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : ENOSPC;
      // Output gone: drop the rest rather than spin. A line begun is taken back where the file
      // can be cut (not a pipe), so that a reader never sees half an event.
      size_t line_start = 0;
      if (off > 0) {
        size_t nl = lines.rfind('\n', off - 1);
        line_start = nl == std::string_view::npos ? 0 : nl + 1;
      }
      size_t begun = off - line_start;
      if (begun) {
        off_t end = ::lseek(fd, 0, SEEK_CUR);
        if (end >= off_t(begun)) (void)!::ftruncate(fd, end - off_t(begun));
      }
      return e;
    }
    off += static_cast<size_t>(n);
  }
  return 0;
}

FileSink::FileSink(const std::string& path, bool truncate_now) : name_(path == "-" ? "standard output" : path) {
  struct stat named, out;
  if (path == "-") {
    fd_ = STDOUT_FILENO;
  } else if (::stat(path.c_str(), &named) == 0 && S_ISREG(named.st_mode) && ::fstat(STDOUT_FILENO, &out) == 0 &&
             named.st_dev == out.st_dev && named.st_ino == out.st_ino) {
    // `--out /dev/stdout` names the file the shell opened as standard output: write through that
    // descriptor, so `>>` appends as asked instead of the file being opened again and emptied.
    fd_ = STDOUT_FILENO;
  } else {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | (truncate_now ? O_TRUNC : 0) | O_CLOEXEC, 0640);
    if (fd_ < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
    owned_ = true;
    truncate_pending_ = !truncate_now;
  }
  buf_.reserve(kOutputRunBytes);
}

void FileSink::start() {
  if (!truncate_pending_) return;
  truncate_pending_ = false;
  // Only a regular file has contents to drop (O_TRUNC leaves a FIFO or a device alone too).
  struct stat st;
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && ::ftruncate(fd_, 0) != 0 && error_.empty())
    error_ = name_ + ": " + std::strerror(errno);
}

FileSink::~FileSink() {
  flush();
  if (owned_) ::close(fd_);
}

void FileSink::write_line(std::string_view, std::string_view line) {
  buf_.append(line);
  buf_.push_back('\n');
  if (buf_.size() >= kOutputRunBytes) flush();
}

void FileSink::write_batch(std::string_view lines) {
  // Whole lines, already newline-terminated: after what is buffered, straight to the file.
  flush();
  write_all(lines);
}

void FileSink::flush() {
  write_all(buf_);
  buf_.clear();
}

void FileSink::write_all(std::string_view bytes) {
  if (int e = write_lines(fd_, bytes); e && error_.empty()) error_ = name_ + ": " + std::strerror(e);
}

}  // namespace medmon
