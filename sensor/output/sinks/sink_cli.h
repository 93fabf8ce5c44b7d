#pragma once
// Command-line options for the sinks (header-only: the CLI library stays out of the sink library).
#include <CLI/CLI.hpp>

#include "sensor/output/sinks/sink_config.h"

namespace medmon {

inline void add_sink_options(CLI::App* c, SinkCliOptions& o) {
  c->add_option("--sink", o.sinks,
                "Extra event sink TYPE=URL[,key=value...]: stdout, file=PATH, syslog=udp://H:P|tcp://H:P|unix:/PATH, "
                "clickhouse=http://H:8123/?db=medmon (docs/sinks.md); repeatable")
      ->allow_extra_args(false);
  c->add_option("--syslog", o.syslog, "Shorthand for --sink syslog=URL[,format=cef,...]; repeatable")
      ->allow_extra_args(false);
  c->add_option("--sensor-id", o.sensor_id, "Name of this sensor in fleet sinks (default: the host name)");
  c->add_option("--rotate-size", o.rotate_size, "Rotate the --out file before it grows past this size (e.g. 100M)");
  c->add_option("--rotate-interval", o.rotate_interval, "Rotate the --out file every this many seconds of packet time")
      ->check(CLI::Range(1.0, 86400.0 * 366));
  c->add_option("--rotate-keep", o.rotate_keep, "Rotated files kept (0 = all; default 10)")->check(CLI::Range(0, 100000));
  c->add_flag("--rotate-timestamp", o.rotate_timestamp, "Name rotated files <file>.<UTC time of first event> instead of <file>.<n>");
  c->add_option("--spool-dir", o.spool_dir, "Directory where sinks keep events while their server is slow or down");
}

}  // namespace medmon
