#!/usr/bin/env bash
# down.sh: stop everything up.sh started and remove what it created. Safe to
# run any number of times, and after a half-finished up.sh. Run as root.
#   KEEP_LOGS=1 down.sh   keeps $LAB_RUN (logs, certificates) for a look later.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lab.env
. "$LAB_DIR/lab.env"
DNSMASQ_PIDFILE=/run/chokepoint-lab-dnsmasq.pid

say() { printf '==> %s\n' "$*"; }
[[ $EUID -eq 0 ]] || {
  echo "down.sh: needs root: sudo $0" >&2
  exit 1
}

# stop PID WHAT: SIGTERM, then SIGKILL after 5 seconds.
stop() {
  local pid=$1 what=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || {
      echo "    stopped $what (pid $pid)"
      return 0
    }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  echo "    killed $what (pid $pid)"
}

say "Stopping the lab's processes"
# The process behind each pid file, if it is still the one up.sh started.
for name in sidecar egress-gw fake-httpbin dnsmasq chokepoint; do
  pidfile=$LAB_RUN/$name.pid
  [[ -s $pidfile ]] || continue
  pid=$(<"$pidfile")
  want=$name
  case $name in sidecar | egress-gw) want=envoy ;; fake-httpbin) want=fake-httpbin ;; esac
  cmd=''
  if [[ $pid =~ ^[0-9]+$ ]]; then cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true); fi
  if [[ $cmd == *"$want"* ]]; then
    stop "$pid" "$name"
  fi
  rm -f "$pidfile"
done
# Anything else still running inside the lab's namespaces.
for ns in "$NS_SLEEP" "$NS_GATEWAY" "$NS_INTERNET" "$NS_PODNET"; do
  [[ -e /var/run/netns/$ns ]] || continue
  for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
    stop "$pid" "pid $pid in namespace $ns"
  done
done

say "Removing network namespaces and links"
for ns in "$NS_SLEEP" "$NS_GATEWAY" "$NS_INTERNET" "$NS_PODNET"; do
  if [[ -e /var/run/netns/$ns ]]; then
    ip netns del "$ns" && echo "    deleted namespace $ns"
  fi
done
# Deleting podnet removed ck-xds's peer and so ck-xds with its routes; be sure.
if ip link show ck-xds >/dev/null 2>&1; then
  ip link del ck-xds && echo "    deleted link ck-xds"
fi

say "Removing files"
for ns in "$NS_SLEEP" "$NS_GATEWAY"; do
  rm -f "/etc/netns/$ns/resolv.conf" "/etc/netns/$ns/hosts"
  rmdir "/etc/netns/$ns" 2>/dev/null || true
done
rm -f "$DNSMASQ_PIDFILE"
if [[ -f $LAB_RUN/.chokepoint-lab ]]; then
  if [[ ${KEEP_LOGS:-0} == 1 ]]; then
    rm -f "$LAB_RUN"/*.pid
    echo "    kept $LAB_RUN (KEEP_LOGS=1)"
  else
    rm -rf -- "$LAB_RUN"
    echo "    removed $LAB_RUN"
  fi
fi
say "The lab is down."
