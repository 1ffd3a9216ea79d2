package watch

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// TestAcceptedWatchListThenNotServed: a real API server accepted the
// informer's watch-list request, the stream ended before the initial
// events (the CRD was being deleted), and the fallback list got 404. The
// resource never synced, so it is given up on (treated as empty) like any
// resource that is not served; it used to count as "answered" and keep the
// whole source unready for good.
func TestAcceptedWatchListThenNotServed(t *testing.T) {
	s, err := NewKubeSource(KubeOptions{Client: kubefake.NewClientset(), Istio: istiofake.NewSimpleClientset()})
	require.NoError(t, err)
	var r *kubeResource
	for _, x := range s.resources {
		if x.gvr == gvrSidecar {
			r = x
		}
	}
	require.NotNil(t, r)
	ctx := context.Background()
	notServed := apierrors.NewGenericServerResponse(404, "list", gvrSidecar.GroupResource(), "", "", 0, true)

	r.observe(ctx, "watch", nil)
	r.observe(ctx, "list", notServed)
	r.listAndWatchFailed(ctx, notServed)
	require.True(t, r.settled(), "a resource that never synced and is not served is given up on")
	st := r.status()
	require.Equal(t, "unavailable", st.State)
	require.Equal(t, reasonNotServed, st.Reason)
}
