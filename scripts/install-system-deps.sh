#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, only when something is missing.
set -euo pipefail
need=()
command -v podman >/dev/null 2>&1 || need+=(podman buildah skopeo uidmap)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
[ -x /usr/bin/busybox ] || [ -x /bin/busybox ] || need+=(busybox-static)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v git >/dev/null 2>&1 || need+=(git)
[ -x /usr/sbin/squid ] || need+=(squid)
command -v sudo >/dev/null 2>&1 || need+=(sudo)  # tests of --use-sudo with the real sudo
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
