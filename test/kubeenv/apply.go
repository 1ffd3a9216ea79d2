package kubeenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// fieldManager owns the fields that Apply sets (server-side apply).
const fieldManager = "kubeenv"

// applyTimeout bounds one Apply or Delete call.
const applyTimeout = time.Minute

func newMapper(cfg *rest.Config) (*restmapper.DeferredDiscoveryRESTMapper, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), nil
}

// Apply creates or updates every object in manifest (YAML documents separated
// by ---, or JSON) with server-side apply as AdminUser, and returns them as
// the server stored them. Namespaced objects without a namespace go to
// "default". Namespaces that objects name are created when missing, since
// there is no other way to get them here.
func (e *Env) Apply(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := decode(manifest)
	if err != nil {
		t.Fatalf("kubeenv: apply: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	var out []*unstructured.Unstructured
	for _, obj := range objs {
		res, err := e.resource(ctx, obj)
		if err != nil {
			t.Fatalf("kubeenv: apply %s: %v", describe(obj), err)
		}
		if ns := obj.GetNamespace(); ns != "" {
			if err := e.ensureNamespace(ctx, ns); err != nil {
				t.Fatalf("kubeenv: apply %s: namespace: %v", describe(obj), err)
			}
		}
		data, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("kubeenv: apply %s: %v", describe(obj), err)
		}
		force := true
		got, err := res.Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
			metav1.PatchOptions{FieldManager: fieldManager, Force: &force})
		if err != nil {
			t.Fatalf("kubeenv: apply %s: %v", describe(obj), err)
		}
		out = append(out, got)
	}
	return out
}

// Delete deletes every object in manifest; objects already gone are not an
// error. It does not wait for finalizers (a Namespace is never finalized
// here, as no controller-manager runs).
func (e *Env) Delete(t testing.TB, manifest string) {
	t.Helper()
	objs, err := decode(manifest)
	if err != nil {
		t.Fatalf("kubeenv: delete: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	for _, obj := range objs {
		res, err := e.resource(ctx, obj)
		if err != nil {
			t.Fatalf("kubeenv: delete %s: %v", describe(obj), err)
		}
		if err := res.Delete(ctx, obj.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("kubeenv: delete %s: %v", describe(obj), err)
		}
	}
}

// resource maps obj to its API resource, defaulting its namespace. A kind
// the mapper does not know may be a CRD that has just been created, so the
// mapper is refreshed until the kind appears or ctx ends.
func (e *Env) resource(ctx context.Context, obj *unstructured.Unstructured) (dynamicResource, error) {
	gvk := obj.GroupVersionKind()
	var mapping *meta.RESTMapping
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
		var err error
		mapping, err = e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			e.mapper.Reset()
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("no resource for %s: %w", gvk, err)
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		return e.dynamic.Resource(mapping.Resource), nil
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(metav1.NamespaceDefault)
	}
	return e.dynamic.Resource(mapping.Resource).Namespace(obj.GetNamespace()), nil
}

// dynamicResource is what Apply and Delete use of dynamic.ResourceInterface.
type dynamicResource interface {
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, options metav1.PatchOptions, subresources ...string) (*unstructured.Unstructured, error)
	Delete(ctx context.Context, name string, options metav1.DeleteOptions, subresources ...string) error
}

var namespaceResource = corev1.SchemeGroupVersion.WithResource("namespaces")

func (e *Env) ensureNamespace(ctx context.Context, name string) error {
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	_, err := e.dynamic.Resource(namespaceResource).Create(ctx, ns, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// decode splits a manifest into objects, skipping empty documents and
// unrolling kind: List.
func decode(manifest string) ([]*unstructured.Unstructured, error) {
	dec := yamlutil.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", doc, err)
			}
			for i := range list.Items {
				objs = append(objs, &list.Items[i])
			}
			continue
		}
		if obj.GetKind() == "" || obj.GetAPIVersion() == "" || obj.GetName() == "" {
			return nil, fmt.Errorf("document %d: apiVersion, kind and metadata.name are required", doc)
		}
		objs = append(objs, obj)
	}
}

func describe(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", obj.GetKind(), ns, obj.GetName())
	}
	return fmt.Sprintf("%s %s", obj.GetKind(), obj.GetName())
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installIstioCRDs applies the CRDs that istio.io/api publishes, from the
// version in go.mod, and waits until every one is Established and the
// mapper knows its kinds.
func (e *Env) installIstioCRDs(t testing.TB) {
	t.Helper()
	manifest, err := istioCRDs()
	if err != nil {
		t.Fatalf("kubeenv: Istio CRDs: %v", err)
	}
	crds := e.Apply(t, manifest)
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	for _, crd := range crds {
		err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			got, err := e.dynamic.Resource(crdResource).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return established(got), nil
		})
		if err != nil {
			t.Fatalf("kubeenv: CRD %s not established: %v", crd.GetName(), err)
		}
	}
	e.mapper.Reset()
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

var istioCRDs = sync.OnceValues(func() (string, error) {
	dir, err := istioAPIDir()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml"))
	return string(data), err
})

// istioAPIDir is where the istio.io/api module that go.mod names lives
// (the module cache, or a replace target).
func istioAPIDir() (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m istio.io/api: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("go list -m istio.io/api: module not downloaded; run `go mod download istio.io/api`")
	}
	return dir, nil
}
