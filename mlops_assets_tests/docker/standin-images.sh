#!/usr/bin/env bash
# Local stand-ins for the two registry images the stack is built on, for machines that reach
# package registries but no container registry: a Debian bookworm root filesystem made by
# debootstrap from Debian's packages (Python 3.11, PostgreSQL 15), imported twice.
#   standin-images.sh PYTHON_TAG POSTGRES_TAG
# The machine's CA bundle goes into the image so pip/uv inside `docker build` trust the same
# TLS proxy the host does; users' builds use the official python:3.11-slim instead.
set -euo pipefail
python_tag=$1 postgres_tag=$2
here=$(cd "$(dirname "$0")" && pwd)
rootfs=$(mktemp -d /tmp/mlops-standin-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,postgresql \
  bookworm "$rootfs" http://deb.debian.org/debian >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
chmod 755 "$rootfs"  # mktemp made it 0700: the image's / must be open to non-root users
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
install -m 755 "$here/postgres-entrypoint.sh" "$rootfs/usr/local/bin/postgres-entrypoint"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/lib/postgresql/15/main
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' - "$python_tag" >/dev/null
# the same filesystem, started the way the official postgres image starts
printf 'FROM %s\nENV PGDATA=/var/lib/postgresql/data\nENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]\n' "$python_tag" \
  | docker build -q -t "$postgres_tag" - >/dev/null
