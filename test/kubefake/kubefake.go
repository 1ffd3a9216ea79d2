// Package kubefake gives client-go fake clientsets that the real informers
// of watch.KubeSource can run against, with switches for the faults a real
// API server has: going away, and watches expiring (410 Gone).
package kubefake

import (
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	networking "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kwatch "k8s.io/apimachinery/pkg/watch"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/chokepoint-xds/chokepoint/watch"
)

// Mode is how the fake API server behaves.
type Mode int32

const (
	// Up: lists and watches work.
	Up Mode = iota
	// Down: every list and watch fails as if nothing listened on the API
	// server's address (connection refused).
	Down
	// Expired: every new watch ends at once with 410 Gone (resourceVersion
	// too old), which makes reflectors relist; lists work.
	Expired
)

// Clients are a fake Kubernetes and a fake Istio clientset.
type Clients struct {
	Kube  *kubefake.Clientset
	Istio *istiofake.Clientset

	mode     atomic.Int32
	mu       sync.Mutex
	watchers []kwatch.Interface
	calls    map[string]int
}

// New returns clientsets holding objs (Istio kinds go to the Istio one).
func New(objs ...runtime.Object) *Clients {
	var kubeObjs []runtime.Object
	c := &Clients{Istio: istiofake.NewSimpleClientset(), calls: map[string]int{}}
	for _, o := range objs {
		// The tracker would guess "gatewaies" for Gateway: name the
		// resources.
		gvr := func(r string) schema.GroupVersionResource {
			return schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: r}
		}
		var err error
		switch o := o.(type) {
		case *networking.ServiceEntry:
			err = c.Istio.Tracker().Create(gvr("serviceentries"), o, o.Namespace)
		case *networking.Gateway:
			err = c.Istio.Tracker().Create(gvr("gateways"), o, o.Namespace)
		case *networking.VirtualService:
			err = c.Istio.Tracker().Create(gvr("virtualservices"), o, o.Namespace)
		case *networking.DestinationRule:
			err = c.Istio.Tracker().Create(gvr("destinationrules"), o, o.Namespace)
		case *networking.Sidecar:
			err = c.Istio.Tracker().Create(gvr("sidecars"), o, o.Namespace)
		default:
			kubeObjs = append(kubeObjs, o)
		}
		if err != nil {
			panic(err)
		}
	}
	c.Kube = kubefake.NewClientset(kubeObjs...)
	c.install(&c.Kube.Fake, c.Kube.Tracker())
	c.install(&c.Istio.Fake, c.Istio.Tracker())
	return c
}

// IstioClient is the Istio clientset as a KubeSource should get it: the
// generated fake predates watch-list, so it says it does not support it
// (as the Kubernetes fake does itself).
func (c *Clients) IstioClient() istioclient.Interface { return noWatchList{c.Istio} }

type noWatchList struct{ *istiofake.Clientset }

func (noWatchList) IsWatchListSemanticsUnSupported() bool { return true }

// errRefused is what a dial to a closed port returns.
var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}

func (c *Clients) install(f *k8stesting.Fake, tracker k8stesting.ObjectTracker) {
	f.PrependReactor("list", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		c.count("list", a.GetResource().Resource)
		if Mode(c.mode.Load()) == Down {
			return true, nil, errRefused
		}
		return false, nil, nil
	})
	// The watch delivers what changed since the list's resourceVersion,
	// as an API server does (the generated Istio fake starts from now,
	// losing objects created between an informer's list and watch).
	f.PrependWatchReactor("*", func(a k8stesting.Action) (bool, kwatch.Interface, error) {
		c.count("watch", a.GetResource().Resource)
		switch Mode(c.mode.Load()) {
		case Down:
			return true, nil, errRefused
		case Expired:
			w := kwatch.NewRaceFreeFake()
			w.Error(expired())
			return true, w, nil
		}
		var opts []metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = append(opts, wa.ListOptions)
		}
		w, err := tracker.Watch(a.GetResource(), a.GetNamespace(), opts...)
		if err != nil {
			return true, nil, err
		}
		c.mu.Lock()
		c.watchers = append(c.watchers, w)
		c.mu.Unlock()
		return true, w, nil
	})
}

func (c *Clients) count(verb, resource string) {
	c.mu.Lock()
	c.calls[verb+"/"+resource]++
	c.mu.Unlock()
}

// Calls counts the list or watch calls made on a resource ("sidecars").
func (c *Clients) Calls(verb, resource string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[verb+"/"+resource]
}

// SetMode switches the fake API server's behaviour. Down also ends every
// open watch, as an API server going away does; Expired ends them with a
// 410 Gone event, as etcd compaction does.
func (c *Clients) SetMode(m Mode) {
	c.mode.Store(int32(m))
	if m == Up {
		return
	}
	c.mu.Lock()
	ws := c.watchers
	c.watchers = nil
	c.mu.Unlock()
	for _, w := range ws {
		if f, ok := w.(*kwatch.RaceFreeFakeWatcher); ok && m == Expired {
			f.Error(expired())
			continue
		}
		w.Stop()
	}
}

func expired() *metav1.Status {
	return &metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old resource version"}
}

// Objects decodes YAML documents into the client-go objects they describe.
// An istio ConfigMap is not an object of the decoded inputs: use
// MeshConfigMap for it.
func Objects(yaml string) ([]runtime.Object, error) {
	in := watch.Parse([]byte(yaml), "fixture.yaml")
	if len(in.Problems) > 0 {
		return nil, fmt.Errorf("fixture: %v", in.Problems[0])
	}
	var out []runtime.Object
	for _, o := range in.ServiceEntries {
		out = append(out, o.ServiceEntry)
	}
	for _, o := range in.Gateways {
		out = append(out, o.Gateway)
	}
	for _, o := range in.VirtualServices {
		out = append(out, o.VirtualService)
	}
	for _, o := range in.DestinationRules {
		out = append(out, o.DestinationRule)
	}
	for _, o := range in.Sidecars {
		out = append(out, o.Sidecar)
	}
	for _, o := range in.Services {
		out = append(out, o.Service)
	}
	for _, o := range in.Endpoints {
		out = append(out, o.Endpoints)
	}
	for _, o := range in.EndpointSlices {
		out = append(out, o.EndpointSlice)
	}
	for _, o := range in.Namespaces {
		out = append(out, o.Namespace)
	}
	return out, nil
}

// MeshConfigMap is the istio ConfigMap in istio-system with mesh as its
// `mesh` key.
func MeshConfigMap(mesh string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: watch.MeshConfigMap, Namespace: "istio-system"},
		Data:       map[string]string{"mesh": mesh},
	}
}

// Egress is the seed's two-hop egress setup (examples/httpbin-passthrough)
// as a cluster holds it: the mesh-test objects, the egress gateway's
// Service and EndpointSlice in istio-system, and both Namespaces.
const Egress = `
apiVersion: v1
kind: Namespace
metadata: {name: mesh-test}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Service
metadata:
  name: istio-egressgateway
  namespace: istio-system
  labels: {app: istio-egressgateway, istio: egressgateway}
spec:
  type: ClusterIP
  selector: {app: istio-egressgateway, istio: egressgateway}
  ports:
  - {name: http2, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443}
  - {name: tls, port: 15443, targetPort: 15443}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: istio-egressgateway-x7k2p
  namespace: istio-system
  labels: {kubernetes.io/service-name: istio-egressgateway}
addressType: IPv4
ports:
- {name: http2, port: 8080}
- {name: https, port: 8443}
- {name: tls, port: 15443}
endpoints:
- addresses: [10.244.1.20]
  conditions: {ready: true}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin-ext, namespace: mesh-test}
spec:
  hosts: [httpbin.org]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  location: MESH_EXTERNAL
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: mesh-test}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [httpbin.org]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-httpbin, namespace: mesh-test}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: httpbin
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-httpbin-through-egress, namespace: mesh-test}
spec:
  hosts: [httpbin.org]
  gateways: [mesh, istio-egressgateway]
  tls:
  - match:
    - {gateways: [mesh], port: 443, sniHosts: [httpbin.org]}
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: httpbin, port: {number: 443}}
  - match:
    - {gateways: [istio-egressgateway], port: 443, sniHosts: [httpbin.org]}
    route:
    - destination: {host: httpbin.org, port: {number: 443}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: mesh-test}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`
