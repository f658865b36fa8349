#!/usr/bin/env bash
# Second check of docker-compose.yml, after deploy/compose_test.go (compose-go,
# the library of `docker compose`, is the authority): Debian's docker-compose
# (1.29, the Python one) validates the file against its own schema, profile
# services included. 1.29 refuses a top-level `name:` key, so the file has
# none (the project is named after its directory).
#
# Installs docker-compose when it can (root and apt-get). Without it the
# check is skipped, loudly; with it, a file it refuses fails the build.
set -u
cd "$(dirname "$0")/.."

if ! command -v docker-compose >/dev/null 2>&1; then
	if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null &&
			apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
	fi
fi
if ! command -v docker-compose >/dev/null 2>&1; then
	echo "compose.sh: !! WARNING docker-compose not found and could not be installed: docker-compose config did NOT run (deploy/compose_test.go still checks the file)" >&2
	exit 0
fi

echo "compose.sh: $(docker-compose version --short 2>/dev/null || docker-compose version | head -1)"
# The ${VAR:-default} forms take their defaults: no variable of this
# environment or .env file reaches the check.
noenv=$(mktemp)
trap 'rm -f "$noenv"' EXIT
if ! env -i PATH="$PATH" HOME="${HOME:-/tmp}" docker-compose -f docker-compose.yml --env-file "$noenv" config -q; then
	echo "compose.sh: docker-compose refuses docker-compose.yml" >&2
	exit 1
fi
echo "compose.sh: docker-compose.yml is valid"
