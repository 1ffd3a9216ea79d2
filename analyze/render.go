package analyze

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// SourceString names where an object came from the way the text output
// shows it: FILE:DOC (the document's position in the file, from 1), FILE,
// or kube@RESOURCEVERSION.
func SourceString(s inputs.Source) string {
	switch {
	case s.Kube != "":
		return "kube@" + s.Kube
	case s.File == "":
		return ""
	case s.Doc > 0:
		return fmt.Sprintf("%s:%d", s.File, s.Doc)
	}
	return s.File
}

// String renders a message as istioctl analyze does, with the
// consequence on an indented second line:
//
//	Error [IST0101] (Gateway ns/name file.yaml:2) spec.selector: ...
//	    No error anywhere, traffic just does not flow: ...
func (m Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s]", m.Level, m.Code)
	where := strings.TrimSpace(m.Object + " " + SourceString(m.Source))
	if where != "" {
		fmt.Fprintf(&b, " (%s)", where)
	}
	b.WriteByte(' ')
	if m.Field != "" {
		b.WriteString(m.Field)
		b.WriteString(": ")
	}
	b.WriteString(m.Message)
	if m.Consequence != "" {
		b.WriteString("\n    ")
		b.WriteString(m.Consequence)
	}
	return b.String()
}

// WriteText writes one block per message, or a line saying there is
// nothing to report.
func WriteText(w io.Writer, msgs []Message) error {
	if len(msgs) == 0 {
		_, err := fmt.Fprintln(w, "No validation issues found.")
		return err
	}
	for _, m := range msgs {
		if _, err := fmt.Fprintln(w, m.String()); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes the messages as an indented JSON array ([] when there
// are none).
func WriteJSON(w io.Writer, msgs []Message) error {
	if msgs == nil {
		msgs = []Message{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // messages say "80->8080"
	return enc.Encode(msgs)
}
