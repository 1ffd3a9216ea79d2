#!/usr/bin/env bash
# prove.sh: the seed's three proofs that sleep's call to https://httpbin.org
# went through the egress gateway, then the REGISTRY_ONLY block. Needs the lab
# from up.sh; run as root. Exit status 0 only if every check passes.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab.env
. "$LAB_DIR/lab.env"
CA=$LAB_RUN/certs/ca.crt
ACCESS_LOG=$LAB_RUN/egress-gw.access.log

if [[ -t 1 ]]; then B=$'\033[1m' G=$'\033[32m' R=$'\033[31m' N=$'\033[0m'; else B='' G='' R='' N=''; fi
failures=0
say() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
run() {
  printf '$ %s\n' "$*"
}
pass() { printf '%s    PASS%s %s\n' "$G" "$N" "$*"; }
flunk() {
  printf '%s    FAIL%s %s\n' "$R" "$N" "$*"
  failures=$((failures + 1))
}
indent() { sed 's/^/    /'; }

[[ $EUID -eq 0 ]] || {
  echo "prove.sh: needs root (ip netns exec): sudo $0" >&2
  exit 1
}
for ns in "$NS_SLEEP" "$NS_GATEWAY" "$NS_INTERNET"; do
  [[ -e /var/run/netns/$ns ]] || {
    echo "prove.sh: namespace $ns does not exist: run up.sh first" >&2
    exit 1
  }
done

in_sleep() { ip netns exec "$NS_SLEEP" "$@"; }
in_gw() { ip netns exec "$NS_GATEWAY" "$@"; }
admin() { ip netns exec "$1" curl -fsS --max-time 5 "http://127.0.0.1:$2$3"; }
# gw_lines: the gateway's access-log lines, one per connection, from hop 2's chain.
gw_lines() { cat "$ACCESS_LOG" 2>/dev/null || true; }
# http_code CMD...: run a curl command (with -w '%{http_code}'), print curl's
# error message, if any, then the code on a line of its own; sets $code.
http_code() {
  local err
  err=$(mktemp)
  code=$("$@" 2>"$err") || true
  { cat "$err"; echo "$code"; } | indent
  rm -f "$err"
}
before=$(gw_lines | wc -l)

# --- 1 ----------------------------------------------------------------------
say "Proof 1: the call succeeds (sleep -> its sidecar -> egress gateway -> httpbin.org)"
run "ip netns exec $NS_SLEEP curl -sS --resolve httpbin.org:443:$HTTPBIN_IP --cacert $CA https://httpbin.org/get"
body=$(in_sleep curl -sS --max-time 10 --resolve "httpbin.org:443:$HTTPBIN_IP" --cacert "$CA" \
  -w '\nHTTP %{http_code}\n' https://httpbin.org/get 2>&1) || true
printf '%s\n' "$body" | indent
if [[ $body == *"HTTP 200"* ]]; then
  pass "200 from https://httpbin.org/get, TLS verified end to end (the gateway never decrypts)"
else
  flunk "the call did not return 200"
fi
if [[ $body == *"\"origin\": \"$GATEWAY_EGRESS_IP\""* ]]; then
  pass "httpbin.org saw the call come from the gateway ($GATEWAY_EGRESS_IP), not from sleep ($SLEEP_IP)"
else
  flunk "httpbin.org did not see the gateway's address $GATEWAY_EGRESS_IP as origin"
fi

# --- 2 ----------------------------------------------------------------------
say "Proof 2: the config shows the hop"
run "ip netns exec $NS_SLEEP curl -s 127.0.0.1:$SIDECAR_ADMIN_PORT/config_dump | examples/lab/hops.py"
sidecar_dump=$(admin "$NS_SLEEP" "$SIDECAR_ADMIN_PORT" /config_dump) || sidecar_dump=''
printf '%s' "$sidecar_dump" | python3 "$LAB_DIR/hops.py" 2>&1 |
  awk -v hop1="$HOP1_CLUSTER" '
    /^listener/ { keep = ($2 == "virtualOutbound" || $2 == "0.0.0.0_443") }
    /^cluster/ { keep = 0; if ($2 == "BlackHoleCluster" || $2 == hop1) print; next }
    keep' | indent || true
if [[ $sidecar_dump == *"\"$HOP1_CLUSTER\""* ]]; then
  pass "sidecar: SNI httpbin.org on 0.0.0.0_443 -> $HOP1_CLUSTER (hop 1)"
else
  flunk "sidecar's config_dump has no $HOP1_CLUSTER"
fi
run "ip netns exec $NS_SLEEP curl -s 127.0.0.1:$SIDECAR_ADMIN_PORT/clusters | grep '$HOP1_CLUSTER::.*cx_total'"
clusters=$(admin "$NS_SLEEP" "$SIDECAR_ADMIN_PORT" /clusters) || clusters=''
printf '%s\n' "$clusters" | grep -F -- "$HOP1_CLUSTER::$GATEWAY_IP:$GATEWAY_PORT::cx_total" | indent || true
if [[ $clusters == *"$HOP1_CLUSTER::$GATEWAY_IP:$GATEWAY_PORT::cx_total::"[1-9]* ]]; then
  pass "sidecar opened connections to the gateway's pod $GATEWAY_IP:$GATEWAY_PORT"
else
  flunk "sidecar's hop-1 endpoint $GATEWAY_IP:$GATEWAY_PORT shows no connection"
fi

run "ip netns exec $NS_GATEWAY curl -s 127.0.0.1:$GATEWAY_ADMIN_PORT/config_dump | examples/lab/hops.py"
gw_dump=$(admin "$NS_GATEWAY" "$GATEWAY_ADMIN_PORT" /config_dump) || gw_dump=''
printf '%s' "$gw_dump" | python3 "$LAB_DIR/hops.py" 2>&1 |
  awk -v hop2="$HOP2_CLUSTER" '/^cluster/ { if ($2 == hop2) print; next } { print }' | indent || true
if [[ $gw_dump == *"\"$HOP2_CLUSTER\""* && $gw_dump == *"\"0.0.0.0_$GATEWAY_PORT\""* ]]; then
  pass "gateway: 0.0.0.0_$GATEWAY_PORT, SNI httpbin.org -> $HOP2_CLUSTER (hop 2)"
else
  flunk "gateway's config_dump lacks listener 0.0.0.0_$GATEWAY_PORT or cluster $HOP2_CLUSTER"
fi
gw_clusters=$(admin "$NS_GATEWAY" "$GATEWAY_ADMIN_PORT" /clusters) || gw_clusters=''
printf '%s\n' "$gw_clusters" | grep -F -- "$HOP2_CLUSTER::$HTTPBIN_IP:443::" | grep -E 'cx_total|hostname' | indent || true
if [[ $gw_clusters == *"$HOP2_CLUSTER::$HTTPBIN_IP:443::cx_total::"[1-9]* ]]; then
  pass "gateway resolved httpbin.org to $HTTPBIN_IP and connected to it"
else
  flunk "gateway's $HOP2_CLUSTER shows no connection to $HTTPBIN_IP:443"
fi

# --- 3 ----------------------------------------------------------------------
say "Proof 3: the gateway's access log has the call, with SNI httpbin.org"
run "tail $ACCESS_LOG   # what 'kubectl logs deploy/istio-egressgateway' shows in a cluster"
# Istio's format ends: "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS%
# %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%
match_line() {
  gw_lines | tail -n +"$((before + 1))" |
    awk -v c="$HOP2_CLUSTER" -v src="$SLEEP_IP:" \
      '$(NF-1) == "httpbin.org" && $(NF-5) == c && index($(NF-2), src) == 1 { print; found = 1 } END { exit !found }'
}
line=''
for ((i = 0; i < 30; i++)); do # the gateway flushes its log every second
  if line=$(match_line); then break; fi
  line=''
  sleep 0.5
done
if [[ -n $line ]]; then
  printf '%s\n' "$line" | indent
  pass "requested server name httpbin.org, upstream cluster $HOP2_CLUSTER, downstream $SLEEP_IP (the sleep pod)"
else
  gw_lines | tail -n 5 | indent
  flunk "no new access-log line with SNI httpbin.org from $SLEEP_IP to $HOP2_CLUSTER"
fi

# --- REGISTRY_ONLY ----------------------------------------------------------
say "REGISTRY_ONLY: an unregistered host is blocked at the sidecar"
before=$(gw_lines | wc -l)
blackhole_before=$(admin "$NS_SLEEP" "$SIDECAR_ADMIN_PORT" '/stats?filter=BlackHoleCluster.upstream_cx_none_healthy' |
  awk -F': ' '{print $2}') || true
run "ip netns exec $NS_SLEEP curl -sS -o /dev/null -w '%{http_code}' --max-time 5 --resolve example.com:443:$HTTPBIN_IP https://example.com/"
http_code in_sleep curl -sS -o /dev/null -w '%{http_code}' --max-time 5 \
  --resolve "example.com:443:$HTTPBIN_IP" https://example.com/
if [[ $code == 000 ]]; then
  pass "curl prints 000: SNI example.com matches no chain, the default chain goes to BlackHoleCluster (connection reset)"
else
  flunk "expected 000 for https://example.com, got $code"
fi
blackhole_after=$(admin "$NS_SLEEP" "$SIDECAR_ADMIN_PORT" '/stats?filter=BlackHoleCluster.upstream_cx_none_healthy' |
  awk -F': ' '{print $2}') || true
echo "    cluster.BlackHoleCluster.upstream_cx_none_healthy: ${blackhole_before:-?} -> ${blackhole_after:-?}"
sleep 1.5
if gw_lines | tail -n +"$((before + 1))" | grep -q 'example.com'; then
  flunk "the gateway logged example.com: it should never have left the sidecar"
else
  pass "the gateway never saw it (no example.com in its access log)"
fi

say "No way around the choke point: bypassing the sidecar (uid $PROXY_UID) reaches nothing"
run "ip netns exec $NS_SLEEP setpriv --reuid=$PROXY_UID --regid=$PROXY_UID --clear-groups curl -sS --max-time 5 https://httpbin.org/get"
http_code in_sleep setpriv --reuid="$PROXY_UID" --regid="$PROXY_UID" --clear-groups -- \
  curl -sS -o /dev/null -w '%{http_code}' --max-time 5 --resolve "httpbin.org:443:$HTTPBIN_IP" \
  --cacert "$CA" https://httpbin.org/get
if [[ $code == 000 ]]; then
  pass "the pod network has no route to the outside: only the egress gateway's namespace is wired to it"
else
  flunk "a direct call from sleep reached httpbin.org ($code)"
fi

# --- chokepoint's view -------------------------------------------------------
say "chokepoint's view: /debug/syncz (per proxy and type: version sent, ACKed or NACKed)"
run "curl -s http://$CHOKEPOINT_ADMIN/debug/syncz"
syncz=$(curl -fsS --max-time 5 "http://$CHOKEPOINT_ADMIN/debug/syncz") || syncz=''
printf '%s\n' "$syncz" | head -n 60 | indent
for id in "$SIDECAR_PROXY_ID" "$GATEWAY_PROXY_ID"; do
  if [[ $syncz == *"\"$id\""* ]]; then
    pass "$id is connected to chokepoint"
  else
    flunk "$id is not in /debug/syncz"
  fi
done
if [[ $syncz == *'"nacks"'* ]]; then
  echo "    note: a proxy NACKed a push; the error detail is under \"nacks\" above"
fi

echo
if ((failures == 0)); then
  printf '%sAll checks passed.%s The call went through the egress gateway, and REGISTRY_ONLY holds.\n' "$G" "$N"
else
  printf '%s%d check(s) failed.%s Logs: %s/*.log\n' "$R" "$failures" "$N" "$LAB_RUN"
  exit 1
fi
