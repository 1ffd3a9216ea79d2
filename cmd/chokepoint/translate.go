package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chokepoint-xds/chokepoint/configdump"
	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/translate"
	"github.com/chokepoint-xds/chokepoint/watch"
)

type proxyFlags struct {
	node   string
	labels string
}

func (pf *proxyFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&pf.node, "node", "", "Istio node ID: TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local (TYPE sidecar or router)")
	cmd.Flags().StringVar(&pf.labels, "labels", "", "proxy labels, k=v,k2=v2")
}

func (pf *proxyFlags) proxy() (translate.Proxy, error) {
	if pf.node == "" {
		return translate.Proxy{}, usageError("--node is required")
	}
	p, err := translate.ParseNodeID(pf.node)
	if err != nil {
		return p, usageError("%v", err)
	}
	p.Labels, err = translate.ParseLabels(pf.labels)
	if err != nil {
		return p, usageError("--labels: %v", err)
	}
	return p, nil
}

// loadInputs reads -f paths; problems go to stderr.
func loadInputs(paths []string, mesh string, stdin io.Reader) (*inputs.Inputs, error) {
	if len(paths) == 0 {
		return nil, usageError("at least one -f PATH is required")
	}
	in, _, err := watch.Load(watch.LoadOptions{Paths: paths, Stdin: stdin, MeshFile: mesh})
	if err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	return in, nil
}

// reportProblems prints problems; with an Error among them it returns the
// exit-1 error commands end with (after printing their output).
func reportProblems(w io.Writer, problems []inputs.Problem) error {
	errorsSeen := false
	for _, p := range problems {
		fmt.Fprintf(w, "%s: %s\n", strings.ToLower(string(p.Severity)), p.Error())
		if p.Severity == inputs.SeverityError {
			errorsSeen = true
		}
	}
	if errorsSeen {
		return &exitError{code: 1, err: fmt.Errorf("invalid input: see the errors above")}
	}
	return nil
}

func newTranslateCmd() *cobra.Command {
	var (
		files  []string
		mesh   string
		output string
		pf     proxyFlags
	)
	cmd := &cobra.Command{
		Use:   "translate -f PATH... --node NODE_ID [--labels k=v,...] [--mesh F] [-o json|yaml]",
		Short: "Print the Envoy config (an admin ConfigDump) one proxy gets from Istio YAML",
		Long: `translate reads Istio networking YAML (ServiceEntry, Gateway, VirtualService,
DestinationRule, Sidecar, plus Services, Endpoints and the istio ConfigMap) and
prints the clusters, listeners, routes and endpoints istiod would send to the
proxy named by --node, as an Envoy admin ConfigDump.

Problems in the input are printed to standard error; the valid rest is still
translated. Exit status: 0 ok, 1 invalid input, 2 usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "json" && output != "yaml" {
				return usageError("-o must be json or yaml, got %q", output)
			}
			p, err := pf.proxy()
			if err != nil {
				return err
			}
			in, err := loadInputs(files, mesh, cmd.InOrStdin())
			if err != nil {
				return err
			}
			idx := translate.NewIndex(in)
			res := idx.Translate(p)
			// Collected now so the inputs and index are garbage while the
			// output is rendered.
			problems := append(idx.Problems(), res.Problems...)
			in, idx = nil, nil
			if err := res.Validate(); err != nil {
				return fmt.Errorf("generated config failed validation (a chokepoint bug): %w", err)
			}
			var out []byte
			if output == "json" {
				out, err = configdump.JSON(res, "")
			} else {
				out, err = configdump.MarshalYAML(configdump.Proto(res, ""))
			}
			if err != nil {
				return err
			}
			if _, err := cmd.OutOrStdout().Write(out); err != nil {
				return err
			}
			return reportProblems(cmd.ErrOrStderr(), problems)
		},
	}
	inputFlags(cmd, &files, &mesh)
	cmd.Flags().StringVarP(&output, "output", "o", "json", "output format: json or yaml")
	pf.register(cmd)
	return cmd
}

// inputFlags registers -f and --mesh, which every command reading inputs
// from files takes.
func inputFlags(cmd *cobra.Command, files *[]string, mesh *string) {
	cmd.Flags().StringArrayVarP(files, "filename", "f", nil, "file or directory of Istio YAML (repeatable; - for standard input)")
	cmd.Flags().StringVar(mesh, "mesh", "", "mesh config YAML (like istioctl --meshConfigFile); overrides the istio ConfigMap")
}
