package xdsclient

import (
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	_ "google.golang.org/grpc/encoding/proto" // the "proto" codec
)

// SharedCodec decodes each (type, version) of DiscoveryResponse once for
// all clients using it: later copies are only scanned for their version,
// nonce and resource count, and share the first copy's resources. A
// DeltaDiscoveryResponse is scanned the same way and each of its resources
// is decoded once per (type, name, version) and shared. A thousand
// simulated proxies then cost the load test little more than the bytes
// they receive, leaving the CPU to the server being measured.
func SharedCodec() encoding.CodecV2 {
	return &sharedCodec{inner: encoding.GetCodecV2("proto"), seen: map[string][]*anypb.Any{}, deltas: map[string]*discovery.Resource{}}
}

type sharedCodec struct {
	inner  encoding.CodecV2
	mu     sync.Mutex
	seen   map[string][]*anypb.Any
	deltas map[string]*discovery.Resource // type, name, version -> resource
}

func (c *sharedCodec) Name() string                           { return "proto" }
func (c *sharedCodec) Marshal(v any) (mem.BufferSlice, error) { return c.inner.Marshal(v) }
func (c *sharedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if d, ok := v.(*discovery.DeltaDiscoveryResponse); ok {
		return c.unmarshalDelta(data.Materialize(), d)
	}
	resp, ok := v.(*discovery.DiscoveryResponse)
	if !ok {
		return c.inner.Unmarshal(data, v)
	}
	b := data.Materialize()
	var version, typeURL, nonce string
	count := 0
	if err := eachField(b, func(num protowire.Number, val []byte, isBytes bool) bool {
		if isBytes {
			switch num {
			case 1:
				version = string(val)
			case 2:
				count++
			case 4:
				typeURL = string(val)
			case 5:
				nonce = string(val)
			}
		}
		return true
	}); err != nil {
		return err
	}
	key := typeURL + "\x00" + version
	c.mu.Lock()
	shared, ok := c.seen[key]
	c.mu.Unlock()
	if ok && len(shared) == count {
		resp.Reset()
		resp.VersionInfo, resp.TypeUrl, resp.Nonce, resp.Resources = version, typeURL, nonce, shared
		return nil
	}
	if err := proto.Unmarshal(b, resp); err != nil {
		return err
	}
	c.mu.Lock()
	if _, ok := c.seen[key]; !ok && len(resp.Resources) == count {
		c.seen[key] = resp.Resources
	}
	c.mu.Unlock()
	return nil
}

// unmarshalDelta decodes a delta response, sharing its resources with
// earlier responses that carried the same (type, name, version). Fields
// other than the version, resources, type, nonce and removed names make it
// fall back to a plain decode.
func (c *sharedCodec) unmarshalDelta(b []byte, resp *discovery.DeltaDiscoveryResponse) error {
	var version, typeURL, nonce string
	var removed []string
	var entries [][]byte
	plain := true
	if err := eachField(b, func(num protowire.Number, val []byte, isBytes bool) bool {
		if !isBytes || num < 1 || num > 6 || num == 3 {
			plain = false
			return false
		}
		switch num {
		case 1:
			version = string(val)
		case 2:
			entries = append(entries, val)
		case 4:
			typeURL = string(val)
		case 5:
			nonce = string(val)
		case 6:
			removed = append(removed, string(val))
		}
		return true
	}); err != nil {
		return err
	}
	if !plain {
		return proto.Unmarshal(b, resp)
	}
	resp.Reset()
	resp.SystemVersionInfo, resp.TypeUrl, resp.Nonce, resp.RemovedResources = version, typeURL, nonce, removed
	resp.Resources = make([]*discovery.Resource, 0, len(entries))
	for _, e := range entries {
		var name, rv string
		if err := eachField(e, func(num protowire.Number, val []byte, isBytes bool) bool {
			if isBytes && num == 1 {
				rv = string(val)
			} else if isBytes && num == 3 {
				name = string(val)
			}
			return true
		}); err != nil {
			return err
		}
		key := typeURL + "\x00" + name + "\x00" + rv
		c.mu.Lock()
		r, ok := c.deltas[key]
		c.mu.Unlock()
		if !ok || rv == "" {
			r = &discovery.Resource{}
			if err := proto.Unmarshal(e, r); err != nil {
				return err
			}
			if rv != "" {
				c.mu.Lock()
				c.deltas[key] = r
				c.mu.Unlock()
			}
		}
		resp.Resources = append(resp.Resources, r)
	}
	return nil
}

// eachField calls f for each top-level field of a wire-format message, with
// the value of length-delimited fields; f returns false to stop.
func eachField(b []byte, f func(num protowire.Number, val []byte, isBytes bool) bool) error {
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return protowire.ParseError(n)
		}
		rest = rest[n:]
		m := protowire.ConsumeFieldValue(num, typ, rest)
		if m < 0 {
			return protowire.ParseError(m)
		}
		var val []byte
		if typ == protowire.BytesType {
			val, _ = protowire.ConsumeBytes(rest)
		}
		if !f(num, val, typ == protowire.BytesType) {
			return nil
		}
		rest = rest[m:]
	}
	return nil
}
