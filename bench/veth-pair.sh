# Sourced by the live benchmarks (veth.sh, soak.sh): a private network namespace NS holding a
# veth pair, medmon capturing on `vb` and tcpreplay sending into `va`; IPv6 off so that the
# kernel adds no traffic of its own. nsx runs a command inside the namespace.
#   veth_pair NS [MTU]        veth_pair_del NS
veth_pair() {
  local ns=$1 mtu=${2:-}
  ip netns add "$ns"
  ip netns exec "$ns" ip link add va type veth peer name vb
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  for dev in va vb; do
    if [ -n "$mtu" ]; then ip netns exec "$ns" ip link set "$dev" mtu "$mtu" up
    else ip netns exec "$ns" ip link set "$dev" up; fi
  done
}
veth_pair_del() { ip netns del "$1" 2>/dev/null || true; }
nsx() { ip netns exec "$NS" "$@"; }
