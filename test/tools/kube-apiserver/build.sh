#!/usr/bin/env bash
# Builds kube-apiserver from this module into the user cache, for test/kubeenv.
# Skips the build when the binary was made from the same go.mod, go.sum,
# main.go and Go toolchain. The first build takes several minutes.
#
#   test/tools/kube-apiserver/build.sh [OUT]
#
# OUT defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/chokepoint/bin/kube-apiserver,
# which is where test/kubeenv looks when KUBE_APISERVER is unset.
set -euo pipefail
cd "$(dirname "$0")"

out=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/chokepoint/bin/kube-apiserver}
go=${GO:-go}

k8s_version=$("$go" list -m -f "{{.Version}}" k8s.io/kubernetes)
stamp=$( { cat go.mod go.sum main.go; "$go" version; } | sha256sum | cut -d' ' -f1)

if [[ -x $out && -f $out.stamp && $(cat "$out.stamp") == "$stamp" ]]; then
	echo "kube-apiserver $k8s_version is up to date: $out"
	exit 0
fi

echo "building kube-apiserver $k8s_version into $out (takes several minutes the first time)"
mkdir -p "$(dirname "$out")"
pkg=k8s.io/component-base/version
minor=${k8s_version#v1.}
minor=${minor%%.*}
"$go" build -o "$out.tmp" -ldflags "-s -w \
	-X $pkg.gitVersion=$k8s_version \
	-X $pkg.gitMajor=1 \
	-X $pkg.gitMinor=$minor \
	-X $pkg.gitTreeState=clean" .
mv "$out.tmp" "$out"
echo "$stamp" >"$out.stamp"
"$out" --version
