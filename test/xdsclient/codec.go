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
// thousand simulated proxies then cost the load test little more than the
// bytes they receive, leaving the CPU to the server being measured.
func SharedCodec() encoding.CodecV2 {
	return &sharedCodec{inner: encoding.GetCodecV2("proto"), seen: map[string][]*anypb.Any{}}
}

type sharedCodec struct {
	inner encoding.CodecV2
	mu    sync.Mutex
	seen  map[string][]*anypb.Any
}

func (c *sharedCodec) Name() string                           { return "proto" }
func (c *sharedCodec) Marshal(v any) (mem.BufferSlice, error) { return c.inner.Marshal(v) }
func (c *sharedCodec) Unmarshal(data mem.BufferSlice, v any) error {
	resp, ok := v.(*discovery.DiscoveryResponse)
	if !ok {
		return c.inner.Unmarshal(data, v)
	}
	b := data.Materialize()
	var version, typeURL, nonce string
	count := 0
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
		if typ == protowire.BytesType {
			val, _ := protowire.ConsumeBytes(rest)
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
		rest = rest[m:]
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
