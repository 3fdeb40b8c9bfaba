#!/usr/bin/env bash
# Skein branch-office NAT lab: network namespaces, NAT routers and an impaired WAN.
#
#   lab.sh up      PREFIX                     build the lab (namespaces PREFIX-*)
#   lab.sh down    PREFIX                     tear it down (idempotent)
#   lab.sh nat     PREFIX ra|rb cone|symmetric
#   lab.sh loss    PREFIX ra|rb PERCENT       0 removes the loss rules
#   lab.sh delay   PREFIX ra|rb MS            tc netem on the WAN side (if the kernel has it)
#   lab.sh isolate PREFIX ra|rb on|off        on: the branch reaches only the trackers (198.18.0.0/24),
#                                             not the other branches, so hole punching fails until off
#   lab.sh exec    PREFIX NODE CMD...         run CMD inside PREFIX-NODE
#   lab.sh status  PREFIX
#
# Topology (only 198.18.0.0/15 is used):
#
#   PREFIX-inet : bridge "br0" (pure L2, no address) = the simulated internet 198.18.0.0/16
#   PREFIX-t1   : eth0 198.18.0.1/16                  (tracker 1)
#   PREFIX-t2   : eth0 198.18.0.2/16                  (tracker 2)
#   PREFIX-ra   : wan 198.18.1.1/16, bridge "lan" 198.19.1.1/24 (NAT router A)
#   PREFIX-a1   : eth0 198.19.1.2/24 via 198.19.1.1
#   PREFIX-a2   : eth0 198.19.1.3/24 via 198.19.1.1
#   PREFIX-rb   : wan 198.18.2.1/16, bridge "lan" 198.19.2.1/24 (NAT router B)
#   PREFIX-b1   : eth0 198.19.2.2/24 via 198.19.2.1
#
# Every veth is created directly inside its namespaces ("ip link add A netns X
# type veth peer name B netns Y"), so nothing ever appears in the root
# namespace; deleting the namespaces removes every veth, bridge and nft table.
# No namespace has a link to the root namespace, so nothing can reach the
# machine's real interfaces.  Routers and trackers have no default route.
set -Eeuo pipefail

NODES=(inet t1 t2 ra rb a1 a2 b1)

die() { echo "lab.sh: $*" >&2; exit 2; }
need_prefix() {
  [[ -n "${1:-}" ]] || die "missing PREFIX"
  # namespace names become /run/netns/PREFIX-xxx; keep them simple
  [[ "$1" =~ ^[a-zA-Z0-9_]{1,24}$ ]] || die "PREFIX must match [a-zA-Z0-9_]{1,24}"
}
ns()  { echo "$P-$1"; }
# run inside a namespace without remounting /sys (fast); /proc/sys/net follows the netns
inn() { local n=$1; shift; nsenter --net="/run/netns/$(ns "$n")" -- "$@"; }
sysw() { local n=$1; shift; local kv; for kv in "$@"; do inn "$n" sysctl -qw "$kv"; done; }

base_sysctls() {   # for every namespace
  local n=$1
  ip -n "$(ns "$n")" link set lo up
  # IPv4-only lab: no link-local v6 addresses, no DAD delays, no v6 leakage
  sysw "$n" net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  sysw "$n" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  sysw "$n" net.ipv4.ip_forward=0
}

bridge_ns_sysctls() {   # namespaces that contain a bridge
  # br_netfilter is built in and defaults to 1 in every new netns: bridged
  # frames would then traverse the ip-family hooks (conntrack, NAT, our loss
  # rules).  Bridges must be plain L2 switches here.
  sysw "$1" net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 \
            net.bridge.bridge-nf-call-arptables=0
}

veth() {  # veth NS_A IF_A NS_B IF_B
  ip link add "$2" netns "$(ns "$1")" type veth peer name "$4" netns "$(ns "$3")"
}

mk_bridge() {  # mk_bridge NODE NAME
  ip -n "$(ns "$1")" link add "$2" type bridge stp_state 0 forward_delay 0
  ip -n "$(ns "$1")" link set "$2" up
}

attach() { ip -n "$(ns "$1")" link set "$2" master "$3"; ip -n "$(ns "$1")" link set "$2" up; }

router_nft() {  # router_nft NODE cone|symmetric
  local n=$1 mode=$2 masq
  case "$mode" in
    cone)      masq="masquerade" ;;            # conntrack keeps the source port when it can
    symmetric) masq="masquerade fully-random" ;; # random port per conntrack entry (= per destination)
    *) die "nat mode must be cone or symmetric" ;;
  esac
  inn "$n" nft -f - <<EOF
table ip natlab
delete table ip natlab
table ip natlab {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" $masq
  }
  # Unsolicited packets from the internet to the router itself must be
  # dropped *before* conntrack confirms them: otherwise a hole-punch packet
  # that arrives before our host's own outbound packet leaves a conntrack
  # entry on the router, the outbound SNAT then clashes with it and picks a
  # different port, and hole punching fails even between two "cone" NATs.
  # (Dropping in the input hook discards the unconfirmed entry.)
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state new drop
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan" oifname "wan" accept
  }
}
EOF
}

cmd_up() {
  local t0=$SECONDS n
  for n in "${NODES[@]}"; do
    [[ ! -e "/run/netns/$(ns "$n")" ]] || die "namespace $(ns "$n") exists; run: $0 down $P"
  done
  trap 'echo "lab.sh: up failed, tearing down" >&2; cmd_down >/dev/null 2>&1 || true' ERR
  for n in "${NODES[@]}"; do ip netns add "$(ns "$n")"; base_sysctls "$n"; done
  bridge_ns_sysctls inet; bridge_ns_sysctls ra; bridge_ns_sysctls rb

  # --- simulated internet
  mk_bridge inet br0
  for n in t1 t2; do veth "$n" eth0 inet "$n"; attach inet "$n" br0; done
  for n in ra rb; do veth "$n" wan inet "$n"; attach inet "$n" br0; done
  ip -n "$(ns t1)" addr add 198.18.0.1/16 dev eth0
  ip -n "$(ns t2)" addr add 198.18.0.2/16 dev eth0
  ip -n "$(ns ra)" addr add 198.18.1.1/16 dev wan
  ip -n "$(ns rb)" addr add 198.18.2.1/16 dev wan
  for n in t1 t2; do ip -n "$(ns "$n")" link set eth0 up; done
  for n in ra rb; do ip -n "$(ns "$n")" link set wan up; done

  # --- branch LANs (the LAN switch is a bridge inside the router namespace)
  mk_bridge ra lan; mk_bridge rb lan
  ip -n "$(ns ra)" addr add 198.19.1.1/24 dev lan
  ip -n "$(ns rb)" addr add 198.19.2.1/24 dev lan
  local h r addr gw
  for h in a1:ra:198.19.1.2:198.19.1.1 a2:ra:198.19.1.3:198.19.1.1 b1:rb:198.19.2.2:198.19.2.1; do
    IFS=: read -r n r addr gw <<<"$h"
    veth "$n" eth0 "$r" "$n"; attach "$r" "$n" lan
    ip -n "$(ns "$n")" addr add "$addr/24" dev eth0
    ip -n "$(ns "$n")" link set eth0 up
    ip -n "$(ns "$n")" route add default via "$gw"
  done

  [[ -z "${LAB_INJECT_FAIL:-}" ]] || false   # test hook: prove that a failed up cleans up

  # --- routers: forward + NAT (cone by default)
  for r in ra rb; do
    sysw "$r" net.ipv4.ip_forward=1
    router_nft "$r" cone
  done
  trap - ERR
  echo "lab $P up in $((SECONDS - t0))s"
}

cmd_down() {
  local n pids="" i
  # stop anything still running inside the lab (only processes in *these* netns):
  # SIGTERM, up to 3 s grace, then SIGKILL
  for n in "${NODES[@]}"; do
    [[ -e "/run/netns/$(ns "$n")" ]] && pids+=" $(ip netns pids "$(ns "$n")" 2>/dev/null | tr '\n' ' ')"
  done
  if [[ -n "${pids// /}" ]]; then
    kill $pids 2>/dev/null || true
    for i in $(seq 30); do kill -0 $pids 2>/dev/null || break; sleep 0.1; done
    kill -9 $pids 2>/dev/null || true
  fi
  for n in "${NODES[@]}"; do
    [[ -e "/run/netns/$(ns "$n")" ]] || continue
    ip netns del "$(ns "$n")" || true
  done
  # leftovers check (veths/bridges die with their namespaces)
  if ls /run/netns 2>/dev/null | grep -q "^$P-"; then die "namespaces left: $(ls /run/netns | grep "^$P-")"; fi
  echo "lab $P down"
}

cmd_nat() {
  local r=${1:-} mode=${2:-}
  [[ "$r" == ra || "$r" == rb ]] || die "ROUTER must be ra or rb"
  router_nft "$r" "$mode"
  # forget old mappings so the new behaviour applies to existing flows too
  inn "$r" sh -c 'command -v conntrack >/dev/null && conntrack -F >/dev/null 2>&1 || true'
  echo "$r: nat $mode"
}

cmd_loss() {
  local r=${1:-} pct=${2:-}
  [[ "$r" == ra || "$r" == rb ]] || die "ROUTER must be ra or rb"
  [[ "$pct" =~ ^[0-9]+$ && "$pct" -le 100 ]] || die "PERCENT must be 0..100"
  inn "$r" nft -f - <<EOF
table ip natloss
delete table ip natloss
EOF
  if [[ "$pct" -gt 0 ]]; then
    # raw priority on ingress: dropped packets never create conntrack state
    inn "$r" nft -f - <<EOF
table ip natloss {
  chain in  { type filter hook prerouting  priority raw; policy accept;
              iifname "wan" numgen random mod 100 < $pct drop; }
  chain out { type filter hook postrouting priority 300; policy accept;
              oifname "wan" numgen random mod 100 < $pct drop; }
}
EOF
  fi
  echo "$r: loss $pct% each direction on wan"
}

cmd_delay() {
  local r=${1:-} ms=${2:-}
  [[ "$r" == ra || "$r" == rb ]] || die "ROUTER must be ra or rb"
  if ! ip -n "$(ns "$r")" link add natlab_probe type dummy 2>/dev/null; then :; fi
  if ! ip netns exec "$(ns "$r")" tc qdisc replace dev natlab_probe root netem delay 1ms 2>/dev/null; then
    ip -n "$(ns "$r")" link del natlab_probe 2>/dev/null || true
    echo "netem unavailable in this kernel (sch_netem missing); delay skipped" >&2
    return 3
  fi
  ip -n "$(ns "$r")" link del natlab_probe 2>/dev/null || true
  if [[ "$ms" == 0 ]]; then
    ip netns exec "$(ns "$r")" tc qdisc del dev wan root 2>/dev/null || true
  else
    ip netns exec "$(ns "$r")" tc qdisc replace dev wan root netem delay "${ms}ms"
  fi
  echo "$r: delay ${ms}ms egress on wan"
}

cmd_isolate() {
  local r=${1:-} on=${2:-}
  [[ "$r" == ra || "$r" == rb ]] || die "ROUTER must be ra or rb"
  [[ "$on" == on || "$on" == off ]] || die "isolate takes on or off"
  inn "$r" nft -f - <<EOF
table ip natisolate
delete table ip natisolate
EOF
  if [[ "$on" == on ]]; then
    # As for loss: raw priority on ingress and after NAT on egress, so that
    # nothing dropped leaves conntrack state behind.
    inn "$r" nft -f - <<EOF
table ip natisolate {
  chain in  { type filter hook prerouting  priority raw; policy accept;
              iifname "wan" ip saddr != 198.18.0.0/24 drop; }
  chain out { type filter hook postrouting priority 300; policy accept;
              oifname "wan" ip daddr != 198.18.0.0/24 drop; }
}
EOF
  fi
  echo "$r: isolated from the other branches: $on"
}

cmd_status() {
  local n
  for n in "${NODES[@]}"; do
    echo "== $(ns "$n")"
    ip -n "$(ns "$n")" -br addr
    ip -n "$(ns "$n")" route
  done
  for n in ra rb; do echo "== $(ns "$n") nft"; inn "$n" nft list ruleset; done
}

sub=${1:-}; shift || true
P=${1:-}; need_prefix "$P"; shift
case "$sub" in
  up)     cmd_up ;;
  down)   cmd_down ;;
  nat)    cmd_nat "$@" ;;
  loss)   cmd_loss "$@" ;;
  delay)  cmd_delay "$@" ;;
  isolate) cmd_isolate "$@" ;;
  exec)   n=${1:?NODE}; shift; exec ip netns exec "$(ns "$n")" "$@" ;;
  status) cmd_status ;;
  *) die "usage: $0 up|down|nat|loss|delay|isolate|exec|status PREFIX ..." ;;
esac
