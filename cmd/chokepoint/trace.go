package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/trace"
	"github.com/chokepoint-xds/chokepoint/translate"
)

type callFlags struct {
	spec trace.CallSpec
}

func (cf *callFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&cf.spec.SNI, "sni", "", "SNI of the TLS ClientHello (implies --protocol tls)")
	f.StringVar(&cf.spec.Host, "host", "", "HTTP Host header (implies --protocol http unless --sni is set)")
	f.StringVar(&cf.spec.Path, "path", "", "HTTP request path (default /)")
	f.StringArrayVar(&cf.spec.Headers, "header", nil, "HTTP request header k=v (repeatable)")
	f.Uint32Var(&cf.spec.Port, "port", 0, "destination port (a sidecar's original destination, or the port a gateway receives on)")
	f.StringVar(&cf.spec.Address, "address", "", "destination IP (default "+sim.DefaultAddress+" for a sidecar, the node's IP for a gateway)")
	f.StringVar(&cf.spec.Protocol, "protocol", "", "tls, http or tcp (default: tls with --sni, http with --host, else tcp)")
}

func (cf *callFlags) call() (sim.Call, error) {
	c, err := trace.ParseCall(cf.spec)
	if err != nil {
		return c, usageError("%v", err)
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
				err = trace.BuildGraph(idx, p, trace.Options{}, tr).HTML(out, tr.Headline())
			}
			if err != nil {
				return err
			}
			return reportProblems(cmd.ErrOrStderr(), problems)
		},
	}
	inputFlags(cmd, &files, &mesh)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json, mermaid or html")
	pf.register(cmd)
	cf.register(cmd)
	return cmd
}
