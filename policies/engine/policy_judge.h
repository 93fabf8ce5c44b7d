#pragma once
// Judges every flow against the site's policy and writes alerts; adds device and zone names to
// every event header. The policy is compiled into hash tables at load so a flow costs a few
// lookups; alert text is only built when an alert fires.
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "policies/engine/policy.h"
#include "sensor/engine/flow_judge.h"

namespace medmon::policy {

struct JudgeOptions {
  std::string baseline_path;  // accepted alerts (alert JSONL from an earlier run, or YAML list)
};

class PolicyJudge : public FlowJudge, public HeaderAnnotator {
 public:
  explicit PolicyJudge(std::shared_ptr<const Site> site, JudgeOptions opt = {});

  // A judge for another worker thread: shares the (immutable) site and baseline. Its cross-flow
  // state (what one flow teaches about the next: fingerprint bindings, AE titles seen, reject
  // bursts, fan-out and port scans, alerts already written) is its own, a judge that starts
  // afresh (the pipeline fuzz target takes one per input); or, with share_state, the parent's and
  // every sibling's (live workers: a scan that the fanout hash spreads over the workers is seen
  // whole, and an alert is written once). judge() holds that state's lock; annotate() reads the
  // site and the fingerprint bindings (under their own lock) and may be called from any thread.
  std::unique_ptr<PolicyJudge> fork(bool share_state = false) const;

  // Loads site + models (+ baseline). Returns nullptr with errors filled on failure.
  static std::unique_ptr<PolicyJudge> load(const std::string& site_path, const std::string& models_dir,
                                           const JudgeOptions& opt, Errors& errs);

  FlowVerdict judge(const FlowSummary& flow, EventOutput& out) override;
  void finish(Timestamp now, EventOutput& out) override;
  // Names devices bound by ip or mac, and those a fingerprint bound to an address so far: the
  // generation changes with every new fingerprint binding, so a flow's cached header is written
  // again with the device's name once it is known.
  void annotate(const EventEndpoints& ep, JsonWriter& w) override;
  uint64_t annotation_generation() const override { return cross_->learned_gen.load(std::memory_order_acquire); }
  // Only what the site itself binds (ip, mac), for outputs written while another thread judges
  // (offline workers): their headers do not depend on how far the judging got.
  HeaderAnnotator* site_annotator() override { return &site_only_; }
  // The device at an address or MAC, by the site or by a fingerprint binding; null if none.
  const Device* bound_device(const IpAddr& ip, const std::array<uint8_t, 6>& mac) const;
  // The addresses fingerprints bound so far, and their devices.
  std::vector<std::pair<IpAddr, const Device*>> fingerprint_bound() const;

  // CI mode: the highest severity of alerts written (baseline-suppressed ones excluded).
  bool any_alert() const { return alerts_written_ > 0; }
  Severity max_severity() const { return max_sev_; }
  // 1 when an alert at or above `fail_on` was written, else 0.
  int exit_code(Severity fail_on) const { return alerts_written_ > 0 && max_sev_ >= fail_on ? 1 : 0; }
  uint64_t alerts_written() const { return alerts_written_; }
  uint64_t alerts_suppressed() const { return suppressed_; }
  const Site& site() const { return *site_; }

  // Adds one accepted (rule, device, peer) triple, accepted up to `up_to` (a later occurrence of
  // a higher severity is written); used by the baseline loader and tests.
  void accept(std::string_view rule, std::string_view device, std::string_view peer,
              Severity up_to = Severity::critical);

 private:
  struct Alert;
  struct SideResult;
  struct Side;  // one side (device) of a flow, as eval_side's steps see it
  // What the fan-out and port-scan detectors remember of one device, within the scan window
  // (thresholds.scan_window_s): for each service it reached (transport and server port; ICMP is
  // one service) the hosts it reached there, and for each host the ports it tried, each with the
  // time of its last flow. At most fanout_hosts + 1 hosts for each of at most scan_ports * 2 + 64
  // services (and fanout_hosts * 2 + 4096 hosts over all of them), and scan_ports + 1 ports for
  // each of at most fanout_hosts * 2 + 64 hosts.
  struct HostsReached {
    std::unordered_map<IpKey, int64_t, IpKeyHash> hosts;  // host -> last flow to it (usec)
    int64_t alerted = -1;                                 // time of the last fan_out written, -1 none
  };
  struct PortsTried {
    std::vector<std::pair<uint16_t, int64_t>> ports;  // port, last tried (usec)
    int64_t last = 0;                                   // last flow to the host
    int64_t alerted = -1;                               // time of the last port_scan written, -1 none
  };
  struct DeviceState {
    std::unordered_map<uint32_t, HostsReached> services;  // (l4 << 16 | server port) -> hosts
    size_t hosts_held = 0;                                // hosts over all services
    int64_t services_swept = 0;                           // when stale services were last dropped
    std::unordered_map<IpKey, PortsTried, IpKeyHash> ports;
    int64_t ports_swept = 0;                              // when stale hosts were last dropped from ports
    // The ports of this device that hosts the site binds to no device tried (an unknown scanner),
    // bounded as `ports` is.
    std::unordered_map<IpKey, PortsTried, IpKeyHash> scanned_by;
    int64_t scanned_by_swept = 0;
  };
  // What the fan-out detector remembers of a host the site binds to no device (a possible
  // scanner): the internal hosts it reached on each service within the scan window, and the
  // device among them it reached last. Bounded over all such hosts by kMaxSweepHosts.
  struct SweepService {
    HostsReached reached;
    uint32_t last_device = UINT32_MAX;  // index in site.devices, UINT32_MAX none
    int64_t last_device_at = 0;         // when it was reached
  };
  struct SweepState {
    std::unordered_map<uint32_t, SweepService> services;  // (l4 << 16 | server port) -> hosts
    int64_t last = 0;                                      // its last flow
  };
  static constexpr size_t kMaxSweepHosts = 65536;  // hosts held over all sweepers and services

  // C-MOVE and its follow-up: the SCP sends the objects on an association of its own (C-STORE) to
  // the destination AE's address. Both are judged when they end, in either order: the side judged
  // first waits here for the other (matched by the SCP's address, the destination AE as the
  // follow-up's called AE, and the follow-up starting while the C-MOVE's association was open).
  struct MoveSide {
    IpAddr scp;            // the C-MOVE SCP, the follow-up's client
    std::string ae;        // the C-MOVE's destination AE, the follow-up's called AE
    IpAddr other;          // C-MOVE: its requestor; follow-up: the address that received the objects
    int64_t start = 0, end = 0;
    std::string flow_id, calling_ae;  // calling_ae: the C-MOVE requestor's
    // The devices at `scp` and, for a follow-up, at `other`, as its flow bound them (by MAC too:
    // the address alone does not find a device bound by MAC).
    const Device* scp_dev = nullptr;
    const Device* receiver_dev = nullptr;
  };
  // One C-MOVE destination paired with its follow-up, for the flow being judged.
  struct MoveMatch {
    std::string ae, calling_ae, move_flow, followup_flow;
    IpAddr scp, receiver, requestor;
    const Device* scp_dev = nullptr;
    const Device* receiver_dev = nullptr;
  };
  static constexpr size_t kMaxMoveSides = 4096;          // of each kind: C-MOVEs and follow-ups waiting
  static constexpr int64_t kMoveKeepUsec = 600000000;    // how long one waits after its flow ended

  // Alerts of one (rule, device) in the current window of thresholds.alert_limit_window_s.
  struct AlertRate {
    int64_t start = 0;      // the window's first alert (usec)
    uint32_t written = 0;   // written in this window
    uint64_t held_back = 0; // over the limit since the last one written
    int64_t noted = -1;     // the window a policy.rate_limited alert was written for
    Severity worst = Severity::info;  // the most severe written in this window
  };
  // See fork(). Guarded by `lock` while judge() runs.
  struct CrossFlow {
    std::mutex lock;
    std::unordered_map<IpKey, uint32_t, IpKeyHash> learned;           // bound by fingerprint (capped)
    // learned is also read by annotate(), outside `lock` (an alert written under it annotates):
    // written under both locks, read under either. learned_gen counts its entries' additions.
    mutable std::shared_mutex learned_lock;
    std::atomic<uint64_t> learned_gen{0};
    std::unordered_map<uint32_t, IpAddr> fp_address;                  // device -> the address its fingerprint bound
    std::unordered_map<std::string, std::vector<IpAddr>> ae_seen;     // unbound AE -> IPs seen
    std::unordered_map<IpKey, std::deque<int64_t>, IpKeyHash> rejects;  // source -> reject times
    std::unordered_map<IpKey, int64_t, IpKeyHash> reject_alerted;
    std::vector<DeviceState> dev_state;
    std::unordered_map<IpKey, SweepState, IpKeyHash> sweeps;  // by the host that is no device
    size_t sweep_hosts = 0;                                   // hosts held over all of sweeps
    int64_t sweeps_swept = 0;                                 // when stale entries were last dropped
    // (rule, device, peer[, distinct]) already alerted -> the highest severity written (or
    // accepted by the baseline) for it: a repeat at or below is folded, a higher one is written.
    std::unordered_map<uint64_t, Severity> emitted;
    std::unordered_map<uint64_t, AlertRate> alert_rate;  // (rule, device) -> its alerts this window
    std::deque<MoveSide> moves_waiting, followups_waiting;  // in the order judged, at most kMaxMoveSides each
  };
  PolicyJudge(std::shared_ptr<const Site> site, JudgeOptions opt, std::shared_ptr<CrossFlow> cross);
  struct SiteOnly : HeaderAnnotator {
    explicit SiteOnly(PolicyJudge& j) : judge(j) {}
    void annotate(const EventEndpoints& ep, JsonWriter& w) override { judge.annotate_with(ep, w, false); }
    PolicyJudge& judge;
  };
  void annotate_with(const EventEndpoints& ep, JsonWriter& w, bool learned) const;
  const Device* learned_at(const IpAddr& ip) const;  // takes learned_lock

  const Device* device_at(const IpAddr& ip, const std::array<uint8_t, 6>& mac) const;
  const Device* judged_device(const IpAddr& ip, const std::array<uint8_t, 6>& mac) const;
  const Device* bind_by_fingerprint(const FlowSummary& f);
  // The device whose DICOM fingerprint `calling_ae` is, once a flow has bound it to an address.
  const Device* fingerprint_owner(std::string_view calling_ae) const;
  // The zone of an address (-1 none; zones.size() = external); `dev`, the device at it, places it
  // in its `zone:` when no zone's cidrs hold it (a device bound by MAC has no address to place).
  int zone_of(const IpAddr& ip, const Device* dev = nullptr) const;
  bool internal(const IpAddr& ip) const;
  // Whether `f` went to a group: multicast, the limited broadcast, or a directed broadcast (the
  // last address of a subnet the site declares, or any address its frames sent to the Ethernet
  // broadcast address) that nothing answered. Many listeners, none of them a peer host.
  bool group_destination(const FlowSummary& f) const;
  uint64_t roles_of(const IpAddr& ip) const;
  bool load_baseline(const std::string& path, Errors& errs);

  SideResult eval_side(const FlowSummary& f, const Device& dev, bool dev_is_client, const Device* peer_dev,
                       uint64_t peer_roles, std::string_view app, bool enc, EventOutput& out);
  // eval_side's steps, in order.
  // `port_only`: the first rule whose ports and peer the flow matched but whose application its
  // content could not be shown to be (content nothing recognised), when no rule matches.
  const FlowRule* find_declared_flow(const Side& s, const FlowRule*& port_only) const;
  SideResult judge_declared_flow(const Side& s, const FlowRule& match);
  SideResult judge_undeclared_flow(const Side& s, const FlowRule* port_only);
  // Whether an inbound flow of the model names the peer (its role, or any / any_internal / external),
  // whatever its port and application: a peer an access list of the device would let in.
  bool inbound_peer(const Side& s) const;
  void check_phi_cleartext(const Side& s, const FlowRule* match);
  void check_hl7_against_model(const Side& s);
  void check_dicom_against_model(const Side& s);
  void check_remote_endpoint(const Side& s);
  void check_tls(const Side& s);
  void check_fingerprints(const Side& s);
  void check_authentication(const Side& s);
  void eval_dicom_flow(const FlowSummary& f, const Device* cdev, const Device* sdev, EventOutput& out);
  // Pairs a C-MOVE served by a device (`sdev`) with the follow-up association its SCP opened, or a
  // follow-up from a device (`cdev`) with the C-MOVE it serves, into move_matches_.
  void correlate_move(const FlowSummary& f, const Device* cdev, const Device* sdev);
  // dicom.move_address_undeclared for each pair of move_matches_ whose receiving address the site
  // does not bind to the destination AE.
  void check_move_followups(const FlowSummary& f, EventOutput& out);
  // Whether the site binds AE title `ae` to `ip` (a role's or a device's, the device at `ip` too).
  // `dev` is the device at `ip` as the flow bound it (by MAC too), or null to look it up by address.
  bool ae_bound_at(std::string_view ae, const IpAddr& ip, const Device* dev = nullptr) const;
  void track_fanout(const FlowSummary& f, const Device& dev, EventOutput& out);
  // A port scan of a device by a host that is no device of the site (track_fanout counts those
  // of devices).
  void track_inbound_scan(const FlowSummary& f, const Device& dev, EventOutput& out);
  // A fan-out by a host that is no device of the site (`f`'s initiator): internal hosts reached
  // on one service, counted whether or not they are devices, written for the device reached last.
  void track_unbound_fanout(const FlowSummary& f, const Device* sdev, EventOutput& out);
  // The ports tried between `f`'s two hosts, keyed by `key` in `by` (a device's targets or its
  // scanners): a new entry only below the cap (stale ones dropped at most once a second, `swept`),
  // else nullptr with `full` counted.
  PortsTried* ports_tried(std::unordered_map<IpKey, PortsTried, IpKeyHash>& by, const IpKey& key, int64_t& swept,
                          int64_t t, uint64_t& full);
  // One more port `f` tried in `pt`: the scan's alert, if it crossed thresholds.scan_ports.
  void count_port(const FlowSummary& f, PortsTried& pt, Alert& alert, EventOutput& out);
  // One more flow at time t to `peer` in `hr` (`held` counts hosts held over all of its kind): the
  // number of hosts reached within the window once past thresholds.fanout_hosts (the count then
  // starts afresh), else 0.
  size_t count_host(HostsReached& hr, const IpKey& peer, int64_t t, size_t& held) const;
  // Drops from each service of `services` (a map whose values `reached` gives the HostsReached of)
  // the hosts reached no more within the scan window, counted off `held`, then the services left
  // with none and not alerted within scan_realert_s (whose repeats must still be recognised).
  template <class Services, class Reached>
  void drop_stale_hosts(Services& services, Reached reached, int64_t t, size_t& held) const;
  // A finding past a threshold at time t: written unless one was written for the same within
  // scan_realert_s (`alerted`), which is counted as a repeat.
  bool due(int64_t& alerted, int64_t t, EventOutput& out);
  void emit(const FlowSummary& f, Alert& a, EventOutput& out);
  // True when `a` is over its (rule, device) limit (thresholds.alert_limit per alert_limit_window_s):
  // counted, and noted once per window by a policy.rate_limited alert.
  bool rate_limited(const FlowSummary& f, Alert& a, EventOutput& out);
  void cite(Alert& a, const Model* m, std::string_view qid) const;
  // Cites every MDS2 question a rule's sources name (others are documents), also into `cited`.
  void cite_sources(Alert& a, const Model* m, const std::vector<std::string>& sources,
                    std::vector<std::string>* cited = nullptr) const;

  std::shared_ptr<const Site> site_;
  JudgeOptions opt_;
  std::shared_ptr<CrossFlow> cross_;
  // The cross-flow state, by its old names (references into *cross_).
  std::unordered_map<IpKey, uint32_t, IpKeyHash>& learned_;
  std::unordered_map<uint32_t, IpAddr>& fp_address_;
  std::unordered_map<std::string, std::vector<IpAddr>>& ae_seen_;
  std::unordered_map<IpKey, std::deque<int64_t>, IpKeyHash>& rejects_;
  std::unordered_map<IpKey, int64_t, IpKeyHash>& reject_alerted_;
  std::vector<DeviceState>& dev_state_;
  std::unordered_map<uint64_t, Severity>& emitted_;
  std::unordered_map<uint64_t, AlertRate>& alert_rate_;
  std::unordered_map<IpKey, uint32_t, IpKeyHash> dev_by_ip_;
  std::vector<std::pair<std::string, uint32_t>> fp_ae_, fp_msh3_;
  std::vector<std::pair<std::array<uint8_t, 6>, uint32_t>> dev_by_mac_;
  std::unordered_map<IpKey, uint64_t, IpKeyHash> roles_by_ip_;       // exact addresses
  std::vector<uint64_t> dev_roles_;                                   // per device: its roles: bits
  std::vector<int> dev_zone_;                                         // per device: its zone: index, -1 none
  std::vector<std::pair<Cidr, uint64_t>> roles_by_cidr_;              // networks
  std::unordered_set<IpKey, IpKeyHash> subnet_broadcasts_;            // last address of each declared IPv4 subnet
  ZoneLookup zones_;                                                  // zones' cidrs and devices' zone: addresses
  std::vector<uint8_t> zone_matrix_;                                  // nz*nz allowed bits
  std::unordered_map<std::string, std::vector<Cidr>> ae_bindings_;    // AE title -> bound addresses or networks
  std::unordered_map<uint64_t, Severity> baseline_;  // accepted triple -> highest severity accepted
  std::vector<const char*> lateral_apps_;
  Severity max_sev_ = Severity::info;
  uint64_t alerts_written_ = 0, suppressed_ = 0, repeats_ = 0;
  std::vector<MoveMatch> move_matches_;  // of the flow being judged
  uint64_t moves_full_ = 0;
  uint64_t emitted_full_ = 0, learned_full_ = 0, ae_reset_ = 0, reject_reset_ = 0, scan_peers_full_ = 0, scanners_full_ = 0, sweepers_full_ = 0, rate_keys_full_ = 0;
  std::string scratch_;
  SiteOnly site_only_{*this};
};

}  // namespace medmon::policy
