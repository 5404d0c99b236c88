#!/usr/bin/env bash
# Prepare a Debian host to build and run ferry's container image with podman,
# where no Docker engine runs and no container registry can be reached.
#
#   sudo tools/container-setup.sh
#
# Idempotent: every step checks first and does nothing when already done.
#  1. podman, runc and debootstrap from Debian's archive.
#  2. /etc/containers/containers.conf: runtime runc (crun fails on hybrid
#     cgroups) and default_ulimits = [] (the default ulimits cannot be raised on
#     such hosts, and every container would fail to start).
#  3. docker.io/library/debian:bookworm-slim, the Dockerfile's build base: pulled
#     when a registry answers, otherwise built here with debootstrap from the
#     Debian archive (about a minute) and imported under that name.
#  4. A throwaway container from that image starts and exits.
# A host where `docker info` succeeds needs none of this.
set -euo pipefail

BASE_IMAGE=docker.io/library/debian:bookworm-slim
CONF=/etc/containers/containers.conf

log() { printf 'container-setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (apt-get, /etc/containers, podman storage)"
    exit 1
fi

# 1. Packages.
missing=()
for pkg in podman runc debootstrap; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "podman, runc, debootstrap already installed"
fi

# 2. containers.conf. Settings are added to the existing file (or a new one),
#    never duplicated; other settings in it are left alone.
mkdir -p /etc/containers
touch "$CONF"
set_key() { # set_key SECTION KEY VALUE: add KEY = VALUE under [SECTION] unless KEY is set there
    local section=$1 key=$2 value=$3
    if awk -v s="[$section]" -v k="$key" '
        /^[[:space:]]*\[/ { in_s = ($0 ~ "^[[:space:]]*\\[" substr(s, 2, length(s) - 2) "\\]") }
        in_s && $0 ~ "^[[:space:]]*" k "[[:space:]]*=" { found = 1 }
        END { exit !found }' "$CONF"; then
        return 0
    fi
    log "$CONF: [$section] $key = $value"
    if grep -q "^[[:space:]]*\[$section\]" "$CONF"; then
        sed -i "/^[[:space:]]*\[$section\]/a $key = $value" "$CONF"
    else
        printf '\n[%s]\n%s = %s\n' "$section" "$key" "$value" >>"$CONF"
    fi
}
set_key containers default_ulimits '[]'
set_key engine runtime '"runc"'

# 3. The build stage's base image.
if podman image exists "$BASE_IMAGE"; then
    log "$BASE_IMAGE present"
elif timeout 60 podman pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    log "pulled $BASE_IMAGE"
else
    log "cannot pull $BASE_IMAGE; building it with debootstrap (about a minute)"
    root=$(mktemp -d /var/tmp/ferry-bookworm.XXXXXX)
    trap 'rm -rf "$root" "$root.log"' EXIT
    debootstrap --variant=minbase bookworm "$root" >"$root.log" 2>&1 || {
        tail -20 "$root.log" >&2
        exit 1
    }
    rm -f "$root.log"
    # Trim what a slim image does not carry either.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
    tar -C "$root" -c . | podman import --quiet \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$BASE_IMAGE" >/dev/null
    log "imported $BASE_IMAGE"
fi

# 4. A container really starts (runtime, ulimits, storage).
if ! out=$(timeout 120 podman run --rm --network host "$BASE_IMAGE" true 2>&1); then
    log "a test container does not start: $out"
    exit 1
fi
log "ready: $(podman --version), a test container runs"
