#!/usr/bin/env bash
# Builds the Dockerfile without Docker Hub and checks the image's runtime contract.
#
# Docker Hub may be out of reach (CI, an offline machine), but Debian's archive and PyPI are
# not: a debootstrap'd Debian with a Python environment and the Makefile's torch stands in for
# the official PyTorch image (only FROM changes, through --build-arg BASE), and buildah builds
# the real Dockerfile rootless-style (chroot isolation, vfs storage: no daemon, no overlayfs).
# Then, inside the image, as its own user:
#   1. `--print_config` runs, as uid 1000;
#   2. a 2-step CPU fit exits 0 and writes last.ckpt into the bind-mounted checkpoints/;
#   3. a bad config exits 2 with exactly one `error:` line.
# Needs root, buildah and debootstrap (apt-get install buildah debootstrap). Slow (minutes):
# not part of `make test`; run it as `make docker-check`. The stand-in and the build's layers
# stay in buildah's store, so a rerun after a code edit rebuilds only the last layers.
#
#   WORK=/var/tmp/maestro-lit-docker  stand-in rootfs and wheels
#   TORCH_WHEEL=/path/to/torch-*.whl   the stand-in's torch (default: `pip download` of the Makefile's)
#   HOST_CA=/etc/ssl/certs/ca-certificates.crt  the stand-in trusts what this host trusts (a TLS proxy's CA)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/var/tmp/maestro-lit-docker}
IMAGE=${IMAGE:-localhost/maestro-lit:check}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
STANDIN=localhost/maestro-lit-standin:$SUITE

for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found (apt-get install buildah debootstrap)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "error: docker/check.sh needs root (debootstrap, buildah's chroot isolation)" >&2; exit 2; }
torch_version=$(sed -n 's/^TORCH ?= torch==\([^ ]*\)$/\1/p' Makefile)

bh() { buildah --storage-driver vfs "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }
failures=0
report() {  # name, ok (0/1), start time, detail
  if [ "$2" = 0 ]; then echo "[check] PASS $1 ($(since "$3")) $4"; else echo "[check] FAIL $1 ($(since "$3")) $4"; failures=$((failures + 1)); fi
}

build_standin() {
  # The official image's contract, as the Dockerfile uses it: `python` on PATH with pip and torch,
  # root for the build, and (as on Ubuntu 24.04 bases) a stock user already holding uid 1000.
  # It trusts the host's CA bundle, so that pip reaches PyPI wherever the host does.
  mkdir -p "$WORK"
  if [ ! -x "$WORK/rootfs/usr/bin/python3" ]; then
    rm -rf "$WORK/rootfs.partial"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$WORK/rootfs.partial" "$MIRROR"
    mv "$WORK/rootfs.partial" "$WORK/rootfs"
  fi
  local wheel=${TORCH_WHEEL:-}
  if [ -z "$wheel" ]; then
    python3 -m pip download --quiet --no-deps --dest "$WORK/wheels" "torch==$torch_version"
    wheel=$(ls "$WORK"/wheels/torch-"$torch_version"*.whl | head -n 1)
  fi
  local ctr mnt
  ctr=$(bh from scratch)
  trap 'bh rm "$ctr" >/dev/null 2>&1 || true' EXIT
  mnt=$(bh mount "$ctr")
  cp -a "$WORK/rootfs/." "$mnt/"
  cp "$wheel" "$mnt/tmp/"
  if [ -f "$HOST_CA" ]; then cp "$HOST_CA" "$mnt/etc/ssl/certs/ca-certificates.crt"; fi
  bh umount "$ctr" >/dev/null
  bh config --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$ctr"
  bh run --isolation chroot "$ctr" -- sh -c 'python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --quiet --no-cache-dir /tmp/torch-*.whl \
    && rm /tmp/torch-*.whl && useradd --uid 1000 --create-home ubuntu'
  bh config --env PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 "$ctr"
  bh commit --quiet --rm "$ctr" "$STANDIN" >/dev/null
  trap - EXIT
}

t=$(now)
if bh inspect --type image "$STANDIN" >/dev/null 2>&1; then
  echo "[check] stand-in $STANDIN: cached"
else
  build_standin
  echo "[check] stand-in $STANDIN: built ($(since "$t"))"
fi

t=$(now)
bh bud --isolation chroot --layers --pull=never --build-arg "BASE=$STANDIN" -t "$IMAGE" -f Dockerfile .
size=$(bh images --format '{{.Size}}' "$IMAGE" | head -n 1)
echo "[check] built $IMAGE in $(since "$t"), size $size"

t=$(now)
ckpt=$(mktemp -d)
logs=$(mktemp -d)
ctr=$(bh from --pull=never "$IMAGE")
trap 'bh rm "$ctr" >/dev/null 2>&1 || true; rm -rf "$ckpt" "$logs"' EXIT
echo "[check] container from $IMAGE ($(since "$t"))"
chown 1000:1000 "$ckpt"  # what `docker run -v $PWD/checkpoints:...` needs too: a folder uid 1000 can write
mapfile -t entrypoint < <(bh inspect --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$IMAGE" | sed '/^$/d')

in_image() {  # the image's ENTRYPOINT with these arguments, as the image's USER, uid printed first
  bh run --isolation chroot --volume "$ckpt:/app/checkpoints" "$ctr" -- \
    sh -c 'echo "uid=$(id -u)"; exec "$@"' sh "${entrypoint[@]}" "$@"
}

t=$(now)
rc=0
in_image fit --config configs/quickstart.yaml --print_config >"$logs/print_config" 2>&1 || rc=$?
ok=1
[ "$rc" = 0 ] && grep -qx 'uid=1000' "$logs/print_config" && grep -q '^seed_everything:' "$logs/print_config" && ok=0
report "print_config" "$ok" "$t" "exit $rc, $(head -n 1 "$logs/print_config")"
[ "$ok" = 0 ] || tail -n 20 "$logs/print_config"

t=$(now)
rc=0
in_image fit --config configs/base/cpu.yaml --config configs/models/tiny.yaml --config configs/rewards/five.yaml \
  --config configs/tasks/prompts.yaml --trainer.max_steps 2 >"$logs/fit" 2>&1 || rc=$?
last=$(find "$ckpt" -name last.ckpt -user 1000 | head -n 1)
ok=1
[ "$rc" = 0 ] && [ -n "$last" ] && ok=0
report "2-step CPU fit" "$ok" "$t" "exit $rc, ${last:+checkpoints/${last#"$ckpt"/} }"
[ "$ok" = 0 ] || tail -n 20 "$logs/fit"

t=$(now)
rc=0
in_image fit --config configs/quickstart.yaml --model.grpo_settings.num_generations=1 >"$logs/bad" 2>&1 || rc=$?
errors=$(grep -c '^error:' "$logs/bad" || true)
ok=1
[ "$rc" = 2 ] && [ "$errors" = 1 ] && ok=0
report "bad config" "$ok" "$t" "exit $rc, $(grep '^error:' "$logs/bad" | head -n 1)"
[ "$ok" = 0 ] || tail -n 20 "$logs/bad"

[ "$failures" = 0 ] && echo "[check] all passed" || { echo "[check] $failures failed"; exit 1; }
