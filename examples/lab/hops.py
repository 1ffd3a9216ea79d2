#!/usr/bin/env python3
"""Reads an Envoy /config_dump (or chokepoint's /debug/config_dump) on stdin and
prints the path a connection can take: each listener's filter chains with the
SNI names they match and the cluster their tcp_proxy sends to, then the
clusters with their discovery type. Accepts snake_case (Envoy) and camelCase
(protojson) field names.
"""
import json
import sys


def g(d, name):
    """Field `name` (snake_case) from d, in either spelling."""
    if not isinstance(d, dict):
        return None
    if name in d:
        return d[name]
    parts = name.split("_")
    camel = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return d.get(camel)


def chain_target(chain):
    for f in g(chain, "filters") or []:
        tc = g(f, "typed_config") or {}
        if g(tc, "cluster"):
            return "tcp_proxy -> " + g(tc, "cluster")
        rds = g(tc, "rds")
        if rds:
            return "http -> route " + str(g(rds, "route_config_name"))
        if g(tc, "route_config"):
            return "http (inline routes)"
    return "?"


def main():
    dump = json.load(sys.stdin)
    for cfg in dump.get("configs", []):
        t = cfg.get("@type", "")
        if t.endswith("ListenersConfigDump"):
            for dl in g(cfg, "dynamic_listeners") or []:
                lst = g(g(dl, "active_state") or {}, "listener") or {}
                sa = g(g(lst, "address") or {}, "socket_address") or {}
                extra = []
                if g(lst, "use_original_dst"):
                    extra.append("use_original_dst")
                if g(lst, "bind_to_port") is False:
                    extra.append("bind_to_port=false")
                print("listener %s  %s:%s  %s" % (g(lst, "name"), g(sa, "address"),
                                                  g(sa, "port_value"), " ".join(extra)))
                for ch in g(lst, "filter_chains") or []:
                    m = g(ch, "filter_chain_match") or {}
                    sni = g(m, "server_names")
                    what = ("sni " + ",".join(sni)) if sni else (g(ch, "name") or "match " + json.dumps(m))
                    print("    %-40s %s" % (what, chain_target(ch)))
                d = g(lst, "default_filter_chain")
                if d:
                    print("    %-40s %s" % ("(default) " + str(g(d, "name") or ""), chain_target(d)))
        elif t.endswith("ClustersConfigDump"):
            for c in (g(cfg, "dynamic_active_clusters") or []):
                cl = g(c, "cluster") or {}
                print("cluster %-75s %s" % (g(cl, "name"), g(cl, "type") or g(cl, "cluster_type") or ""))


if __name__ == "__main__":
    main()
