package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/trace"
	"github.com/chokepoint-xds/chokepoint/translate"
)

type callFlags struct {
	sni, host, path, address, protocol string
	headers                            []string
	port                               uint32
}

func (cf *callFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&cf.sni, "sni", "", "SNI of the TLS ClientHello (implies --protocol tls)")
	f.StringVar(&cf.host, "host", "", "HTTP Host header (implies --protocol http unless --sni is set)")
	f.StringVar(&cf.path, "path", "", "HTTP request path (default /)")
	f.StringArrayVar(&cf.headers, "header", nil, "HTTP request header k=v (repeatable)")
	f.Uint32Var(&cf.port, "port", 0, "destination port (a sidecar's original destination, or the port a gateway receives on)")
	f.StringVar(&cf.address, "address", "", "destination IP (default "+sim.DefaultAddress+" for a sidecar, the node's IP for a gateway)")
	f.StringVar(&cf.protocol, "protocol", "", "tls, http or tcp (default: tls with --sni, http with --host, else tcp)")
}

func (cf *callFlags) call() (sim.Call, error) {
	c := sim.Call{SNI: cf.sni, Host: cf.host, Path: cf.path, Port: cf.port, Address: cf.address}
	switch {
	case cf.protocol != "":
		c.Protocol = sim.Protocol(strings.ToLower(cf.protocol))
	case cf.sni != "":
		c.Protocol = sim.TLS
	case cf.host != "":
		c.Protocol = sim.HTTP
	default:
		c.Protocol = sim.TCP
	}
	switch c.Protocol {
	case sim.TLS:
	case sim.HTTP:
		if c.SNI != "" {
			return c, usageError("--sni needs --protocol tls (a TLS connection whose request carries --host)")
		}
		if c.Host == "" {
			return c, usageError("--protocol http needs --host")
		}
	case sim.TCP:
		if c.SNI != "" || c.Host != "" {
			return c, usageError("--protocol tcp takes neither --sni nor --host")
		}
	default:
		return c, usageError("--protocol must be tls, http or tcp, got %q", cf.protocol)
	}
	if c.Port == 0 || c.Port > 65535 {
		return c, usageError("--port is required (1-65535)")
	}
	if c.Address != "" {
		if _, err := netip.ParseAddr(c.Address); err != nil {
			return c, usageError("--address %q is not an IP address", c.Address)
		}
	}
	for _, h := range cf.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return c, usageError("--header %q: want key=value", h)
		}
		if c.Headers == nil {
			c.Headers = map[string]string{}
		}
		c.Headers[strings.TrimSpace(k)] = v
	}
	if len(c.Headers) > 0 && c.Protocol == sim.TCP {
		return c, usageError("--header needs an HTTP request (--host)")
	}
	return c, nil
}

func newTraceCmd() *cobra.Command {
	var (
		files  []string
		mesh   string
		output string
		pf     proxyFlags
		cf     callFlags
	)
	cmd := &cobra.Command{
		Use:   "trace -f PATH... --node NODE_ID [--labels k=v,...] (--sni H | --host H [--path P] [--header k=v]) --port N [--address IP] [--protocol tls|http|tcp] [-o text|json|mermaid|html]",
		Short: "Follow one call through the generated config, hop by hop, to where it ends",
		Long: `trace walks a call through the Envoy config the proxy named by --node gets, as
Envoy matches it: listener, filter chain, route, cluster. When the cluster is
the Service of a gateway in the input (hop 1 to the egress gateway), the call
goes on through that gateway's own config, on the Service's targetPort with the
same SNI or Host, until it leaves the mesh, is blackholed, answered, refused or
closed. Each step names the Istio objects that made it.

Output: text (steps to follow), json, mermaid (a flowchart for Markdown), or
html (the proxy's whole egress picture with this path marked).

Problems in the input are printed to standard error. Exit status: 0 the call
was traced (whatever its outcome, a blackhole included), 1 invalid input,
2 usage.`,
		Example: `  chokepoint trace -f examples/httpbin-passthrough \
    --node sidecar~10.244.2.7~sleep-6d8f.mesh-test~mesh-test.svc.cluster.local \
    --labels app=sleep --sni httpbin.org --port 443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "text", "json", "mermaid", "html":
			default:
				return usageError("-o must be text, json, mermaid or html, got %q", output)
			}
			p, err := pf.proxy()
			if err != nil {
				return err
			}
			call, err := cf.call()
			if err != nil {
				return err
			}
			in, err := loadInputs(files, mesh, cmd.InOrStdin())
			if err != nil {
				return err
			}
			idx := translate.NewIndex(in)
			problems := idx.Problems()
			tr := trace.Run(idx, p, call, trace.Options{})
			out := cmd.OutOrStdout()
			switch output {
			case "text":
				err = tr.Text(out)
			case "json":
				var b []byte
				if b, err = tr.JSON(); err == nil {
					_, err = out.Write(b)
				}
			case "mermaid":
				_, err = fmt.Fprint(out, tr.Mermaid())
			case "html":
				note := fmt.Sprintf("%s to %s:%d: %s", call.Protocol, firstNonEmpty(call.SNI, call.Host, call.Address), call.Port, tr.Outcome.Explanation)
				err = trace.BuildGraph(idx, p, trace.Options{}, tr).HTML(out, note)
			}
			if err != nil {
				return err
			}
			if reportProblems(cmd.ErrOrStderr(), problems) {
				return &exitError{code: 1, err: fmt.Errorf("invalid input: see the errors above")}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "file or directory of Istio YAML (repeatable; - for standard input)")
	cmd.Flags().StringVar(&mesh, "mesh", "", "mesh config YAML (like istioctl --meshConfigFile); overrides the istio ConfigMap")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json, mermaid or html")
	pf.register(cmd)
	cf.register(cmd)
	return cmd
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
