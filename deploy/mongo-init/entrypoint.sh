#!/usr/bin/env bash
# MongoDB container entrypoint: make sure the replica-set keyfile exists, then hand over to the
# official image's entrypoint (which creates the root user on first start and drops to `mongodb`).
#
# Why: authentication together with --replSet requires a keyfile (members authenticate to each
# other with it, even in a one-member set). It is generated once, on first start, into its own
# named volume, so no secret is committed and none is baked into an image. mongod refuses a
# keyfile that others can read, so it is mode 400 and owned by the image's mongodb user (999).
#
# The keyfile path is read from the command's --keyFile argument, so compose.yaml names it once.
set -euo pipefail

keyfile=""
prev=""
for arg in "$@"; do
  case "$arg" in
    --keyFile=*) keyfile="${arg#--keyFile=}" ;;
  esac
  if [ "$prev" = "--keyFile" ]; then
    keyfile="$arg"
  fi
  prev="$arg"
done
if [ -z "$keyfile" ]; then
  echo "mongo entrypoint: the command has no --keyFile PATH; add it to the mongo command in compose.yaml" >&2
  exit 2
fi

if [ ! -s "$keyfile" ]; then
  mkdir -p "$(dirname "$keyfile")"
  # 756 random bytes -> 1008 base64 characters (mongod accepts 6 to 1024 base64 characters).
  # Written to a temp file (mode 600) and renamed, so a crash never leaves a half-written keyfile.
  tmp="$(mktemp "$keyfile.XXXXXX")"
  head -c 756 /dev/urandom | base64 | tr -d '\n' >"$tmp"
  mv -f "$tmp" "$keyfile"
  echo "mongo entrypoint: generated the replica-set keyfile $keyfile" >&2
fi
chmod 400 "$keyfile"
if [ "$(id -u)" = "0" ]; then
  chown 999:999 "$keyfile" # uid/gid of the `mongodb` user in the official image
fi

exec "${MONGO_DOCKER_ENTRYPOINT:-docker-entrypoint.sh}" "$@"
