#!/usr/bin/env bash
# Makes promtool available for the alert rules check (deploy/): Debian's
# prometheus package ships it. Idempotent and never fails the build: without
# promtool the test says so loudly and checks the rules' shape only.
set -u

if command -v promtool >/dev/null 2>&1; then
	echo "promtool.sh: $(promtool --version 2>&1 | head -1)"
	exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "promtool.sh: WARNING promtool not found and cannot install it (need root and apt-get)" >&2
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends prometheus >/dev/null &&
	command -v promtool >/dev/null 2>&1; then
	# The package may start a Prometheus service; the tests do not use it.
	if command -v service >/dev/null 2>&1; then
		service prometheus stop >/dev/null 2>&1 || true
	fi
	echo "promtool.sh: installed $(promtool --version 2>&1 | head -1)"
else
	echo "promtool.sh: WARNING apt-get install prometheus failed; promtool check rules will be skipped" >&2
fi
exit 0
