#pragma once
// Syslog (RFC 5424) over UDP (RFC 5426: one message per datagram), TCP (RFC 6587 octet
// counting) or a unix socket, with the event JSON as MSG, or CEF for SIEMs (one line per alert).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sensor/output/sinks/async_sink.h"
#include "sensor/output/sinks/net.h"

namespace medmon {

// kern=0 .. local7=23, or a number 0..23; -1 when unknown.
int syslog_facility(const std::string& name);

// Syslog severity (0 emerg .. 7 debug) of an event: alerts by their severity, anomalies notice,
// everything else informational.
int syslog_severity(std::string_view event_type, std::string_view line);

// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG. Header fields are cut to
// their RFC 5424 lengths and non-printable characters replaced; an empty field becomes "-".
std::string format_rfc5424(int facility, int severity, std::string_view timestamp, std::string_view hostname,
                           std::string_view app, std::string_view procid, std::string_view msgid,
                           std::string_view structured_data, std::string_view msg);

// SD-PARAM value escaping (RFC 5424 6.3.3: '"', '\' and ']').
std::string sd_escape(std::string_view v);

// CEF escaping: header fields escape '\' and '|'; extension values escape '\' and '=' and
// write line breaks as \n / \r.
std::string cef_header_escape(std::string_view v);
std::string cef_ext_escape(std::string_view v);

// CEF:0|medmon|medmon|VERSION|rule|message|severity|extensions for one alert event line;
// empty when the line is not a parsable alert. CEF severity: info 1, low 3, medium 5, high 8,
// critical 10.
std::string alert_to_cef(std::string_view line, std::string_view sensor_id);

class SyslogBackend : public Backend {
 public:
  // Throws SinkConfigError on a bad URL.
  SyslogBackend(const SinkSpec& spec, std::string sensor_id);
  ~SyslogBackend() override;
  bool deliver(const std::vector<Record>& batch, std::string& error) override;
  uint64_t take_skipped() override;
  // The message for one record ("" when it cannot be sent: in CEF format, an event that is not
  // an alert with a rule; counted as dropped, not delivered).
  std::string message(const Record& r) const;

 private:
  SinkSpec spec_;
  Url url_;
  int facility_;
  std::string host_, pid_;
  std::string sensor_id_;
  int fd_ = -1;
  int type_ = 0;
  uint64_t conn_bytes_ = 0;  // bytes written on this connection
  // Progress through the batch being retried, so a reconnect does not send a message twice.
  std::string batch_run_;
  uint64_t batch_seq_ = 0;
  size_t sent_ = 0;
  // Records of the batch left out for good (no message, a datagram too large to send): one flag
  // per record, so a message gone over again after a reconnect is not counted twice.
  std::vector<bool> skipped_;
};

}  // namespace medmon
