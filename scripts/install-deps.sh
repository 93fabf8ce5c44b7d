#!/usr/bin/env bash
# Installs the Debian 12 packages medmon needs to build, run and test.
#   install-deps.sh          build + run dependencies
#   install-deps.sh --test   also the real peers and tools the test suite drives
#   install-deps.sh --captures  also what the capture generators (pcaps/*/make-*) drive
# Idempotent: only missing packages are installed; apt-get update runs once when needed.
set -euo pipefail
BUILD=(build-essential cmake pkg-config libpcap-dev libndpi-dev libdcmtk-dev libyaml-cpp-dev
       catch2 nlohmann-json3-dev libcli11-dev libfmt-dev libssl-dev zlib1g-dev
       libzip-dev libpugixml-dev libpoppler-cpp-dev ieee-data)
TEST=(dcmtk python3 python3-hl7 python3-yaml python3-jsonschema tcpdump tshark libndpi-bin chromium
      tcpreplay iproute2 ethtool util-linux curl clang-14 libclang-rt-14-dev clickhouse-server clickhouse-client)
# Only the capture generators need these: the committed captures are what the tests read.
CAPTURES=(dcmtk python3-hl7 tcpdump curl openssh-client openssh-server smbclient nmap
          dnsmasq-base isc-dhcp-client busybox)
want=("${BUILD[@]}")
[ "${1:-}" = "--test" ] && want+=("${TEST[@]}")
[ "${1:-}" = "--captures" ] && want+=("${TEST[@]}" "${CAPTURES[@]}")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "install-deps: all packages present"; exit 0; fi
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
echo 'wireshark-common wireshark-common/install-setuid boolean false' | $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
