#!/usr/bin/env bash
# Makes a real redis-server available on PATH for the store contract tests
# (internal/store/redisstore runs its suite against it when present).
#
# The tests start their own redis-server on a random port in a temp dir; this
# script only installs the binary. It is idempotent and never fails the build:
# when redis-server cannot be installed the tests say so loudly and fall back
# to miniredis only.
set -u

if command -v redis-server >/dev/null 2>&1; then
	echo "redis.sh: $(redis-server --version)"
	exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "redis.sh: WARNING redis-server not found and cannot install it (need root and apt-get)" >&2
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends redis-server >/dev/null &&
	command -v redis-server >/dev/null 2>&1; then
	# The Debian package may start a system service; the tests do not use it.
	if command -v service >/dev/null 2>&1; then
		service redis-server stop >/dev/null 2>&1 || true
	fi
	echo "redis.sh: installed $(redis-server --version)"
else
	echo "redis.sh: WARNING apt-get install redis-server failed; real-Redis tests will be skipped" >&2
fi
exit 0
