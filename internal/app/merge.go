package app

import (
	"slices"

	"github.com/chokepoint-xds/chokepoint/inputs"
)

// Merge combines the inputs read from files with those read from a
// Kubernetes API server; either may be nil.
//
//   - Objects: all of both. An object defined in both (same kind,
//     namespace and name) is taken from the files, with a warning: local
//     files are how one tries a change before applying it.
//   - Mesh config: the --mesh file if given, else an istio ConfigMap among
//     the files, else the cluster's istio ConfigMap, else Istio's defaults.
//     The file source reports the first two, the Kubernetes source the
//     third; an empty MeshSource means defaults.
func Merge(files, kube *inputs.Inputs) *inputs.Inputs {
	switch {
	case kube == nil:
		return files
	case files == nil:
		return kube
	}
	out := &inputs.Inputs{
		Mesh: files.Mesh, MeshSource: files.MeshSource,
		Problems: make([]inputs.Problem, 0, len(files.Problems)+len(kube.Problems)),
	}
	if files.MeshSource == (inputs.Source{}) && kube.MeshSource != (inputs.Source{}) {
		out.Mesh, out.MeshSource = kube.Mesh, kube.MeshSource
	}
	out.Problems = append(append(out.Problems, files.Problems...), kube.Problems...)
	p := &out.Problems
	out.ServiceEntries = mergeObjects(files.ServiceEntries, kube.ServiceEntries, p)
	out.Gateways = mergeObjects(files.Gateways, kube.Gateways, p)
	out.VirtualServices = mergeObjects(files.VirtualServices, kube.VirtualServices, p)
	out.DestinationRules = mergeObjects(files.DestinationRules, kube.DestinationRules, p)
	out.Sidecars = mergeObjects(files.Sidecars, kube.Sidecars, p)
	out.Services = mergeObjects(files.Services, kube.Services, p)
	out.Endpoints = mergeObjects(files.Endpoints, kube.Endpoints, p)
	out.EndpointSlices = mergeObjects(files.EndpointSlices, kube.EndpointSlices, p)
	out.Namespaces = mergeObjects(files.Namespaces, kube.Namespaces, p)
	return out
}

func mergeObjects[T inputs.Object](files, kube []T, problems *[]inputs.Problem) []T {
	// Clip, so an append to the result never writes into a source's array.
	if len(files) == 0 {
		return slices.Clip(kube)
	}
	if len(kube) == 0 {
		return slices.Clip(files)
	}
	local := make(map[string]inputs.Object, len(files))
	out := make([]T, 0, len(files)+len(kube))
	for _, o := range files {
		local[o.KindName()] = o
		out = append(out, o)
	}
	for _, o := range kube {
		if f, ok := local[o.KindName()]; ok {
			*problems = append(*problems, inputs.ProblemFor(inputs.SeverityWarning, o, "",
				"also defined in %s: the file's version is used", f.GetSource()))
			continue
		}
		out = append(out, o)
	}
	return out
}
