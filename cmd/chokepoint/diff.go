package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chokepoint-xds/chokepoint/configdiff"
	"github.com/chokepoint-xds/chokepoint/translate"
)

func newDiffCmd() *cobra.Command {
	var (
		ours, theirs, proxy, server, output string
		all                                 bool
		timeout                             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "diff (--ours DUMP | --proxy POD.NAMESPACE [--server URL]) --theirs DUMP [-o text|json] [--all]",
		Short: "Compare the config chokepoint serves a proxy with what istiod serves it",
		Long: `diff compares two Envoy configurations semantically: "ours" (chokepoint's)
and "theirs" (istiod's). A DUMP is a file ("-" for standard input) holding an
Envoy admin /config_dump, the output of "istioctl proxy-config all POD -o json"
(or -o yaml), or chokepoint's own "translate" output. With --proxy, ours is
fetched from a running "chokepoint serve" (--server, its admin address):
/debug/config_dump?proxyID=POD.NAMESPACE of a proxy connected to it.

Resources are matched by name. Compared: listener address, listener filters,
filter chain matches (as sets) and each chain's network filters (tcp_proxy
clusters, the HTTP route config or inline routes, HTTP filters, TLS); virtual
hosts (domains as a set) and routes (match, cluster or weighted clusters,
redirect, direct response, timeout, rewrites, retries, mirrors, headers);
clusters (discovery type, LB policy, connect timeout, EDS service name,
endpoints, TLS SNI, trust and certificates). Envoy's defaults count as set.
Not compared: order (except of routes in a virtual host), versions,
timestamps, stat prefixes, access logs, tracing, metadata, and istio-proxy's
own extensions (istio.* filters, Istio's Wasm stats, empty fault/CORS
filters, gRPC stats, Istio's auto-mTLS socket matches). Bootstrap (static)
resources and the inbound/ambient resources only istiod makes are skipped
unless --all.

Exit status: 0 equal, 1 different, 2 usage or an unreadable dump.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError("-o must be text or json, got %q", output)
			}
			if (ours == "") == (proxy == "") {
				return usageError("give exactly one of --ours DUMP and --proxy POD.NAMESPACE")
			}
			if theirs == "" {
				return usageError("--theirs DUMP is required")
			}
			if ours == "-" && theirs == "-" {
				return usageError("only one of --ours and --theirs can be standard input")
			}
			var a *configdiff.Dump
			var err error
			if proxy != "" {
				if strings.Contains(proxy, "~") { // a whole node ID
					p, err := translate.ParseNodeID(proxy)
					if err != nil {
						return usageError("--proxy: %v", err)
					}
					proxy = p.ID
				}
				a, err = fetchDump(cmd.Context(), server, proxy, timeout)
			} else {
				a, err = readDump(ours, cmd.InOrStdin())
			}
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			b, err := readDump(theirs, cmd.InOrStdin())
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			res := configdiff.Compare(a, b, configdiff.Options{All: all})
			out := cmd.OutOrStdout()
			if output == "json" {
				diffs := res.Differences
				if diffs == nil {
					diffs = []configdiff.Difference{}
				}
				js, err := json.MarshalIndent(diffs, "", "  ")
				if err != nil {
					return err
				}
				if _, err := fmt.Fprintf(out, "%s\n", js); err != nil {
					return err
				}
				// The summary goes beside the data, not into it.
				for _, n := range res.Notes {
					fmt.Fprintln(cmd.ErrOrStderr(), "note:", n)
				}
				fmt.Fprintln(cmd.ErrOrStderr(), res.Summary())
			} else {
				if a.Node != "" || b.Node != "" {
					fmt.Fprintf(out, "ours:   %s%s\ntheirs: %s%s\n", a.Source, nodeSuffix(a), b.Source, nodeSuffix(b))
				}
				if err := res.WriteText(out); err != nil {
					return err
				}
			}
			if !res.Equal() {
				return &exitError{code: 1, quiet: true}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ours, "ours", "", "chokepoint's config dump (file, - for standard input)")
	f.StringVar(&theirs, "theirs", "", "istiod's config dump: Envoy /config_dump or istioctl proxy-config all -o json (file, - for standard input)")
	f.StringVar(&proxy, "proxy", "", "fetch ours from a running chokepoint for the proxy POD.NAMESPACE (or its whole node ID)")
	f.StringVar(&server, "server", "http://127.0.0.1:15014", "chokepoint's admin address, for --proxy")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "how long --proxy waits for chokepoint")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json (a list of differences)")
	f.BoolVar(&all, "all", false, "also compare bootstrap (static) resources and Istio-only inbound/ambient resources")
	return cmd
}

func nodeSuffix(d *configdiff.Dump) string {
	if d.Node == "" {
		return ""
	}
	return " (node " + d.Node + ")"
}

func readDump(path string, stdin io.Reader) (*configdiff.Dump, error) {
	var data []byte
	var err error
	name := path
	if path == "-" {
		name = "<stdin>"
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return configdiff.Parse(name, data)
}

// fetchDump asks a running chokepoint for the config dump of a connected
// proxy.
func fetchDump(ctx context.Context, server, proxy string, timeout time.Duration) (*configdiff.Dump, error) {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u := strings.TrimRight(server, "/") + "/debug/config_dump?proxyID=" + url.QueryEscape(proxy)
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", server, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	return configdiff.Parse(u, body)
}
