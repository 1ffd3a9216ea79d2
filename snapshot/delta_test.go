package snapshot

import (
	"sort"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/anypb"
)

// tr builds a type response from name → version.
func tr(versions map[string]string) *typeResponse {
	wires := map[string]*wire{}
	for n, v := range versions {
		a := &anypb.Any{TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster", Value: []byte(v)}
		wires[n] = &wire{any: a, delta: &discovery.Resource{Name: n, Version: v, Resource: a}}
	}
	return newTypeResponse("v", wires)
}

func namesOf(t *typeResponse, s *deltaSub) ([]string, []string) {
	changed, removed, all := s.respond(t)
	if all {
		for _, n := range t.sorted {
			changed = append(changed, t.wires[n].delta)
		}
	}
	var out []string
	for _, r := range changed {
		out = append(out, r.Name+"@"+r.Version)
	}
	sort.Strings(out)
	return out, removed
}

func TestDeltaSubWildcard(t *testing.T) {
	v1 := tr(map[string]string{"a": "1", "b": "1", "c": "1"})
	v2 := tr(map[string]string{"a": "1", "b": "2", "d": "1"})
	s := &deltaSub{wildcard: true, names: map[string]struct{}{}}
	got, removed := namesOf(v1, s)
	require.Equal(t, []string{"a@1", "b@1", "c@1"}, got)
	require.Empty(t, removed)
	got, removed = namesOf(v2, s)
	require.Equal(t, []string{"b@2", "d@1"}, got)
	require.Equal(t, []string{"c"}, removed)
	require.Same(t, v2, s.base)
	got, removed = namesOf(v2, s)
	require.Empty(t, got)
	require.Empty(t, removed)

	// A second stream moving v1 → v2 shares the computed difference.
	s2 := &deltaSub{wildcard: true, names: map[string]struct{}{}, base: v1}
	c1, _, _ := s2.respond(v2)
	require.Same(t, v2.diffFrom(v1), v2.diff)
	require.Equal(t, &v2.diff.changed[0], &c1[0], "the changed list is shared, not copied")
}

func TestDeltaSubInitialVersions(t *testing.T) {
	v := tr(map[string]string{"a": "1", "b": "2"})
	s := &deltaSub{wildcard: true, names: map[string]struct{}{}, known: map[string]string{"a": "1", "b": "1", "z": "9"}}
	got, removed := namesOf(v, s)
	require.Equal(t, []string{"b@2"}, got)
	require.Equal(t, []string{"z"}, removed)
}

func TestDeltaSubNamed(t *testing.T) {
	v1 := tr(map[string]string{"a": "1", "b": "1", "c": "1"})
	v2 := tr(map[string]string{"a": "2", "b": "2"})
	s := &deltaSub{names: map[string]struct{}{}}
	s.update([]string{"a", "c", "x"}, nil)
	got, removed := namesOf(v1, s)
	require.Equal(t, []string{"a@1", "c@1"}, got, "only subscribed names; x does not exist")
	require.Empty(t, removed)

	// Subscribing b later sends b alone.
	s.update([]string{"b"}, nil)
	got, _ = namesOf(v1, s)
	require.Equal(t, []string{"b@1"}, got)

	// v2: a and b changed, c removed; x still absent.
	got, removed = namesOf(v2, s)
	require.Equal(t, []string{"a@2", "b@2"}, got)
	require.Equal(t, []string{"c"}, removed)

	// Unsubscribed names are not sent any more.
	s.update(nil, []string{"a"})
	v3 := tr(map[string]string{"a": "3", "b": "2"})
	got, removed = namesOf(v3, s)
	require.Empty(t, got)
	require.Empty(t, removed)

	// Turning on the wildcard sends what the proxy does not hold.
	s.update([]string{"*"}, nil)
	got, removed = namesOf(v3, s)
	require.Equal(t, []string{"a@3"}, got)
	require.Empty(t, removed)
}

func TestBudget(t *testing.T) {
	b := newBudget(100)
	b.acquire(500) // one holder always gets in, whatever its size
	got := make(chan struct{})
	go func() { b.acquire(10); close(got) }()
	select {
	case <-got:
		t.Fatal("acquired beyond the budget")
	case <-time.After(50 * time.Millisecond):
	}
	b.add(20) // a holder's further responses do not wait
	b.release(520)
	<-got
	b.acquire(90) // 10 + 90 fits
	b.release(100)
	require.Zero(t, b.used)
}
