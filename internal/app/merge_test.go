package app

import (
	"testing"

	"github.com/stretchr/testify/require"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

func seIn(name string, src inputs.Source) *inputs.ServiceEntry {
	return inputs.NewServiceEntry(&networking.ServiceEntry{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}, src)
}

func meshWith(mode meshconfig.MeshConfig_OutboundTrafficPolicy_Mode) *meshconfig.MeshConfig {
	m := inputs.DefaultMesh()
	m.OutboundTrafficPolicy.Mode = mode
	return m
}

func TestMerge(t *testing.T) {
	file := inputs.Source{File: "a.yaml", Doc: 1}
	kube := inputs.Source{Kube: "12"}
	files := &inputs.Inputs{ServiceEntries: []*inputs.ServiceEntry{seIn("a", file), seIn("both", file)},
		Mesh: inputs.DefaultMesh(), Problems: []inputs.Problem{{Severity: inputs.SeverityWarning, Message: "from files"}}}
	cluster := &inputs.Inputs{ServiceEntries: []*inputs.ServiceEntry{seIn("both", kube), seIn("k", kube)},
		Mesh: meshWith(meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY), MeshSource: kube}

	require.Same(t, files, Merge(files, nil))
	require.Same(t, cluster, Merge(nil, cluster))

	m := Merge(files, cluster)
	var got []string
	for _, se := range m.ServiceEntries {
		got = append(got, se.Name+"@"+se.GetSource().String())
	}
	require.Equal(t, []string{"a@a.yaml (document 1)", "both@a.yaml (document 1)", "k@kubernetes (resourceVersion 12)"}, got)
	require.Len(t, m.Problems, 2)
	require.Equal(t, "from files", m.Problems[0].Message)
	require.Equal(t, "kubernetes (resourceVersion 12): ServiceEntry default/both: also defined in a.yaml (document 1): the file's version is used",
		m.Problems[1].Error())
	require.Len(t, files.Problems, 1, "the sources' inputs are not modified")

	// Mesh config: the cluster's ConfigMap unless the files have one (or --mesh).
	require.Equal(t, kube, m.MeshSource)
	require.Equal(t, meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY, m.Mesh.OutboundTrafficPolicy.Mode)
	files.Mesh, files.MeshSource = meshWith(meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY), inputs.Source{File: "mesh.yaml"}
	m = Merge(files, cluster)
	require.Equal(t, "mesh.yaml", m.MeshSource.File)
	require.Equal(t, meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY, m.Mesh.OutboundTrafficPolicy.Mode)
	cluster.Mesh, cluster.MeshSource = inputs.DefaultMesh(), inputs.Source{}
	files.MeshSource = inputs.Source{}
	require.Equal(t, inputs.Source{}, Merge(files, cluster).MeshSource, "neither: Istio's defaults")
}
