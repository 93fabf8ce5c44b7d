#!/usr/bin/env bash
# Captures DHCPv4 and DHCPv6 made by real software in private network namespaces:
#   dhcp-dora.pcap  dnsmasq serving three clients on one bridge:
#     ct-room3          ISC dhclient: DORA, restart (INIT-REBOOT REQUEST/ACK), RELEASE
#     infusion-pump-12  busybox udhcpc: DORA, renew on SIGUSR1 (unicast REQUEST/ACK), RELEASE on exit
#     monitor-bed7      ISC dhclient holding a stale lease for another network: REQUEST, NAK, then DORA
#   dhcpv6.pcap     dnsmasq serving four DHCPv6 clients (ISC dhclient -6), one behind a dnsmasq relay:
#     ct-room3          DUID-LLT: SOLICIT/ADVERTISE/REQUEST/REPLY, restart (CONFIRM/REPLY), RELEASE/REPLY
#     infusion-pump-12  DUID-LL, rapid commit: SOLICIT/REPLY, RELEASE/REPLY
#     monitor-bed7      stateless: INFORMATION-REQUEST/REPLY
#     xray-mobile-2     behind the relay: RELAY-FORW/RELAY-REPL carrying SOLICIT/ADVERTISE/REQUEST/REPLY
#   dhcpv6-renew.pcap  ISC dhcpd -6 (short lifetimes, prefix delegation) serving two ISC dhclient -6:
#     ventilator-4      address and prefix (IA_NA, IA_PD): SOLICIT/ADVERTISE/REQUEST/REPLY, RENEW/REPLY
#                       at T1, a RENEW the stopped server misses, REBIND/REPLY at T2, RELEASE/REPLY
#     infusion-pump-13  its script refuses the address: SOLICIT/ADVERTISE/REQUEST/REPLY, DECLINE/REPLY,
#                       then SOLICIT/ADVERTISE again
# Usage: make-captures.sh [OUTDIR]   (default: this directory). Run as root (unshare -n).
# Needs (Debian): dnsmasq-base isc-dhcp-client isc-dhcp-server busybox tcpdump iproute2 util-linux.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(realpath -m "${1:-$HERE}")
# A client that misses a reply retransmits and the exchange differs from the one described in
# README.md (busybox udhcpc loses the unicast renew ACK when it arrives before the socket it sent
# from is closed): the capture is then made again in a fresh namespace.
if [ -z "${IN_NETNS:-}" ]; then
  for part in v4 v6 v6r; do
    for try in 1 2 3 4 5; do
      rc=0; IN_NETNS=$part unshare -n "$0" "$OUT" || rc=$?
      [ $rc -eq 3 ] || break
      echo "make-captures: $part attempt $try missed a reply (another packet count than expected), again" >&2
    done
    [ $rc -eq 0 ] || exit $(( rc == 3 ? 1 : rc ))
  done
  exit 0
fi
case "$IN_NETNS" in v4) EXPECTED_PACKETS=20 ;; v6) EXPECTED_PACKETS=18 ;; *) EXPECTED_PACKETS=19 ;; esac
W=$(mktemp -d)
# Every client namespace is held by a sleep started here: killing the jobs removes them all.
# On failure the logs of the server and clients are shown.
# (tail must not fail: under set -e that would end the trap before the kill)
trap 'rc=$?; [ $rc -eq 0 ] || [ $rc -eq 3 ] || tail -n 30 "$W"/*.log "$W"/*.err >&2 2>/dev/null || true
      kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"' EXIT

NET=10.77.3          # a private range (the asset inventory keeps private addresses); the server is .1 (MAC 00:00:5e:00:53:fe)
NET6=fd77:3:         # the same for IPv6 (a ULA prefix): the server is fd77:3::1, its link-local from its MAC
ip link set lo up
ip link add br0 type bridge
ip link set br0 address 00:00:5e:00:53:fe
if [ "$IN_NETNS" != v4 ]; then
  # No duplicate address detection: link-local addresses are usable at once (a private bridge)
  sysctl -qw net.ipv6.conf.br0.accept_dad=0
  ip addr add $NET6:1/64 dev br0 nodad
else
  ip addr add $NET.1/24 dev br0
fi
ip link set br0 up

# newclient NAME MAC: a namespace with one interface "eth0" bridged to br0 on the server side
# (NAME is short: the server side's interface is "s-NAME", at most 15 characters)
declare -A NS
newclient() {
  unshare -n sleep 100000 & NS[$1]=$!
  sleep 0.2
  ip link add "s-$1" type veth peer name "c-$1"
  ip link set "c-$1" netns "${NS[$1]}"
  ip link set "s-$1" master br0 up
  inns "$1" ip link set "c-$1" name eth0
  inns "$1" ip link set eth0 address "$2"
  [ "$IN_NETNS" = v4 ] || inns "$1" sysctl -qw net.ipv6.conf.eth0.accept_dad=0
  inns "$1" ip link set lo up
  inns "$1" ip link set eth0 up
}
# inns NAME CMD...: run CMD in the NAME namespace; bgns the same in the background (nsenter
# execs CMD, so $! is CMD's process id and the exit trap ends it)
inns() { local n=$1; shift; nsenter -t "${NS[$n]}" -n -- "$@"; }
bgns() { local n=$1; shift; nsenter -t "${NS[$n]}" -n -- "$@" & }

# waitfor FILE PATTERN [COUNT]: until a client log or lease file shows the expected state COUNT
# times (10 s at most)
waitfor() { for _ in $(seq 100); do
              n=$(grep -c "$2" "$1" 2>/dev/null) || true; [ "${n:-0}" -ge "${3:-1}" ] && return 0
              sleep 0.1; done
            echo "timeout waiting for '$2' in $1" >&2; return 1; }

if [ "$IN_NETNS" = v6r ]; then
  # The client script puts the leased address on the client's interface in its namespace; for
  # a client named in $W/decline it exits 3 instead, which dhclient takes for a duplicate
  # address: it sends a DECLINE.
  cat > "$W/dhclient6-script" <<SH
#!/bin/sh
[ ! -e "$W/decline" ] || { [ "\$reason" != BOUND6 ] || exit 3; }
case "\$reason" in
  BOUND6|RENEW6|REBIND6) [ -z "\$new_ip6_address" ] || ip -6 addr replace "\$new_ip6_address/\$new_ip6_prefixlen" dev "\$interface" nodad ;;
  EXPIRE6|RELEASE6|STOP6) [ -z "\$old_ip6_address" ] || ip -6 addr del "\$old_ip6_address/\$old_ip6_prefixlen" dev "\$interface" ;;
esac
exit 0
SH
  chmod +x "$W/dhclient6-script"
  dhc6() { local how=$1 n=$2; shift 2
    $how "$n" dhclient -6 -cf "$W/$n.conf" -lf "$W/$n.leases" -pf "$W/$n.pid" -sf "$W/dhclient6-script" "$@" eth0; }
  # The server: lifetimes of a minute, T1 6 s and T2 12 s (so that a client renews and rebinds
  # within the capture), addresses and /56 prefixes of a ULA fixed by MAC (the one of the
  # client's DUID-LL), a DUID-EN of enterprise 32473.
  cat > "$W/dhcpd6.conf" <<CONF
server-duid EN 32473 "MEDMON";
default-lease-time 60;
preferred-lifetime 40;
option dhcp-renewal-time 6;
option dhcp-rebinding-time 12;
option dhcp6.name-servers $NET6:53;
option dhcp6.domain-search "ward3.hospital.example";
subnet6 $NET6:/64 {
  range6 $NET6:100 $NET6:1ff;
  prefix6 fd77:60:100:: fd77:60:f00:: /56;
}
host ventilator-4 { hardware ethernet 00:00:5e:00:53:05; fixed-address6 $NET6:105; fixed-prefix6 fd77:60:500::/56; }
host infusion-pump-13 { hardware ethernet 00:00:5e:00:53:06; fixed-address6 $NET6:106; }
CONF
  : > "$W/dhcpd6.leases"
  # dhcpd -6 in the foreground; started again with the same lease file after a stop
  dhcpd6() { dhcpd -6 -f -d -cf "$W/dhcpd6.conf" -lf "$W/dhcpd6.leases" -pf "$W/dhcpd6.pid" br0 \
               >>"$W/dhcpd6.log" 2>&1 & DHCPD=$!; sleep 1; }
  # waitll NAME: until the client's interface has its link-local address (dhclient -6 exits without)
  waitll() { for _ in $(seq 50); do [ -z "$(inns "$1" ip -6 addr show dev eth0 scope link)" ] || return 0; sleep 0.1; done; }
  dhcpd6
  tcpdump -i br0 -s 0 -U --immediate-mode -Z root -w "$W/cap.pcap" "udp port 546 or udp port 547" \
    2>>"$W/tcpdump.log" & CAP=$!
  sleep 1

  # --- c5, ventilator-4 (DUID-LL; an address and a prefix): SOLICIT/ADVERTISE/REQUEST/REPLY;
  # at T1 RENEW/REPLY; the server stopped: the next RENEW is lost; the server started again:
  # REBIND/REPLY at T2; then RELEASE/REPLY
  newclient c5 00:00:5e:00:53:05; waitll c5
  echo 'send fqdn.fqdn "ventilator-4.ward3.hospital.example."; send fqdn.encoded on; send fqdn.server-update off;' > "$W/c5.conf"
  dhc6 bgns c5 -N -P -D LL -d >>"$W/c5.log" 2>&1; DHC=$!
  waitfor "$W/c5.log" 'Bound to lease'
  waitfor "$W/c5.log" 'RCV: Reply message' 2 # the renewal at T1 (after 6 s; waitfor waits 10)
  kill -TERM $DHCPD; wait $DHCPD 2>/dev/null || true
  waitfor "$W/c5.log" 'XMT: Renew' 2
  dhcpd6
  waitfor "$W/c5.log" 'RCV: Reply message' 3
  sleep 0.5
  kill -TERM $DHC; wait $DHC 2>/dev/null || true
  dhc6 inns c5 -N -P -D LL -r >>"$W/c5.log" 2>&1
  sleep 0.5

  # --- c6, infusion-pump-13 (DUID-LL): SOLICIT/ADVERTISE/REQUEST/REPLY, DECLINE/REPLY,
  # SOLICIT/ADVERTISE
  newclient c6 00:00:5e:00:53:06; waitll c6
  echo 'send fqdn.fqdn "infusion-pump-13.ward3.hospital.example."; send fqdn.encoded on; send fqdn.server-update off;' > "$W/c6.conf"
  touch "$W/decline"
  # dhclient solicits again at once after a declined address: stopped at that ADVERTISE, before
  # it requests (it waits a second for more)
  dhc6 bgns c6 -D LL -d >>"$W/c6.log" 2>&1; DHC=$!
  waitfor "$W/c6.log" 'RCV: Advertise message' 2
  kill -TERM $DHC; wait $DHC 2>/dev/null || true

  sleep 0.5; kill -INT $CAP; wait $CAP 2>/dev/null || true
  grep -h captured "$W/tcpdump.log" >&2
  n=$(tcpdump -r "$W/cap.pcap" 2>/dev/null | wc -l)
  [ "$n" -eq $EXPECTED_PACKETS ] || { echo "make-captures: $n packets" >&2; exit 3; }
  mkdir -p "$OUT"; cp "$W/cap.pcap" "$OUT/dhcpv6-renew.pcap"
  ls -l "$OUT/dhcpv6-renew.pcap"
  exit 0
fi

if [ "$IN_NETNS" = v6 ]; then
  # The client script only puts the leased address on the client's interface in its namespace.
  cat > "$W/dhclient6-script" <<'SH'
#!/bin/sh
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6) ip -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" dev "$interface" nodad ;;
  EXPIRE6|RELEASE6|STOP6) [ -z "$old_ip6_prefixlen" ] || ip -6 addr del "$old_ip6_address/$old_ip6_prefixlen" dev "$interface" ;;
esac
exit 0
SH
  chmod +x "$W/dhclient6-script"
  # dhc6 inns|bgns NAME ARGS...: ISC dhclient -6 in the NAME namespace with its own config, lease
  # and pid files
  dhc6() { local how=$1 n=$2; shift 2
    $how "$n" dhclient -6 -cf "$W/$n.conf" -lf "$W/$n.leases" -pf "$W/$n.pid" -sf "$W/dhclient6-script" "$@" eth0; }
  # conf6 NAME FQDN [VENDOR-CLASS [USER-CLASS]] [more lines on stdin]: a dhclient -6 configuration
  # sending the FQDN (39), vendor class (16, enterprise 32473, the documentation number of
  # RFC 5612) and user class (15); dhclient has no names for the last two, they are declared here.
  conf6() { { echo 'option dhcp6.mm-vendor-class code 16 = { unsigned integer 32, unsigned integer 16, text };'
              echo 'option dhcp6.mm-user-class code 15 = { unsigned integer 16, text };'
              echo "send fqdn.fqdn \"$2\";"; echo 'send fqdn.encoded on;'; echo 'send fqdn.server-update off;'
              echo 'also request dhcp6.fqdn;'
              [ -z "${3:-}" ] || echo "send dhcp6.mm-vendor-class 32473 ${#3} \"$3\";"
              [ -z "${4:-}" ] || echo "send dhcp6.mm-user-class ${#4} \"$4\";"
              cat; } > "$W/$1.conf"; }

  # The relay: a namespace on br0 (fd77:3::2) with a second link (fd77:5::1) to the client
  # behind it; dnsmasq relays between them.
  newclient r 00:00:5e:00:53:fd
  inns r ip addr add fd77:3::2/64 dev eth0 nodad
  unshare -n sleep 100000 & NS[c4]=$!
  sleep 0.2
  inns r ip link add r-c4 type veth peer name eth0 netns "${NS[c4]}"
  inns r sysctl -qw net.ipv6.conf.r-c4.accept_dad=0
  inns r ip addr add fd77:5::1/64 dev r-c4 nodad
  inns r ip link set r-c4 up
  inns c4 ip link set eth0 address 00:00:5e:00:53:04
  inns c4 sysctl -qw net.ipv6.conf.eth0.accept_dad=0
  inns c4 ip link set lo up
  inns c4 ip link set eth0 up

  # The server: DUID-EN (enterprise 32473, identifier "MEDMON"), fixed addresses by MAC (dnsmasq
  # reads the MAC of an on-link client from its frames, of a relayed one from the relay).
  dnsmasq --no-daemon --conf-file=/dev/null --port=0 --user=root --group=root --pid-file= \
    --interface=br0 --bind-interfaces --dhcp-authoritative \
    --dhcp-range=$NET6:100,$NET6:1ff,64,1h --dhcp-range=fd77:5::100,fd77:5::1ff,64,1h \
    --dhcp-duid=32473,4d:45:44:4d:4f:4e \
    --dhcp-host=00:00:5e:00:53:01,[$NET6:101] --dhcp-host=00:00:5e:00:53:02,[$NET6:102] \
    --dhcp-host=00:00:5e:00:53:04,[fd77:5::104] \
    --dhcp-option=option6:dns-server,[$NET6:53] --dhcp-option=option6:domain-search,ward3.hospital.example \
    --dhcp-leasefile="$W/dnsmasq.leases" --log-dhcp --log-facility="$W/dnsmasq.log" \
    2>>"$W/dnsmasq.err" &
  bgns r dnsmasq --no-daemon --conf-file=/dev/null --port=0 --user=root --group=root --pid-file= \
    --dhcp-relay=fd77:5::1,$NET6:1 --log-facility="$W/relay.log" 2>>"$W/relay.err"
  sleep 1
  tcpdump -i br0 -s 0 -U --immediate-mode -Z root -w "$W/cap.pcap" "udp port 546 or udp port 547" \
    2>>"$W/tcpdump.log" & CAP=$!
  sleep 1

  # --- c1, ct-room3 (DUID-LLT, dhclient's default): SOLICIT/ADVERTISE/REQUEST/REPLY; stopped
  # by a signal and started again with its lease: CONFIRM/REPLY; then RELEASE/REPLY
  newclient c1 00:00:5e:00:53:01
  conf6 c1 ct-room3.ward3.hospital.example. ACME-CT-7 imaging </dev/null
  dhc6 bgns c1 -d >>"$W/c1.log" 2>&1; DHC=$!
  waitfor "$W/c1.log" 'Bound to lease'
  sleep 0.5
  kill -TERM $DHC; wait $DHC 2>/dev/null || true
  sleep 0.5
  dhc6 bgns c1 -d >>"$W/c1.log" 2>&1; DHC=$!
  waitfor "$W/c1.log" 'Bound to lease' 2
  sleep 0.5
  kill -TERM $DHC; wait $DHC 2>/dev/null || true
  dhc6 inns c1 -r >>"$W/c1.log" 2>&1
  sleep 0.5

  # --- c2, infusion-pump-12 (DUID-LL, rapid commit): SOLICIT/REPLY, then RELEASE/REPLY
  newclient c2 00:00:5e:00:53:02
  conf6 c2 infusion-pump-12.ward3.hospital.example. PUMPCO-GW <<'CONF'
send dhcp6.rapid-commit;
CONF
  dhc6 bgns c2 -D LL -d >>"$W/c2.log" 2>&1; DHC=$!
  waitfor "$W/c2.log" 'Bound to lease'
  sleep 0.5
  kill -TERM $DHC; wait $DHC 2>/dev/null || true
  dhc6 inns c2 -D LL -r >>"$W/c2.log" 2>&1
  sleep 0.5

  # --- c3, monitor-bed7 (stateless): INFORMATION-REQUEST/REPLY
  newclient c3 00:00:5e:00:53:03
  conf6 c3 monitor-bed7.ward3.hospital.example. </dev/null
  dhc6 bgns c3 -S -d >>"$W/c3.log" 2>&1; DHC=$!
  waitfor "$W/c3.log" 'PRC: Done'
  wait $DHC 2>/dev/null || true   # done: it exits

  # --- c4, xray-mobile-2 behind the relay: RELAY-FORW/RELAY-REPL carrying
  # SOLICIT/ADVERTISE/REQUEST/REPLY
  conf6 c4 xray-mobile-2.ward3.hospital.example. XRAYCO-M2 </dev/null
  dhc6 bgns c4 -d >>"$W/c4.log" 2>&1; DHC=$!
  waitfor "$W/c4.log" 'Bound to lease'
  sleep 0.5
  kill -TERM $DHC; wait $DHC 2>/dev/null || true

  sleep 0.5; kill -INT $CAP; wait $CAP 2>/dev/null || true
  grep -h captured "$W/tcpdump.log" >&2
  n=$(tcpdump -r "$W/cap.pcap" 2>/dev/null | wc -l)
  [ "$n" -eq $EXPECTED_PACKETS ] || { echo "make-captures: $n packets" >&2; exit 3; }
  mkdir -p "$OUT"; cp "$W/cap.pcap" "$OUT/dhcpv6.pcap"
  ls -l "$OUT/dhcpv6.pcap"
  exit 0
fi

# Scripts the clients run on lease events: they only set the address on the namespace's
# interface (the address is needed to send unicast renews and releases), nothing else.
cat > "$W/dhclient-script" <<'SH'
#!/bin/sh
case "$reason" in
  PREINIT) ip link set dev "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip addr flush dev "$interface"
    ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
  EXPIRE|FAIL|RELEASE|STOP) ip addr flush dev "$interface" ;;
esac
exit 0
SH
cat > "$W/udhcpc-script" <<'SH'
#!/bin/sh
case "$1" in
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
exit 0
SH
chmod +x "$W/dhclient-script" "$W/udhcpc-script"

dnsmasq --no-daemon --conf-file=/dev/null --port=0 --user=root --group=root --pid-file= \
  --interface=br0 --bind-interfaces --dhcp-authoritative --no-ping \
  --dhcp-range=$NET.100,$NET.150,255.255.255.0,1h \
  --dhcp-option=option:router,$NET.1 --dhcp-option=option:dns-server,$NET.53 \
  --dhcp-option=option:domain-name,ward3.hospital.example --dhcp-option=option:ntp-server,$NET.123 \
  --dhcp-leasefile="$W/dnsmasq.leases" --log-dhcp --log-facility="$W/dnsmasq.log" \
  2>>"$W/dnsmasq.err" &
sleep 1

# tcpdump writes into the private temp dir (its AppArmor profile and privilege drop refuse
# most other places); the finished capture is copied out at the end.
tcpdump -i br0 -s 0 -U --immediate-mode -Z root -w "$W/cap.pcap" "udp port 67 or udp port 68" \
  2>>"$W/tcpdump.log" & CAP=$!
sleep 1

# dhc inns|bgns NAME ARGS...: ISC dhclient in the NAME namespace with its own config, lease and
# pid files
dhc() { local how=$1 n=$2; shift 2
  $how "$n" dhclient -cf "$W/$n.conf" -lf "$W/$n.leases" -pf "$W/$n.pid" -sf "$W/dhclient-script" "$@" eth0; }

# --- c1, ct-room3 (ISC dhclient): DORA, restart with the lease it holds, release
newclient c1 00:00:5e:00:53:01
cat > "$W/c1.conf" <<'CONF'
send host-name "ct-room3";
send vendor-class-identifier "ACME-CT-7";
send dhcp-client-identifier "ACME-CT7-SN0417";
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, ntp-servers;
CONF
dhc bgns c1 -d >>"$W/c1.log" 2>&1; DHC=$!
waitfor "$W/c1.leases" 'fixed-address'
sleep 0.5
# stopped by a signal, without a release ("dhclient -x" would send a REQUEST of its own first)
kill -TERM $DHC; wait $DHC 2>/dev/null || true
sleep 0.5
dhc bgns c1 -d >>"$W/c1.log" 2>&1    # INIT-REBOOT: REQUEST of the address it holds
waitfor "$W/c1.log" 'bound to .* -- renewal' 2
sleep 0.5
dhc inns c1 -r >>"$W/c1.log" 2>&1   # DHCPRELEASE, stops the running client
sleep 0.5

# --- c2, infusion-pump-12 (busybox udhcpc): DORA, renew on SIGUSR1, release on exit (-R)
newclient c2 00:00:5e:00:53:02
bgns c2 busybox udhcpc -f -R -i eth0 -s "$W/udhcpc-script" -t 5 -T 1 \
  -x hostname:infusion-pump-12 -V PUMPCO-GW -O ntpsrv -O domain -O dns \
  >>"$W/udhcpc.log" 2>&1; UDHCPC=$!
waitfor "$W/udhcpc.log" 'lease of .* obtained'
sleep 0.5
kill -USR1 $UDHCPC
waitfor "$W/udhcpc.log" 'lease of .* obtained' 2
sleep 0.5
kill -TERM $UDHCPC; wait $UDHCPC 2>/dev/null || true
sleep 0.5

# --- c3, monitor-bed7 (ISC dhclient): a lease from another network is refused (NAK), then DORA
newclient c3 00:00:5e:00:53:03
cat > "$W/c3.conf" <<'CONF'
send host-name "monitor-bed7";
CONF
cat > "$W/c3.leases" <<'LEASE'
lease {
  interface "eth0";
  fixed-address 10.99.99.99;
  option subnet-mask 255.255.255.0;
  option dhcp-server-identifier 10.99.99.1;
  option dhcp-lease-time 86400;
  renew 4 2099/01/01 00:00:00;
  rebind 4 2099/01/01 00:00:00;
  expire 4 2099/01/01 00:00:00;
}
LEASE
dhc bgns c3 -d >>"$W/c3.log" 2>&1; DHC=$!
waitfor "$W/c3.log" 'bound to .* -- renewal'
sleep 0.5
kill -TERM $DHC; wait $DHC 2>/dev/null || true

sleep 0.5; kill -INT $CAP; wait $CAP 2>/dev/null || true
grep -h captured "$W/tcpdump.log" >&2
[ "$(tcpdump -r "$W/cap.pcap" 2>/dev/null | wc -l)" -eq $EXPECTED_PACKETS ] || exit 3
mkdir -p "$OUT"; cp "$W/cap.pcap" "$OUT/dhcp-dora.pcap"
ls -l "$OUT/dhcp-dora.pcap"
