#!/usr/bin/env bash
# Benchmarks cairn mount: `ls -lR` over a snapshot of many files, sequential and
# random reads of a large file through the mount, against `cairn restore` of the
# same file, and listing a repository with many snapshots. Run as root.
#
# Env: WORK (default /var/tmp/cairn-bench-mount), FILES (default 100000),
#      BIG_MIB (default 1024), SNAPSHOTS (default 1000), KEEP=1 keeps the work folder.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/var/tmp/cairn-bench-mount}
FILES=${FILES:-100000}
BIG_MIB=${BIG_MIB:-1024}
SNAPSHOTS=${SNAPSHOTS:-1000}
mnt=$WORK/mnt

cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && fusermount -u "$mnt" || true
	wait 2>/dev/null || true
	[[ "${KEEP:-}" == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
timed() { # timed NAME CMD...: prints "NAME wall_s peak_MiB"
	local name=$1; shift
	sync; echo 3 > /proc/sys/vm/drop_caches
	local out
	out=$( { /usr/bin/time -f '%e %M' "$@" >/dev/null; } 2>&1 | tail -1)
	echo "$name $out"
}

rm -rf "$WORK"; mkdir -p "$WORK/src/many" "$mnt"
log "building cairn"
(cd "$root" && go build -o "$WORK/cairn" ./cmd/cairn)
cairn="$WORK/cairn"
export CAIRN_REPO=$WORK/repo CAIRN_PASSWORD=bench

log "making $FILES small files and a $BIG_MIB MiB file"
python3 - "$WORK/src/many" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d" % i), "wb") as f:
        f.write(b"%d\n" % i)
PY
head -c $((BIG_MIB << 20)) /dev/urandom > "$WORK/src/big.bin"
$cairn init -q --insecure-kdf  # 1000 backups below: skip the 0.5 s password hash of each run
$cairn backup -q "$WORK/src"

log "restore of the big file (the reference for reads)"
rows=()
rows+=("$(timed restore-big $cairn restore -q "latest:$WORK/src/big.bin" --target "$WORK/restored")")

log "mounting"
$cairn mount "$mnt" >/dev/null 2>&1 &
for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
snap=$mnt/latest$WORK/src
rows+=("$(timed ls-lR ls -lR "$snap/many")")
rows+=("$(timed seq-read cat "$snap/big.bin")")
rows+=("$(timed random-read python3 -c '
import os, random, sys
f = os.open(sys.argv[1], os.O_RDONLY); size = os.fstat(f).st_size; r = random.Random(1)
for _ in range(2000):
    os.pread(f, 65536, r.randrange(0, size - 65536))
' "$snap/big.bin")")
fusermount -u "$mnt"; wait || true

log "making $SNAPSHOTS snapshots"
mkdir -p "$WORK/tiny"; echo x > "$WORK/tiny/x"
for i in $(seq "$SNAPSHOTS"); do $cairn backup -q --force --tag "t$((i % 10))" "$WORK/tiny"; done
rows+=("$(timed snapshots-list $cairn snapshots)")
$cairn mount "$mnt" >/dev/null 2>&1 &
for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.1; done
rows+=("$(timed mount-ls-snapshots ls "$mnt/snapshots")")
fusermount -u "$mnt"; wait || true

echo "# cairn mount benchmark"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; $(uname -r)"
echo "- $FILES small files in folders of 1000; a $BIG_MIB MiB random file; $SNAPSHOTS snapshots"
echo
echo "| step | wall s | peak MiB | note |"
echo "| --- | ---: | ---: | --- |"
declare -A wall
for r in "${rows[@]}"; do
	read -r name secs kib <<<"$r"
	wall[$name]=$secs
	note=""
	case $name in
	seq-read|restore-big) note="$(python3 -c "print(f'{$BIG_MIB/max($secs,0.001):.0f} MiB/s')")" ;;
	random-read) note="2000 reads of 64 KiB" ;;
	ls-lR) note="$FILES files" ;;
	esac
	echo "| $name | $secs | $((kib / 1024)) | $note |"
done
echo
python3 -c "print(f'sequential read through the mount / restore speed = {float(\"${wall[restore-big]}\")/max(float(\"${wall[seq-read]}\"),0.001):.2f}')"
