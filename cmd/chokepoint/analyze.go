package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/chokepoint-xds/chokepoint/analyze"
)

func newAnalyzeCmd() *cobra.Command {
	var (
		files  []string
		mesh   string
		output string
	)
	cmd := &cobra.Command{
		Use:   "analyze -f PATH... [--mesh F] [-o text|json]",
		Short: "Diagnose egress pitfalls in Istio YAML without running it",
		Long: `analyze reads the same inputs as translate (Istio networking YAML, Services,
Endpoints, the istio ConfigMap) and reports what would make traffic silently
fail or bypass the egress gateway: Gateway selectors that match no gateway
workload, server ports the gateway Service does not forward, references to
gateways, hosts and subsets that do not exist, http rules for TLS traffic,
conflicting Gateways and ServiceEntries, ALLOW_ANY next to an egress gateway.
Problems the loader and the translator find are reported too.

Each message has a code (istioctl analyze's IST codes where the meaning is the
same, CP codes otherwise), a level, the object, its file and document, the
field, and what the operator will see.

Exit status: 0 no Error (Warnings and Infos allowed), 1 at least one Error,
2 usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError("-o must be text or json, got %q", output)
			}
			in, err := loadInputs(files, mesh, cmd.InOrStdin())
			if err != nil {
				return err
			}
			msgs := analyze.Analyze(in)
			if output == "json" {
				err = analyze.WriteJSON(cmd.OutOrStdout(), msgs)
			} else {
				err = analyze.WriteText(cmd.OutOrStdout(), msgs)
			}
			if err != nil {
				return err
			}
			if n := countErrors(msgs); n > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d error(s) found", n)}
			}
			return nil
		},
	}
	inputFlags(cmd, &files, &mesh)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func countErrors(msgs []analyze.Message) int {
	n := 0
	for _, m := range msgs {
		if m.Level == analyze.Error {
			n++
		}
	}
	return n
}
