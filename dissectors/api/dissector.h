#pragma once
// The dissector interface: one instance per flow, fed the in-order byte stream of each direction
// by the TCP reassembler (or one datagram at a time for UDP).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "dissectors/api/flow_context.h"
#include "sensor/common/types.h"

namespace medmon {

// What a dissector did with the bytes it was given.
//  used    bytes consumed from the front of the data.
//  need    when used < data.size(): call again only once at least `need` bytes (counted from the
//          first unconsumed byte) are available; the sensor buffers them, up to its per-flow cap.
//  skip    after `used`, drop this many further bytes of the stream without delivering them
//          (DICOM pixel data): memory stays O(max PDU), never O(object).
//  give_up stop feeding this dissector for the rest of the flow.
struct Consumed {
  size_t used = 0;
  size_t need = 0;
  uint64_t skip = 0;
  bool give_up = false;
};

class Dissector {
 public:
  virtual ~Dissector() = default;
  // The flow was claimed on these first bytes of `dir` (what the probe saw); called once, before
  // any bytes are given. The held bytes of both directions then come in the order they arrived,
  // so a dissector that stands for several protocols chooses one here, not on its first bytes.
  virtual void on_claim(Dir dir, std::span<const uint8_t> probed, FlowContext& ctx) {}
  // In-order bytes of one direction (TCP), or one whole datagram (UDP).
  virtual Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) = 0;
  // `missing` bytes of this direction were lost (capture loss, memcap): resynchronise.
  // ctx.stream_offset() is where they start in this direction's stream.
  virtual void on_gap(Dir dir, uint64_t missing, FlowContext& ctx) = 0;
  // This direction ended: at its FIN, once the stream reached it in order (its bytes, or a gap);
  // at the flow's end for one that ended otherwise (RST, timeout, end of input). Bytes may
  // still come after it (a sender that breaks TCP, or a forged FIN): they are given as before.
  virtual void on_end(Dir dir, FlowContext& ctx) = 0;
  // The flow is over: emit whatever is still pending (open associations, unacked messages).
  virtual void on_flow_end(FlowContext& ctx) {}
};

enum class Probe : uint8_t { no, need_more, yes };

// A message DissectorInfo::later_next measured that goes on past the delivery it began in, when
// its end is found only by reading on (an HTTP body in chunks): later_next's own state of it,
// kept by the sensor per direction and given back with the bytes that go on with the message.
struct LaterCursor {
  uint64_t value = 0;
  uint32_t count = 0;
  uint8_t phase = 0;  // 0: no message goes on
  uint8_t flags = 0, digits = 0;
  bool active() const { return phase != 0; }
};
// later_next's length of a message that runs to the end of the stream (an HTTP response without
// a length): nothing after it is a message.
inline constexpr size_t kLaterToClose = SIZE_MAX;
// later_next's length of a message whose head the bytes cut (its blank line not there yet): the
// sensor keeps the bytes from where it begins, at most kLaterMaxHead of them (later_next gives
// this only for fewer), and measures again with the next delivery behind them.
inline constexpr size_t kLaterHeadCut = SIZE_MAX - 1;
inline constexpr size_t kLaterMaxHead = 16u << 10;
// Which side of a TCP connection sends a stream that starts with given bytes, as far as the
// protocol tells: `client`/`server` when only that side ever sends such a message (a DICOM
// A-ASSOCIATE-AC comes only from the acceptor, an HTTP response only from the server),
// `likely_*` when it is the usual case but not a rule (an HL7 ACK comes from the receiver of a
// message, most often the listening side).
enum class StreamSender : uint8_t { unknown, likely_client, likely_server, client, server };
enum class Transport : uint8_t { tcp = 1, udp = 2, both = 3 };

// One registry entry per protocol.
struct DissectorInfo {
  std::string_view name;  // "dicom", "hl7": also the `app` value of flows it claims
  Transport transport = Transport::tcp;
  // Content detection on the first bytes of a direction; called on every port.
  // need_more: too few bytes to decide (the sensor retries with more, up to a small window).
  Probe (*probe)(std::span<const uint8_t> first_bytes, Dir dir) = nullptr;
  // Asked, after `probe` refused, of a direction picked up mid-stream (its SYN not seen, see
  // FlowContext::midstream): its first bytes may be the middle of a conversation, which the
  // start of a stream never is (an ASTM frame after the transmission's first). Kept apart so
  // that the probe of a stream whose start was seen stays strict.
  Probe (*midstream_probe)(std::span<const uint8_t> first_bytes, Dir dir) = nullptr;
  std::unique_ptr<Dissector> (*make)() = nullptr;
  std::span<const uint16_t> port_hints;  // only orders the probes; never required
  // Probed only on the port hints (a signature that names ports; elsewhere another entry probes it).
  bool only_on_port_hints = false;
  // Orients a TCP flow picked up without its handshake: who sends a stream (or the packet that
  // the capture saw first of it) starting with these bytes. The port hints and TLS ports also
  // name the server side of such a flow.
  StreamSender (*sender)(std::span<const uint8_t> first_bytes) = nullptr;
  // The protocol over TLS, where the content cannot be probed: a TLS flow to one of these
  // server ports, or to a server this protocol's own traffic announced (tls_server), or (with
  // tls_after_clear) to a server seen speaking the protocol in clear, is reported as "<name>-tls".
  std::span<const uint16_t> tls_ports{};
  bool (*tls_server)(const IpAddr& ip, uint16_t port) = nullptr;
  bool tls_after_clear = false;
  // A protocol carried in the messages of another (HL7 v2 in HTTP bodies) may come in a later
  // message of a TCP flow every probe refused on its first one (an HL7 POST after a GET on a
  // connection kept alive). `carried_by` is asked of the refused first bytes of each direction:
  // when one is such a carrier, the flow is watched, holding nothing: each later delivery (the
  // new bytes of a TCP segment) is given to `later_probe`, which judges a message that begins it
  // as `probe` judges a stream's start (need_more holds it, up to the probe window). A claim
  // there gives the dissector the bytes before as gaps of both directions.
  // A later message may also follow another in one TCP segment (requests pipelined, a POST
  // right behind a GET): `later_next` gives the length of the message at the front of `bytes`
  // when all of it is there (0 when it cannot tell), and the message after it is judged by
  // `later_probe` in turn. It may also give a length past `bytes` (a body of known length that
  // goes on in the next segments): the message after it is then judged where it begins in a
  // later delivery, the deliveries before wholly inside that body not looked at. A message whose
  // end is found only by reading on (a body in chunks) sets `cursor` and gives where reading goes
  // on: past `bytes` (inside a chunk's data; the deliveries before are not looked at) or at
  // their end (a chunk's size line cut there); later_next is then given the cursor back with the
  // bytes that go on with the message, from where it left off, and measures the rest of it.
  // kLaterToClose: the message runs to the end of the stream; nothing after it is looked at.
  // kLaterHeadCut: the bytes end inside the message's head, which is measured again from its
  // start when the next delivery comes (a head cut anywhere by TCP segments is found as in one).
  // With `later_midstream`, a direction picked up mid-stream (FlowContext::midstream) that every
  // probe refused is watched as a carrier is, whatever its first bytes: they were the tail of a
  // message the capture missed, and the next message may begin a later delivery (an MLLP
  // connection open for days, seen from the middle of a frame).
  bool (*carried_by)(std::span<const uint8_t> first_bytes, Dir dir) = nullptr;
  Probe (*later_probe)(std::span<const uint8_t> bytes, Dir dir) = nullptr;
  size_t (*later_next)(std::span<const uint8_t> bytes, Dir dir, LaterCursor& cursor) = nullptr;
  bool later_midstream = false;
  // A probe that still says need_more when the probe window is full may be given more of the
  // same bytes, up to what this returns for them (0 or less than the window: no more). Asked
  // only then, so that flows decided within the window cost nothing more: an HTTP head with a
  // long bearer token or cookie before its Content-Type is judged as far as servers accept one.
  size_t (*probe_extent)(std::span<const uint8_t> first_bytes, Dir dir) = nullptr;
};

}  // namespace medmon
