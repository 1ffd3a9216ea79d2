package analyze

import (
	"fmt"
	"sort"
	"strings"

	"github.com/chokepoint-xds/chokepoint/inputs"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// Message is one finding.
type Message struct {
	Code  string `json:"code"`
	Level Level  `json:"level"`
	// Object is "Kind namespace/name"; empty for a document that could not
	// be read far enough to know it.
	Object string        `json:"object,omitempty"`
	Source inputs.Source `json:"source"`
	Field  string        `json:"field,omitempty"`
	// Message says what is wrong; Consequence what the operator will see.
	Message     string `json:"message"`
	Consequence string `json:"consequence,omitempty"`
}

// HasErrors reports whether any message is an Error.
func HasErrors(msgs []Message) bool {
	for _, m := range msgs {
		if m.Level == Error {
			return true
		}
	}
	return false
}

// Analyze runs every analyzer on in and returns the messages, sorted by
// source, object and field.
func Analyze(in *inputs.Inputs) []Message {
	idx := translate.NewIndex(in)
	a := newAnalyzer(in, idx)
	a.gateways()
	a.virtualServices()
	a.serviceEntries()
	a.destinationRules()
	a.sidecars()
	a.problems(idx.Problems())
	a.problems(a.gatewayProxyProblems(idx))
	return a.result()
}

func (a *analyzer) report(code Code, level Level, obj inputs.Object, field, consequence, format string, args ...any) {
	a.msgs = append(a.msgs, Message{
		Code: code.Code, Level: level, Object: obj.KindName(), Source: obj.GetSource(), Field: field,
		Message: fmt.Sprintf(format, args...), Consequence: consequence,
	})
}

// problems adds what the loader and translator report, except where an
// analyzer already spoke about the same object and field (the analyzer's
// message says more).
func (a *analyzer) problems(ps []inputs.Problem) {
	type key struct{ obj, field string }
	covered := map[key]bool{}
	for _, m := range a.msgs {
		covered[key{m.Object, m.Field}] = true
	}
	for _, p := range ps {
		if p.Object != "" && covered[key{p.Object, p.Field}] {
			continue
		}
		code, level := InputWarning, Warning
		if p.Severity == inputs.SeverityError {
			code, level = SchemaValidationError, Error
		}
		src := p.Source
		if src == (inputs.Source{}) {
			src = a.sources[p.Object]
		}
		m := Message{Code: code.Code, Level: level, Object: p.Object, Source: src, Field: p.Field, Message: p.Message}
		if level == Error {
			m.Consequence = "This object is left out: nothing it defines takes effect."
			if p.Object == "" {
				m.Consequence = "This document is left out: nothing it defines takes effect."
			}
		}
		a.msgs = append(a.msgs, m)
	}
}

func (a *analyzer) result() []Message {
	out := a.msgs
	sort.SliceStable(out, func(i, j int) bool { return less(out[i], out[j]) })
	// Translation problems can repeat for several proxies.
	n := 0
	for i, m := range out {
		if i > 0 && m == out[n-1] {
			continue
		}
		out[n] = m
		n++
	}
	return out[:n]
}

func less(a, b Message) bool {
	if a.Source.File != b.Source.File {
		return a.Source.File < b.Source.File
	}
	if a.Source.Doc != b.Source.Doc {
		return a.Source.Doc < b.Source.Doc
	}
	if a.Object != b.Object {
		return a.Object < b.Object
	}
	if a.Field != b.Field {
		return fieldLess(a.Field, b.Field)
	}
	if a.Level.rank() != b.Level.rank() {
		return a.Level.rank() < b.Level.rank()
	}
	if a.Code != b.Code {
		return a.Code < b.Code
	}
	return a.Message < b.Message
}

// fieldLess orders field paths with their indexes as numbers, so
// spec.http[2] comes before spec.http[10].
func fieldLess(a, b string) bool {
	for a != "" && b != "" {
		ai, bi := strings.IndexByte(a, '['), strings.IndexByte(b, '[')
		if ai < 0 || bi < 0 || a[:ai] != b[:bi] {
			return a < b
		}
		a, b = a[ai+1:], b[bi+1:]
		var an, bn int
		fmt.Sscanf(a, "%d", &an)
		fmt.Sscanf(b, "%d", &bn)
		if an != bn {
			return an < bn
		}
		a, b = a[strings.IndexByte(a, ']')+1:], b[strings.IndexByte(b, ']')+1:]
	}
	return a < b
}
