package trace

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/chokepoint-xds/chokepoint/sim"
)

// CallSpec is a call as a user names it (CLI flags, query parameters).
type CallSpec struct {
	Protocol string   // tls, http or tcp; empty: tls with SNI, http with Host, else tcp
	SNI      string   // TLS server name
	Host     string   // HTTP Host
	Path     string   // HTTP path
	Headers  []string // HTTP headers, key=value
	Port     uint32
	Address  string // destination IP
}

// ParseCall checks a CallSpec and returns the call to trace; the error
// names the offending parameter by its CLI flag.
func ParseCall(s CallSpec) (sim.Call, error) {
	c := sim.Call{SNI: s.SNI, Host: s.Host, Path: s.Path, Port: s.Port, Address: s.Address}
	switch {
	case s.Protocol != "":
		c.Protocol = sim.Protocol(strings.ToLower(s.Protocol))
	case s.SNI != "":
		c.Protocol = sim.TLS
	case s.Host != "":
		c.Protocol = sim.HTTP
	default:
		c.Protocol = sim.TCP
	}
	switch c.Protocol {
	case sim.TLS:
	case sim.HTTP:
		if c.SNI != "" {
			return c, fmt.Errorf("--sni needs --protocol tls (a TLS connection whose request carries --host)")
		}
		if c.Host == "" {
			return c, fmt.Errorf("--protocol http needs --host")
		}
	case sim.TCP:
		if c.SNI != "" || c.Host != "" {
			return c, fmt.Errorf("--protocol tcp takes neither --sni nor --host")
		}
	default:
		return c, fmt.Errorf("--protocol must be tls, http or tcp, got %q", s.Protocol)
	}
	if c.Port == 0 || c.Port > 65535 {
		return c, fmt.Errorf("--port is required (1-65535)")
	}
	if c.Address != "" {
		if _, err := netip.ParseAddr(c.Address); err != nil {
			return c, fmt.Errorf("--address %q is not an IP address", c.Address)
		}
	}
	for _, h := range s.Headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return c, fmt.Errorf("--header %q: want key=value", h)
		}
		if c.Headers == nil {
			c.Headers = map[string]string{}
		}
		c.Headers[strings.TrimSpace(k)] = v
	}
	if len(c.Headers) > 0 && c.Protocol == sim.TCP {
		return c, fmt.Errorf("--header needs an HTTP request (--host)")
	}
	return c, nil
}

// Headline is a one-line summary: the call and how it ends.
func (t *Trace) Headline() string {
	s := describeCall(t.Call) + " to " + hostPort{t.Call.Address, t.Call.Port}.String() + ": " + string(t.Outcome.Kind)
	if t.Outcome.Destination != "" {
		s += " " + t.Outcome.Destination
	}
	return s + ". " + t.Outcome.Explanation
}
