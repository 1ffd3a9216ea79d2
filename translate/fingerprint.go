package translate

import (
	"encoding/binary"
	"hash/fnv"

	"google.golang.org/protobuf/proto"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// Fingerprint summarises everything a proxy's translation reads: the mesh
// config, its Sidecar, the services, VirtualServices and DestinationRules it
// can see, and for a gateway the Gateways that select it and what is bound
// to them. Two indexes give a proxy the same fingerprint only if they give
// it the same resources, so a server can skip translating proxy classes an
// input change does not affect.
func (x *Index) Fingerprint(p Proxy) uint64 {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	sc := x.newScope(&p)
	h := fnv.New64a()
	var buf [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(buf[:], v)
		h.Write(buf[:])
	}
	put(x.meshHash)
	if sc.sidecar != nil {
		put(x.hashOf(sc.sidecar))
	}
	put(uint64(len(sc.services)))
	for _, s := range sc.services {
		put(x.hashOf(s.source))
		put(s.endpointsHash)
	}
	put(uint64(len(sc.meshVS)))
	for _, vs := range sc.meshVS {
		put(x.hashOf(vs.obj))
	}
	export := x.mesh.GetDefaultDestinationRuleExportTo()
	for _, dr := range x.destinationRules {
		if visibleTo(dr.exportTo, export, dr.obj.Namespace, p.Namespace) {
			put(x.hashOf(dr.obj))
		}
	}
	if p.Type == Router {
		for _, gw := range x.gatewaysFor(&p) {
			put(x.hashOf(gw.obj))
			t := &translation{x: x, proxy: &p, sc: sc}
			for _, vs := range t.vsForGateway(gw.key) {
				put(x.hashOf(vs.obj))
			}
		}
		for _, s := range x.gatewayServices(&p) {
			put(x.hashOf(s.source))
		}
	}
	return h.Sum64()
}

// hashOf is the content hash of an input object, computed once per index.
func (x *Index) hashOf(o inputs.Object) uint64 {
	x.hashMu.Lock()
	defer x.hashMu.Unlock()
	if v, ok := x.hashes[o]; ok {
		return v
	}
	v := objectHash(o)
	x.hashes[o] = v
	return v
}

type marshaler interface{ Marshal() ([]byte, error) }

func objectHash(o inputs.Object) uint64 {
	h := fnv.New64a()
	h.Write([]byte(o.KindName()))
	// Istio objects: metadata and spec; Kubernetes objects carry their own
	// protobuf encoding.
	var meta marshaler
	var spec proto.Message
	switch v := o.(type) {
	case *inputs.ServiceEntry:
		meta, spec = &v.ObjectMeta, &v.Spec
	case *inputs.Gateway:
		meta, spec = &v.ObjectMeta, &v.Spec
	case *inputs.VirtualService:
		meta, spec = &v.ObjectMeta, &v.Spec
	case *inputs.DestinationRule:
		meta, spec = &v.ObjectMeta, &v.Spec
	case *inputs.Sidecar:
		meta, spec = &v.ObjectMeta, &v.Spec
	default:
		meta, _ = o.(marshaler)
	}
	if meta != nil {
		b, _ := meta.Marshal()
		h.Write(b)
	}
	if spec != nil {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
		h.Write(b)
	}
	return h.Sum64()
}
