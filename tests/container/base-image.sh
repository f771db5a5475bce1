#!/bin/sh
# Makes a local Debian bookworm base image with python3 from Debian's own packages, for a
# machine that reaches no container registry: debootstrap, trimmed, then `podman import`.
#   tests/container/base-image.sh [IMAGE] [MIRROR]
# MIRROR defaults to the one apt uses here.
set -eu
image=${1:-localhost/asr-base:bookworm}
mirror=${2:-$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/asr-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"
echo "deb $mirror bookworm main" > "$root/etc/apt/sources.list"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
tar -C "$root" --numeric-owner -c . | podman import --change 'CMD ["/bin/bash"]' - "$image"
