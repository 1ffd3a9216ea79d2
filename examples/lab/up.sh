#!/usr/bin/env bash
# up.sh: build the lab on this host and start everything in it.
#
#   host (root namespace)   chokepoint serve: xDS on 10.244.0.1:15010, admin 127.0.0.1:15014
#        | ck-xds 10.244.0.1
#   podnet   bridge br0 (the pod network)
#        |                                  |
#   sleep    10.244.2.7                   egress-gw  10.244.1.20 (eth0)
#            sidecar Envoy (uid 1337)               gateway Envoy, 0.0.0.0:8443
#            iptables: outbound TCP -> 15001        dnsmasq: httpbin.org -> 10.99.0.10
#                                                   10.99.0.1 (eth1)
#                                                     |
#                                          internet  10.99.0.10: fake httpbin.org, TLS on 443
#
# The internet namespace is wired to the gateway's namespace only: hop 2 is
# the one way out. Run as root; undo with down.sh. Settings: lab.env.
set -Eeuo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$LAB_DIR/../.." && pwd)
# shellcheck source=lab.env
. "$LAB_DIR/lab.env"
LAB_CONFIG=${LAB_CONFIG:-$ROOT/examples/httpbin-passthrough}
CHOKEPOINT_XDS_ADDRESS=${CHOKEPOINT_XDS_ADDRESS:-$XDS_IP:$XDS_PORT}
DNSMASQ_PIDFILE=/run/chokepoint-lab-dnsmasq.pid

if [[ -t 1 ]]; then B=$'\033[1m' R=$'\033[31m' N=$'\033[0m'; else B='' R='' N=''; fi
say() { printf '%s==> %s%s\n' "$B" "$*" "$N"; }
ok() { printf '    ok: %s\n' "$*"; }
die() {
  printf '%sup.sh: %s%s\n' "$R" "$*" "$N" >&2
  exit 1
}
logs_tail() {
  local f
  for f in "$LAB_RUN"/*.log; do
    [[ -s $f ]] || continue
    printf -- '--- %s (last 15 lines)\n' "$f" >&2
    tail -n 15 "$f" >&2
  done
}
fail() {
  printf '%sup.sh: %s%s\n' "$R" "$*" "$N" >&2
  logs_tail
  printf 'The lab is half up; clean up with: sudo %s/down.sh\n' "$LAB_DIR" >&2
  exit 1
}
trap 'fail "command failed (line $LINENO): $BASH_COMMAND"' ERR

# --- preflight --------------------------------------------------------------
[[ $EUID -eq 0 ]] || die "needs root (network namespaces, veth pairs, iptables): sudo $0"
for tool in ip iptables openssl dnsmasq curl python3 setpriv nohup; do
  command -v "$tool" >/dev/null || die "missing $tool (see examples/lab/README.md, Prerequisites)"
done
ENVOY_BIN=$(command -v "$ENVOY") ||
  die "envoy not found as '$ENVOY'; sudo resets PATH, so pass it: sudo ENVOY=/path/to/envoy $0"
if [[ $CHOKEPOINT != /* ]]; then
  if [[ -x $PWD/$CHOKEPOINT ]]; then CHOKEPOINT=$PWD/$CHOKEPOINT; else CHOKEPOINT=$ROOT/$CHOKEPOINT; fi
fi
[[ -x $CHOKEPOINT ]] || die "no chokepoint binary at $CHOKEPOINT: run 'make build' first (or set CHOKEPOINT=)"
[[ -d $LAB_CONFIG ]] || die "no config directory $LAB_CONFIG"
setpriv --reuid="$PROXY_UID" --regid="$PROXY_UID" --clear-groups -- "$ENVOY_BIN" --version >/dev/null 2>&1 ||
  die "uid $PROXY_UID cannot run $ENVOY_BIN (the sidecar runs as that uid): put envoy where every user can execute it, e.g. /usr/local/bin"
for ns in "$NS_SLEEP" "$NS_GATEWAY" "$NS_INTERNET" "$NS_PODNET"; do
  if [[ -e /var/run/netns/$ns ]]; then
    die "network namespace '$ns' already exists: the lab is up (run prove.sh) or half torn down (run down.sh)"
  fi
done
if ip link show ck-xds >/dev/null 2>&1; then die "interface ck-xds already exists: run down.sh first"; fi

mkdir -p "$LAB_RUN"
chmod 0755 "$LAB_RUN"
touch "$LAB_RUN/.chokepoint-lab"
rm -f "$LAB_RUN"/*.log "$LAB_RUN"/*.pid

say "Certificates for the fake httpbin.org ($LAB_RUN/certs)"
"$LAB_DIR/certs.sh" "$LAB_RUN/certs"
ok "CA $LAB_RUN/certs/ca.crt, server certificate for DNS:httpbin.org"

# --- network ----------------------------------------------------------------
say "Network namespaces $NS_SLEEP, $NS_GATEWAY, $NS_INTERNET, $NS_PODNET"
for ns in "$NS_PODNET" "$NS_SLEEP" "$NS_GATEWAY" "$NS_INTERNET"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip -n "$NS_PODNET" link add br0 type bridge
ip -n "$NS_PODNET" link set br0 up

# link NS_A IF_A NS_B IF_B: a veth pair with one end in each namespace ("-" is the host).
link() {
  local a=ck-a$$ b=ck-b$$
  ip link add "$a" type veth peer name "$b"
  ip link set "$b" netns "$3"
  ip -n "$3" link set "$b" name "$4"
  ip -n "$3" link set "$4" up
  if [[ $1 == - ]]; then
    ip link set "$a" name "$2"
    ip link set "$2" up
  else
    ip link set "$a" netns "$1"
    ip -n "$1" link set "$a" name "$2"
    ip -n "$1" link set "$2" up
  fi
}
link - ck-xds "$NS_PODNET" p-host
link "$NS_SLEEP" eth0 "$NS_PODNET" p-sleep
link "$NS_GATEWAY" eth0 "$NS_PODNET" p-egw
link "$NS_GATEWAY" eth1 "$NS_INTERNET" eth0
for port in p-host p-sleep p-egw; do ip -n "$NS_PODNET" link set "$port" master br0; done

# The host: one address and two host routes, nothing else changes.
ip addr add "$XDS_IP/32" dev ck-xds
ip route add "$SLEEP_IP/32" dev ck-xds src "$XDS_IP"
ip route add "$GATEWAY_IP/32" dev ck-xds src "$XDS_IP"
# sleep: a pod with a default route; anything not captured by the sidecar has
# nowhere to go (no host on the bridge answers for outside addresses).
ip -n "$NS_SLEEP" addr add "$SLEEP_IP/$POD_PREFIX" dev eth0
ip -n "$NS_SLEEP" route add default dev eth0
# egress-gw: the pod network on eth0, the outside world on eth1.
ip -n "$NS_GATEWAY" addr add "$GATEWAY_IP/$POD_PREFIX" dev eth0
ip -n "$NS_GATEWAY" addr add "$GATEWAY_EGRESS_IP/$INTERNET_PREFIX" dev eth1
# internet: knows only the gateway's outside leg.
ip -n "$NS_INTERNET" addr add "$HTTPBIN_IP/$INTERNET_PREFIX" dev eth0
ok "host ck-xds $XDS_IP, sleep $SLEEP_IP, egress-gw $GATEWAY_IP + $GATEWAY_EGRESS_IP, internet $HTTPBIN_IP"

say "Traffic capture in $NS_SLEEP (like istio-init: outbound TCP -> 15001, except uid $PROXY_UID)"
ipt() { ip netns exec "$NS_SLEEP" iptables -w "$@"; }
ipt -t nat -N ISTIO_REDIRECT
ipt -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
ipt -t nat -N ISTIO_OUTPUT
ipt -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT
ipt -t nat -A ISTIO_OUTPUT -d 127.0.0.0/8 -j RETURN
ipt -t nat -A ISTIO_OUTPUT -m owner --uid-owner "$PROXY_UID" -j RETURN
ipt -t nat -A ISTIO_OUTPUT -m owner --gid-owner "$PROXY_UID" -j RETURN
ipt -t nat -A ISTIO_OUTPUT -d "$XDS_IP/32" -j RETURN
ipt -t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT
ok "$(ipt -t nat -S ISTIO_OUTPUT | wc -l) rules in nat/ISTIO_OUTPUT"

say "Name resolution (ip netns exec bind-mounts /etc/netns/NAME/* over /etc/*)"
# The gateway resolves httpbin.org for its STRICT_DNS cluster with Envoy's
# c-ares resolver, which asks the nameservers of resolv.conf: a dnsmasq in the
# gateway's namespace answers httpbin.org -> the fake server and nothing else.
mkdir -p "/etc/netns/$NS_GATEWAY" "/etc/netns/$NS_SLEEP"
printf 'nameserver 127.0.0.1\n' >"/etc/netns/$NS_GATEWAY/resolv.conf"
printf '127.0.0.1 localhost\n%s httpbin.org\n' "$HTTPBIN_IP" >"/etc/netns/$NS_GATEWAY/hosts"
# The sleep pod has no DNS server; its hosts file plays the cluster DNS.
printf 'nameserver 127.0.0.1\n' >"/etc/netns/$NS_SLEEP/resolv.conf"
printf '127.0.0.1 localhost\n%s httpbin.org\n%s example.com\n' "$HTTPBIN_IP" "$HTTPBIN_IP" >"/etc/netns/$NS_SLEEP/hosts"
nohup ip netns exec "$NS_GATEWAY" dnsmasq --keep-in-foreground --conf-file=/dev/null \
  --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 --port=53 \
  --address="/httpbin.org/$HTTPBIN_IP" --local-ttl=30 --log-queries --log-facility=- \
  --pid-file="$DNSMASQ_PIDFILE" >>"$LAB_RUN/dnsmasq.log" 2>&1 </dev/null &
echo $! >"$LAB_RUN/dnsmasq.pid"

# dns_a NAME: the A record 127.0.0.1:53 gives for NAME, asked over UDP as c-ares does.
dns_a() {
  ip netns exec "$NS_GATEWAY" python3 - "$1" <<'PY'
import socket, struct, sys
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
s.sendto(q, ("127.0.0.1", 53))
r = s.recv(512)
an = struct.unpack(">H", r[6:8])[0]
if an and r[-6:-4] == b"\x00\x04":
    print(socket.inet_ntoa(r[-4:]))
else:
    sys.exit(1)
PY
}

# wait_for WHAT SECONDS PIDFILE CMD...: retry CMD until it succeeds.
wait_for() {
  local what=$1 secs=$2 pidfile=$3 i
  shift 3
  for ((i = 0; i < secs * 2; i++)); do
    if "$@" >/dev/null 2>&1; then
      ok "$what"
      return 0
    fi
    if [[ -n $pidfile ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      fail "$(basename "$pidfile" .pid) exited while waiting for: $what"
    fi
    sleep 0.5
  done
  fail "timed out after ${secs}s waiting for: $what"
}
dns_is() { [[ $(dns_a "$1") == "$2" ]]; }
wait_for "dnsmasq in $NS_GATEWAY answers httpbin.org -> $HTTPBIN_IP" 10 "$LAB_RUN/dnsmasq.pid" dns_is httpbin.org "$HTTPBIN_IP"

# --- processes --------------------------------------------------------------
say "Fake httpbin.org in $NS_INTERNET ($HTTPBIN_IP:443)"
nohup ip netns exec "$NS_INTERNET" python3 "$LAB_DIR/fake-httpbin.py" \
  --cert "$LAB_RUN/certs/httpbin.crt" --key "$LAB_RUN/certs/httpbin.key" \
  --bind "$HTTPBIN_IP" --port 443 >>"$LAB_RUN/fake-httpbin.log" 2>&1 </dev/null &
echo $! >"$LAB_RUN/fake-httpbin.pid"
wait_for "https://httpbin.org answers the gateway's namespace directly" 10 "$LAB_RUN/fake-httpbin.pid" \
  ip netns exec "$NS_GATEWAY" curl -fsS --max-time 2 --resolve "httpbin.org:443:$HTTPBIN_IP" \
  --cacert "$LAB_RUN/certs/ca.crt" https://httpbin.org/get

say "chokepoint serve -f $LAB_CONFIG (xDS $CHOKEPOINT_XDS_ADDRESS, admin $CHOKEPOINT_ADMIN)"
nohup "$CHOKEPOINT" serve -f "$LAB_CONFIG" --xds-address "$CHOKEPOINT_XDS_ADDRESS" \
  --admin-address "$CHOKEPOINT_ADMIN" >>"$LAB_RUN/chokepoint.log" 2>&1 </dev/null &
echo $! >"$LAB_RUN/chokepoint.pid"
wait_for "chokepoint /readyz" 30 "$LAB_RUN/chokepoint.pid" curl -fsS --max-time 2 "http://$CHOKEPOINT_ADMIN/readyz"

cp "$LAB_DIR/sidecar.yaml" "$LAB_DIR/egress-gateway.yaml" "$LAB_RUN/"
chmod 0644 "$LAB_RUN/sidecar.yaml" "$LAB_RUN/egress-gateway.yaml"

# admin_has NS PORT PATH TEXT: Envoy's admin PATH in NS contains TEXT.
admin_has() {
  local out
  out=$(ip netns exec "$1" curl -fsS --max-time 2 "http://127.0.0.1:$2$3") || return 1
  [[ $out == *"$4"* ]]
}

say "Egress gateway Envoy in $NS_GATEWAY (admin 127.0.0.1:$GATEWAY_ADMIN_PORT, access log $LAB_RUN/egress-gw.access.log)"
# stdout is the access log (/dev/stdout in the served config); Envoy's own log goes to stderr.
nohup ip netns exec "$NS_GATEWAY" "$ENVOY_BIN" -c "$LAB_RUN/egress-gateway.yaml" \
  --disable-hot-restart --concurrency 1 --file-flush-interval-msec 1000 \
  >>"$LAB_RUN/egress-gw.access.log" 2>>"$LAB_RUN/egress-gw.log" </dev/null &
echo $! >"$LAB_RUN/egress-gw.pid"
wait_for "gateway Envoy is LIVE" 30 "$LAB_RUN/egress-gw.pid" admin_has "$NS_GATEWAY" "$GATEWAY_ADMIN_PORT" /ready LIVE
wait_for "gateway has listener 0.0.0.0_$GATEWAY_PORT" 30 "$LAB_RUN/egress-gw.pid" \
  admin_has "$NS_GATEWAY" "$GATEWAY_ADMIN_PORT" /listeners "0.0.0.0_$GATEWAY_PORT::0.0.0.0:$GATEWAY_PORT"
wait_for "gateway resolved $HOP2_CLUSTER to $HTTPBIN_IP:443" 30 "$LAB_RUN/egress-gw.pid" \
  admin_has "$NS_GATEWAY" "$GATEWAY_ADMIN_PORT" /clusters "$HOP2_CLUSTER::$HTTPBIN_IP:443::"

say "Sidecar Envoy in $NS_SLEEP as uid $PROXY_UID (admin 127.0.0.1:$SIDECAR_ADMIN_PORT)"
: >"$LAB_RUN/sidecar.log"
chown "$PROXY_UID:$PROXY_UID" "$LAB_RUN/sidecar.log"
nohup ip netns exec "$NS_SLEEP" setpriv --reuid="$PROXY_UID" --regid="$PROXY_UID" --clear-groups -- \
  "$ENVOY_BIN" -c "$LAB_RUN/sidecar.yaml" --disable-hot-restart --concurrency 1 \
  >>"$LAB_RUN/sidecar.log" 2>&1 </dev/null &
echo $! >"$LAB_RUN/sidecar.pid"
wait_for "sidecar Envoy is LIVE" 30 "$LAB_RUN/sidecar.pid" admin_has "$NS_SLEEP" "$SIDECAR_ADMIN_PORT" /ready LIVE
wait_for "sidecar has listener virtualOutbound on 15001" 30 "$LAB_RUN/sidecar.pid" \
  admin_has "$NS_SLEEP" "$SIDECAR_ADMIN_PORT" /listeners "virtualOutbound::0.0.0.0:15001"
wait_for "sidecar has listener 0.0.0.0_443" 30 "$LAB_RUN/sidecar.pid" \
  admin_has "$NS_SLEEP" "$SIDECAR_ADMIN_PORT" /listeners "0.0.0.0_443::0.0.0.0:443"
wait_for "sidecar's hop-1 cluster has endpoint $GATEWAY_IP:$GATEWAY_PORT" 30 "$LAB_RUN/sidecar.pid" \
  admin_has "$NS_SLEEP" "$SIDECAR_ADMIN_PORT" /clusters "$HOP1_CLUSTER::$GATEWAY_IP:$GATEWAY_PORT::"

trap - ERR
say "The lab is up."
cat <<MSG
    logs:   $LAB_RUN/*.log (gateway access log: $LAB_RUN/egress-gw.access.log)
    prove:  sudo $LAB_DIR/prove.sh
    try:    sudo ip netns exec $NS_SLEEP curl -sS --cacert $LAB_RUN/certs/ca.crt https://httpbin.org/get
    syncz:  curl -s http://$CHOKEPOINT_ADMIN/debug/syncz
    down:   sudo $LAB_DIR/down.sh
MSG
