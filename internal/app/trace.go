package app

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/chokepoint-xds/chokepoint/sim"
	"github.com/chokepoint-xds/chokepoint/trace"
	"github.com/chokepoint-xds/chokepoint/translate"
)

// tracee is a connected proxy and how to get the config of each proxy a
// trace crosses: the snapshot its class was served for it, a translation
// from the current index for the gateways it reaches.
type tracee struct {
	proxy translate.Proxy
	idx   *translate.Index
	opts  trace.Options
}

// tracee resolves ?proxyID=POD.NAMESPACE; it answers the error itself.
func (a *App) tracee(w http.ResponseWriter, r *http.Request) (*tracee, bool) {
	id := r.URL.Query().Get("proxyID")
	if id == "" {
		http.Error(w, "proxyID=POD.NAMESPACE is required (see /debug/syncz for connected proxies)", http.StatusBadRequest)
		return nil, false
	}
	p, class, ok := a.Status.ConnectedProxy(id)
	if !ok {
		http.Error(w, fmt.Sprintf("proxy %q is not connected (see /debug/syncz)", id), http.StatusNotFound)
		return nil, false
	}
	idx := a.Manager.Index()
	if idx == nil {
		http.Error(w, "no inputs loaded yet", http.StatusServiceUnavailable)
		return nil, false
	}
	// Each proxy on the path is read as it is served (decoded from the
	// bytes sent, once per class); a gateway that is not connected is
	// translated.
	decoded := map[string]*translate.Resources{}
	served := func(key string) *translate.Resources {
		if res, ok := decoded[key]; ok {
			return res
		}
		res, _, ok, err := a.Manager.Served(key)
		if !ok || err != nil {
			res = nil
		}
		decoded[key] = res
		return res
	}
	if served(class) == nil {
		http.Error(w, fmt.Sprintf("proxy %q has no config yet", id), http.StatusServiceUnavailable)
		return nil, false
	}
	t := &tracee{proxy: p, idx: idx}
	t.opts.Config = func(q translate.Proxy) *translate.Resources {
		if res := served(q.ClassKey()); res != nil {
			return res
		}
		return idx.Translate(q)
	}
	return t, true
}

// callOf reads a call from the query (the CLI's flag names); present
// reports whether any call parameter was given.
func callOf(r *http.Request) (call sim.Call, present bool, err error) {
	q := r.URL.Query()
	spec := trace.CallSpec{Protocol: q.Get("protocol"), SNI: q.Get("sni"), Host: q.Get("host"), Path: q.Get("path"),
		Headers: q["header"], Address: q.Get("address")}
	for _, k := range []string{"protocol", "sni", "host", "path", "header", "address", "port"} {
		if q.Has(k) {
			present = true
		}
	}
	if v := q.Get("port"); v != "" {
		n, perr := strconv.ParseUint(v, 10, 32)
		if perr != nil {
			return call, present, fmt.Errorf("port=%q is not a port number", v)
		}
		spec.Port = uint32(n)
	}
	call, err = trace.ParseCall(spec)
	return call, present, err
}

// serveTrace is /debug/trace?proxyID=POD.NS&sni=H|host=H&port=N: the
// trace of that call from a connected proxy, as `chokepoint trace -o json`
// prints it (o=text and o=mermaid too).
func (a *App) serveTrace(w http.ResponseWriter, r *http.Request) {
	t, ok := a.tracee(w, r)
	if !ok {
		return
	}
	call, _, err := callOf(r)
	if err != nil {
		http.Error(w, err.Error()+" (query parameters: sni, host, path, header, port, address, protocol)", http.StatusBadRequest)
		return
	}
	tr := trace.Run(t.idx, t.proxy, call, t.opts)
	switch r.URL.Query().Get("o") {
	case "", "json":
		b, err := tr.JSON()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	case "text":
		var b bytes.Buffer
		tr.Text(&b)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(b.Bytes())
	case "mermaid":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(tr.Mermaid()))
	default:
		http.Error(w, "o must be json, text or mermaid", http.StatusBadRequest)
	}
}

// serveGraph is /debug/graph?proxyID=POD.NS: the proxy's egress picture as
// a self-contained HTML page; with call parameters (as /debug/trace) the
// call's path is marked.
func (a *App) serveGraph(w http.ResponseWriter, r *http.Request) {
	t, ok := a.tracee(w, r)
	if !ok {
		return
	}
	var tr *trace.Trace
	note := ""
	if call, present, err := callOf(r); present {
		if err != nil {
			http.Error(w, err.Error()+" (query parameters: sni, host, path, header, port, address, protocol)", http.StatusBadRequest)
			return
		}
		tr = trace.Run(t.idx, t.proxy, call, t.opts)
		note = tr.Headline()
	}
	var b bytes.Buffer
	if err := trace.BuildGraph(t.idx, t.proxy, t.opts, tr).HTML(&b, note); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}
