#!/usr/bin/env bash
# Makes helm available for the chart checks (deploy/): go install of the pinned
# release into $(go env GOPATH)/bin, where the tests look for it when it is not on
# PATH. The build takes about two minutes once; later runs reuse the binary.
# Idempotent and never fails the build: without helm the tests fail under CI=true
# and say so loudly elsewhere.
set -u

HELM_VERSION=v4.3.2
bin="$(go env GOPATH)/bin/helm"

if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -q "helm.sh/helm/v4[[:space:]]*${HELM_VERSION}"; then
	echo "helm.sh: $("$bin" version --short)"
	exit 0
fi

if GOFLAGS=-buildvcs=false go install "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"; then
	echo "helm.sh: installed $("$bin" version --short)"
else
	echo "helm.sh: WARNING go install helm.sh/helm/v4/cmd/helm@${HELM_VERSION} failed; the chart checks cannot run" >&2
fi
exit 0
