// Command chokepoint is an xDS control plane that serves Istio egress
// configuration to stock Envoy proxies.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit code: 1 invalid input (for diff: a
// difference), 2 usage. A quiet one has already said everything and prints
// nothing more.
type exitError struct {
	code  int
	err   error
	quiet bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit code: 0 ok, 1 invalid
// input, 2 usage.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "chokepoint",
		Short:         "An xDS control plane that translates Istio egress configuration for stock Envoy",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError("%v", err) })
	root.AddCommand(newTranslateCmd(), newAnalyzeCmd(), newTraceCmd(), newDiffCmd(), newServeCmd(), newVersionCmd())
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		var ee *exitError
		code := 2 // cobra's own errors are usage errors
		if errors.As(err, &ee) {
			code = ee.code
			if ee.quiet {
				return code
			}
		}
		fmt.Fprintln(stderr, "error:", err)
		return code
	}
	return 0
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "chokepoint", version)
		},
	}
}
