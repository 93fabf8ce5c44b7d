#pragma once
// Passive asset inventory. Judges nothing: it watches every ending flow (MAC, VLAN, services
// offered and used, TLS SNI, DICOM/HL7 identity from the dissectors' flow facts) and every
// `dicom` event (implementation UID/version of each side, manufacturer/model from stored
// datasets) and `dhcp` event (host name, vendor class and option list by MAC, over DHCPv4 and
// DHCPv6; the address a server gave that MAC), keeps a bounded table of devices keyed by IP, and writes an `asset` event when a
// device is first seen or something about it changes.
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sensor/assets/impl_table.h"
#include "sensor/assets/oui_table.h"
#include "sensor/engine/flow_judge.h"

namespace medmon {

struct AssetOptions {
  size_t max_devices = 65536;     // beyond this, new devices are counted in assets.dropped
  size_t max_list = 32;           // per device: AE titles, services, SNIs, HL7 apps, VLANs
  // Service entries (offered + used) over all devices: a flood from many sources to random
  // ports gives each tracked source a new entry per port, up to max_list each (measured: +5 MiB
  // per million SYNs at 65 536 devices); beyond this, counted in assets.services_full.
  size_t max_services = size_t{1} << 18;
  // MACs whose DHCP names are remembered; beyond, the least recently seen is forgotten
  // (assets.dhcp_evicted).
  size_t max_dhcp_clients = 65536;
  bool internal_only = true;      // track private/link-local/loopback/ULA addresses (and bound devices)
};

class AssetTracker : public FlowJudge, public EventObserver {
 public:
  // 16 bytes: a device may hold 2 x max_list of them (the name is interned, see service_name).
  struct Service {
    uint64_t flows = 0;
    uint16_t port = 0;
    uint16_t name = 0;  // index into the tracker's names: medmon app or nDPI protocol, lower case
    uint8_t proto = 0;
  };
  struct HL7App {
    std::string app, facility;
  };
  struct Device {
    IpAddr ip;
    std::array<uint8_t, 6> mac{};
    bool mac_from_dhcp = false;  // the MAC is the one a DHCP exchange named, no frame of it seen yet
    // The MAC the address had before `mac` (frames of another device, zero = none), and how often
    // the address went back to it: two MACs taking turns (VRRP/HSRP, a SPAN seeing a routed
    // device on both sides) are one device, reported once; the turns after are counted.
    std::array<uint8_t, 6> previous_mac{};
    uint64_t mac_flaps = 0;
    bool flap_untold = false;  // a turn changed the MAC since the last event: told at finish()
    std::string mac_vendor;
    std::vector<uint16_t> vlans;
    Timestamp first_seen, last_seen;
    std::string device, zone, model;          // from the site policy; model "" = unbound
    std::vector<std::string> ae_titles;
    std::string impl_class_uid, impl_version, product, product_vendor;
    std::string manufacturer, model_name, software_versions, station_name, device_serial;
    std::vector<HL7App> hl7_apps;
    std::vector<DeviceIdentity> identities;   // as protocols state them (HL7 OBX-18, PRT, ...)
    std::vector<std::string> sni;             // TLS server names the device asked for
    std::vector<std::string> tls_versions;    // TLS versions its sessions settled on, either side
    std::vector<std::string> dns_names;       // names it looked up
    std::string hostname, dhcp_vendor_class, dhcp_fingerprint;  // DHCP options 12, 60, 55 of its MAC
    std::string dhcp_fingerprint6;                               // DHCPv6 option 6 (ORO) of its MAC
    std::vector<Service> offered, used;
    uint64_t flows = 0, bytes = 0;
    std::vector<const char*> changes;         // pending change reasons (static names)
    // Known only from a DHCP exchange whose client then declined the address (another node holds
    // it, and no frame or flow of it was seen): no device to list. A later sighting brings it back.
    bool withdrawn = false;
    bool bound_checked = false;
    uint64_t bound_generation = 0;            // the annotator's generation when it was last bound
  };

  // Maps a device to the policy model it is bound to ("" = unbound).
  using Binder = std::function<std::string(const IpAddr&, const std::array<uint8_t, 6>&)>;

  // The tables may be null (no vendor / product names); they must outlive the tracker.
  AssetTracker(const OuiTable* oui, const ImplTable* impl, AssetOptions opt = {});

  // The policy's annotator gives a device's name and zone (optional).
  void set_annotator(HeaderAnnotator* a) { annotator_ = a; }
  void set_binder(Binder b) { binder_ = std::move(b); }
  // Binds every known device again (after a policy reload): changed ones are reported.
  void rebind_all();

  FlowVerdict judge(const FlowSummary& flow, EventOutput& out) override;
  void finish(Timestamp now, EventOutput& out) override;
  // Writes the asset events of devices changed since the last flow end (finish() does this too,
  // and adds the inventory's counters).
  void flush(Timestamp now, EventOutput& out) { flush_dirty(out, now); }
  void on_event(std::string_view type, std::string_view line) override;

  // What one `dicom` event says about its two devices, read from its line without the
  // inventory: live workers read it outside the inventory's lock and take the lock to apply it.
  struct DicomSighting {
    enum Field : uint8_t { manufacturer, model, software_versions, station_name, device_serial };
    struct Impl {
      bool have_uid = false, have_version = false;
      std::string uid, version;
    };
    struct Stored {  // an identity field of a dataset stored over the association
      bool by_client;
      Field field;
      std::string value;
    };
    IpAddr client, server;
    Timestamp ts;
    Impl client_impl, server_impl;  // from rq (the calling side) and ac (the called side)
    bool have_calling_ae = false, have_called_ae = false;
    std::string calling_ae, called_ae;
    std::vector<Stored> stored;
  };
  // False when the line names no two addresses.
  static bool read_dicom(std::string_view line, DicomSighting& out);
  void apply(const DicomSighting& s);

  // What one `dhcp` event says: a client names its MAC (and its address when it has one); a
  // server's ACK (a BOOTP reply; DHCPv6: REPLY) gives a MAC its address, and a REPLY names the
  // client's own. A DHCPv6 client's MAC is the one its DUID holds (DUID-LL/LLT); its host name
  // the first label of its FQDN.
  struct DhcpSighting {
    Timestamp ts;
    std::array<uint8_t, 6> mac{};
    bool have_mac = false, from_client = false, v6 = false;
    // The client's own (DHCPv4 ciaddr; DHCPv6 the address it sent from, often link-local, which
    // a REPLY answers), or the one a DHCPv4 ACK gives it; family 0 = none
    IpAddr address;
    IpAddr assigned;  // DHCPv6: the IA_NA address a REPLY gives
    IpAddr sender;    // the datagram's source: a client's address is its own only when it sends from it
    // A client's message whose frame came from another MAC than its chaddr (DHCPv6: its DUID)
    // names (no relay): `mac` is then the frame's, `claimed` the other, and the server's answer
    // to that transaction (`xid`) ties the claimed MAC to nothing.
    // A client's DECLINE: the address it found in use by another node (DHCPv4 option 50, the
    // IA_NA address of DHCPv6's), which is then no longer tied to its MAC (the device there loses
    // the MAC too when only DHCP gave it).
    IpAddr declined;
    bool have_claimed = false;
    std::array<uint8_t, 6> claimed{};
    uint32_t xid = 0;
    std::string hostname, vendor_class, fingerprint;  // fingerprint: option 55, or DHCPv6's ORO when v6
  };
  // False when the line is no DHCP message of an Ethernet address.
  static bool read_dhcp(std::string_view line, DhcpSighting& out);
  void apply(const DhcpSighting& s);

  const Device* find(const IpAddr& ip) const;
  size_t size() const { return devices_.size(); }
  std::string_view service_name(const Service& s) const { return names_[s.name]; }
  size_t services() const { return services_; }
  uint64_t dropped() const { return dropped_; }

  // Is this an address medmon inventories by default (private, loopback, link-local, ULA)?
  static bool is_internal(const IpAddr& ip);

 private:
  struct Key {
    std::array<uint8_t, 16> b{};
    uint8_t family = 0;
    friend bool operator==(const Key& x, const Key& y) { return x.family == y.family && x.b == y.b; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      uint64_t h = 1469598103934665603ull ^ k.family;
      for (auto c : k.b) { h ^= c; h *= 1099511628211ull; }
      return static_cast<size_t>(h);
    }
  };
  static Key key_of(const IpAddr& ip) { Key k; k.b = ip.b; k.family = ip.family; return k; }

  Device* device(const IpAddr& ip, Timestamp ts, bool force);
  void side(Device& d, const FlowSummary& f, bool is_client);
  void set_mac(Device& d, const std::array<uint8_t, 6>& mac);
  // Frames of another MAC than the device's: a new device at the address, or a turn back.
  void frame_mac(Device& d, const std::array<uint8_t, 6>& mac, Timestamp start);
  void dhcp_names(Device& d, uint64_t mac);
  void hl7_app(Device& d, const std::string* msh3, const std::string* msh4);
  void bind(Device& d);
  void emit(Device& d, EventOutput& out, Timestamp ts);
  void flush_dirty(EventOutput& out, Timestamp ts);
  void withdraw(Device& d);  // after a DHCP DECLINE took back what the exchange gave it
  void mark(Device& d, const char* why);
  bool add_unique(Device& d, std::vector<std::string>& list, std::string_view v, const char* why);
  void set_field(Device& d, std::string& field, std::string_view v, const char* why);
  uint16_t intern(std::string_view name);
  void add_service(std::vector<Service>& list, uint16_t name, uint8_t proto, uint16_t port, bool& added, bool& full);

  const OuiTable* oui_;
  const ImplTable* impl_;
  AssetOptions opt_;
  HeaderAnnotator* annotator_ = nullptr;
  Binder binder_;
  std::unordered_map<Key, size_t, KeyHash> index_;
  std::deque<Device> devices_;      // first-seen order (deterministic output); stable references
  std::vector<size_t> dirty_;
  // Counted here and added to the output's counters at finish(): the tracker also runs inside
  // worker threads that own their output.
  uint64_t dropped_ = 0, list_full_ = 0, events_ = 0, services_full_ = 0, dhcp_evicted_ = 0, mac_flaps_ = 0;
  bool quiet_ = false;              // mark() records nothing: a MAC turn already told
  std::vector<size_t> flapped_;     // devices with flap_untold set (each once)
  size_t withdrawn_ = 0;  // devices withdrawn now (not counted in assets.devices)
  // DHCP names by MAC (48 bits), kept apart from the devices: a client names itself before it
  // has an address, from 0.0.0.0. The names go to the addresses the exchanges tied to the MAC (an
  // ACK's or REPLY's, or the client's own when it sends from it), while the device there has that MAC.
  struct DhcpNames {
    std::string hostname, vendor_class, fingerprint, fingerprint6;
    // Tied addresses, one of each kind (family 0 = none): DHCPv4's (an ACK's or the client's own),
    // DHCPv6's IA_NA address a REPLY gave, and the address the DHCPv6 client sends from.
    std::array<IpAddr, 3> address;
    std::list<uint64_t>::iterator recent;  // its place in dhcp_recent_
  };
  DhcpNames& dhcp_entry(uint64_t mac);
  std::unordered_map<uint64_t, DhcpNames> dhcp_by_mac_;
  // Transactions of requests sent in another MAC's name, by that MAC (bounded, the oldest
  // forgotten first): the answer echoes the claimed MAC and must not move its address.
  std::unordered_map<uint64_t, uint32_t> dhcp_claimed_xid_;
  std::deque<uint64_t> dhcp_claimed_order_;
  std::list<uint64_t> dhcp_recent_;  // the MACs of dhcp_by_mac_, most recently seen first
  size_t services_ = 0;                             // entries in all offered/used lists
  std::vector<std::string> names_;                  // service names (bounded: kMaxNames)
  std::unordered_map<std::string, uint16_t> name_index_;
  JsonBuffer scratch_;
  std::string scratch2_;
};

}  // namespace medmon
