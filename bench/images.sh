#!/usr/bin/env bash
# System-image benchmark: cairn against partclone+zstd, dd|zstd and restic --stdin,
# side by side in one run, on one disk image file with a GPT, an EFI partition and
# an ext4 root filled like a used system.
#
#   sudo bench/images.sh > bench/results-images.md
#
# Environment:
#   DISK_GIB    size of the test disk in GiB (default 4)
#   WORK        work folder (default /var/tmp/cairn-bench-img; must not be on tmpfs)
#   FILL_PCT    how full the ext4 root is, in percent (default 75)
#   CHANGE_PCT  percent of the root's used bytes changed before the incremental (default 2)
#   CHANGE_PICK how files to change are picked: mixed (default: half the bytes each way),
#               bytes (by size: large files more often) or files (by count: mostly small files)
#   SEED        seed of the generated data (default 42)
#   ROUNDS      run every timed step this many times, the tools taking turns, and
#               report each tool's fastest round (default 1)
#   KEEP=1      keep the work folder afterwards
#   DROP_CACHES=0  do not drop the page cache before timed steps (default 1)
#   INSTALL=0   do not apt-get install missing tools (default 1)
#   CAIRN_REF   build cairn from this git commit (git archive) instead of the working tree
#
# The Markdown report goes to stdout, progress to stderr.
set -euo pipefail

DISK_GIB=${DISK_GIB:-4}
WORK=${WORK:-/var/tmp/cairn-bench-img}
FILL_PCT=${FILL_PCT:-75}
CHANGE_PCT=${CHANGE_PCT:-2}
CHANGE_PICK=${CHANGE_PICK:-mixed}
case "$CHANGE_PICK" in mixed|bytes|files) ;; *) echo "CHANGE_PICK must be mixed, bytes or files" >&2; exit 2 ;; esac
SEED=${SEED:-42}
ROUNDS=${ROUNDS:-1}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive number" >&2; exit 2; }
KEEP=${KEEP:-0}
DROP_CACHES=${DROP_CACHES:-1}
INSTALL=${INSTALL:-1}
CAIRN_REF=${CAIRN_REF:-}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
TREE="$PY $HERE/files-tree.py"
DISKPY="$PY $HERE/images-disk.py"
TIME=/usr/bin/time
TOOLS="cairn pcl dd restic"     # column order of the report

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (loop devices, mounts, page-cache drop): sudo $0"
case "$WORK" in /*) ;; *) die "WORK must be an absolute path" ;; esac
case "$WORK" in *[[:space:]]*) die "WORK must not contain spaces" ;; esac

# ------------------------------------------------------------------ tools
# command -> Debian package
declare -A PKG=(
    [partclone.ext4]=partclone [partclone.vfat]=partclone [zstd]=zstd [restic]=restic
    [sgdisk]=gdisk [mkfs.vfat]=dosfstools [fsck.vfat]=dosfstools [mkfs.ext4]=e2fsprogs
    [e2fsck]=e2fsprogs [mcopy]=mtools [losetup]=mount [partx]=util-linux
    [sfdisk]=fdisk [openssl]=openssl [python3]=python3
)
missing=()
for c in "${!PKG[@]}"; do command -v "$c" >/dev/null 2>&1 || missing+=("${PKG[$c]}"); done
[ -x "$TIME" ] || missing+=(time)
if [ "${#missing[@]}" -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (INSTALL=0)"
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
PY=/usr/bin/python3; [ -x "$PY" ] || PY=$(command -v python3)
TREE="$PY $HERE/files-tree.py"; DISKPY="$PY $HERE/images-disk.py"

# The work folder must be on a real disk: on a tmpfs, "cold" reads would be RAM reads.
mkdir -p "$WORK"
fstype=$(df --output=fstype "$WORK" | tail -n 1 | tr -d ' ')
case "$fstype" in tmpfs|ramfs) die "$WORK is on $fstype; set WORK to a folder on disk" ;; esac
DISK_BYTES=$(awk -v g="$DISK_GIB" 'BEGIN { printf "%.0f", g * 1073741824 / 1048576 }')
DISK_BYTES=$(( DISK_BYTES * 1048576 ))        # whole MiB
[ "$DISK_BYTES" -ge $((768 * 1048576)) ] || die "DISK_GIB=$DISK_GIB is too small (at least 0.75)"
need=$(( DISK_BYTES / 1024 * 6 ))   # KiB: disk + two dd/partclone images + repos + restore
avail=$(df --output=avail -k "$WORK" | tail -n 1 | tr -d ' ')
[ "$avail" -gt "$need" ] || die "$WORK has $((avail/1024/1024)) GiB free; about $((need/1024/1024)) GiB needed"

# ------------------------------------------------------------------ cleanup
LOOPS=()     # loop devices this script attached
MOUNTS=()    # mount points this script mounted
cleanup() {
    local rc=$? i
    set +e
    for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do
        mountpoint -q "${MOUNTS[$i]}" && { umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}"; }
    done
    for i in "${LOOPS[@]}"; do losetup -d "$i" 2>/dev/null; done
    # loop devices left on our files by a failed step (attached by this script only)
    for f in "$WORK"/disk.img "$WORK"/restore/*.img; do
        [ -e "$f" ] || continue
        losetup -j "$f" -O NAME -n 2>/dev/null | while read -r d; do losetup -d "$d"; done
    done
    if [ "$KEEP" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "${WORK:?}/disk.img" "$WORK/repos" "$WORK/out" "$WORK/restore" "$WORK/home" \
            "$WORK/bin" "$WORK/times" "$WORK/logs" "$WORK/manifests" "$WORK/mnt" "$WORK/efi" \
            "$WORK/base" "$WORK/password"
        rmdir "$WORK" 2>/dev/null
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# attach FILE OFFSET SIZE [ro]: a loop device over FILE[OFFSET, OFFSET+SIZE) in $LOOP
attach() {
    local ro=()
    [ "${4:-}" = ro ] && ro=(-r)
    LOOP=$(losetup -f --show "${ro[@]}" -o "$2" --sizelimit "$3" "$1")
    LOOPS+=("$LOOP")
}
detach() {
    local d=$1 i
    losetup -d "$d"
    for i in "${!LOOPS[@]}"; do [ "${LOOPS[$i]}" = "$d" ] && unset "LOOPS[$i]"; done
    LOOPS=("${LOOPS[@]}")
}
mnt() { # DEV DIR [OPTS]
    mkdir -p "$2"
    mount ${3:+-o "$3"} "$1" "$2"
    MOUNTS+=("$2")
}
umnt() {
    local m=$1 i
    umount "$m"
    for i in "${!MOUNTS[@]}"; do [ "${MOUNTS[$i]}" = "$m" ] && unset "MOUNTS[$i]"; done
    MOUNTS=("${MOUNTS[@]}")
}

rm -rf "${WORK:?}/disk.img" "$WORK/repos" "$WORK/out" "$WORK/restore" "$WORK/times" \
    "$WORK/logs" "$WORK/manifests" "$WORK/mnt" "$WORK/efi" "$WORK/home" "$WORK/base"
mkdir -p "$WORK/bin" "$WORK/repos" "$WORK/out" "$WORK/restore" "$WORK/home" "$WORK/times" \
    "$WORK/logs" "$WORK/manifests"
DISK=$WORK/disk.img

# ------------------------------------------------------------------ build cairn
GO=$(command -v go || true)
[ -n "$GO" ] || GO=/usr/local/go/bin/go
CAIRN=$WORK/bin/cairn
SRCDIR=$ROOT
if [ -n "$CAIRN_REF" ]; then
    # a clean tree of one commit, without touching the checkout
    SRCDIR=$WORK/bin/src
    rm -rf "$SRCDIR"; mkdir -p "$SRCDIR"
    git -c safe.directory='*' -C "$ROOT" archive "$CAIRN_REF" | tar -x -C "$SRCDIR" ||
        die "git archive $CAIRN_REF failed"
    CAIRN_COMMIT=$(git -c safe.directory='*' -C "$ROOT" rev-parse --short "$CAIRN_REF")
else
    CAIRN_COMMIT=$(git -c safe.directory='*' -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -c safe.directory='*' -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        CAIRN_COMMIT="$CAIRN_COMMIT (+ uncommitted changes)"
    fi
fi
log "building cairn in $SRCDIR"
if ! (cd "$SRCDIR" && "$GO" build -o "$CAIRN" ./cmd/cairn) >"$WORK/bin/build.log" 2>&1; then
    # git refusing a checkout owned by another user breaks VCS stamping only
    (cd "$SRCDIR" && "$GO" build -buildvcs=false -o "$CAIRN" ./cmd/cairn) \
        >"$WORK/bin/build.log" 2>&1 || { cat "$WORK/bin/build.log" >&2; die "cairn does not build (CAIRN_REF=HEAD builds the last commit)"; }
fi

# Tools keep caches and state under $WORK/home, not in root's home.
export HOME=$WORK/home
export XDG_CACHE_HOME=$WORK/home/.cache XDG_CONFIG_HOME=$WORK/home/.config XDG_DATA_HOME=$WORK/home/.local/share
PASSWORD=bench-password-not-secret
printf '%s\n' "$PASSWORD" > "$WORK/password"
export RESTIC_PASSWORD=$PASSWORD
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE RESTIC_REPOSITORY || true
export MTOOLS_SKIP_CHECK=1

# ------------------------------------------------------------------ the test disk
log "making a ${DISK_GIB} GiB disk image $DISK: random bytes first (used disks are not zero)"
t0=$(date +%s)
# AES-CTR keystream: fast, and the same bytes for the same seed
openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:cairn-bench-$SEED" </dev/zero 2>/dev/null |
    head -c "$DISK_BYTES" > "$DISK" || true
[ "$(stat -c %s "$DISK")" = "$DISK_BYTES" ] || die "could not write $DISK"
sgdisk -Z "$DISK" >/dev/null 2>&1 || true
sgdisk -n 1:2048:+256M -t 1:ef00 -c 1:EFI -n 2:0:0 -t 2:8304 -c 2:root "$DISK" >/dev/null
read -r _ EFI_START EFI_SECTORS < <(partx -g -o NR,START,SECTORS -n 1 "$DISK")
read -r _ ROOT_START ROOT_SECTORS < <(partx -g -o NR,START,SECTORS -n 2 "$DISK")
EFI_OFF=$((EFI_START * 512)); EFI_SIZE=$((EFI_SECTORS * 512))
ROOT_OFF=$((ROOT_START * 512)); ROOT_SIZE=$((ROOT_SECTORS * 512))

# EFI: FAT32 with a boot loader and a kernel, written with mtools (no vfat module needed)
attach "$DISK" "$EFI_OFF" "$EFI_SIZE"
mkfs.vfat -F 32 -n EFI "$LOOP" >/dev/null
detach "$LOOP"
rm -rf "$WORK/efi"; $DISKPY efi "$WORK/efi/src" "$SEED"
mcopy -s -p -m -i "$DISK@@$EFI_OFF" "$WORK/efi/src"/* ::/

# root: ext4 over the random bytes; inode tables and journal written now (no lazy init
# zeroing in the background while we measure)
attach "$DISK" "$ROOT_OFF" "$ROOT_SIZE"
ROOT_LOOP=$LOOP
mkfs.ext4 -q -F -L root -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$ROOT_LOOP"
MNT=$WORK/mnt/src
mnt "$ROOT_LOOP" "$MNT"
read -r fs_total fs_used < <(df -B1 --output=size,used "$MNT" | tail -n 1)
target=$(( fs_total * FILL_PCT / 100 ))
delete=$(( fs_total / 10 ))
log "filling the ext4 root ($((fs_total/1048576)) MiB) to $((target/1048576)) MiB used, with $((delete/1048576)) MiB written in between and deleted afterwards"
FILL=$($DISKPY fill "$MNT" "$target" "$delete" "$SEED")
log "  $FILL"
sync
read -r fs_total fs_used < <(df -B1 --output=size,used "$MNT" | tail -n 1)
read -r n_files n_dirs n_links n_bytes < <($TREE stats "$MNT")
log "  root: $((fs_used/1048576)) of $((fs_total/1048576)) MiB used ($((fs_used * 100 / fs_total)) %), $n_files files, $n_dirs folders, $n_links symlinks"
umnt "$MNT"
detach "$ROOT_LOOP"
attach "$DISK" "$ROOT_OFF" "$ROOT_SIZE" ro
e2fsck -fn "$LOOP" >"$WORK/logs/e2fsck.src.log" 2>&1 || { cat "$WORK/logs/e2fsck.src.log" >&2; die "the new ext4 is not clean"; }
detach "$LOOP"
log "disk ready in $(( $(date +%s) - t0 )) s"

# ------------------------------------------------------------------ measuring
drop_caches() {
    sync
    if [ "$DROP_CACHES" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi
}

# run_timed STEP TOOL ROUND SCRIPT: run the bash SCRIPT cold under GNU time; record
# wall, user+sys, max RSS and status. Every script ends with sync, so what a tool
# wrote is on disk when its clock stops (cairn fsyncs itself; zstd, dd, restic dump
# do not).
run_timed() {
    local step=$1 tool=$2 round=$3 script=$4
    local out=$T/$step.$tool.r$round logf=$WORK/logs/$step.$tool.log rc=0
    drop_caches
    log "  $step: $tool$( [ "$ROUNDS" = 1 ] || echo " (round $round)")"
    $TIME -f '%e %U %S %M' -o "$out.time" -- bash -c "set -euo pipefail; $script; sync" >"$logf" 2>&1 || rc=$?
    tail -n 1 "$out.time" > "$out.t"    # "Command exited with non-zero status N" comes first
    echo "$rc" > "$out.rc"
    if [ "$rc" != 0 ]; then
        log "  $step: $tool FAILED with status $rc; last lines of $logf:"
        tail -n 15 "$logf" | sed 's/^/      /' >&2
    fi
}
# best STEP TOOL: the round with the shortest wall time (of those that succeeded) is
# the one reported; all rounds' wall times go to STEP.TOOL.rounds
best() {
    local step=$1 tool=$2 r pick="" w bw=""
    : > "$T/$step.$tool.rounds"
    for (( r=1; r<=ROUNDS; r++ )); do
        [ -f "$T/$step.$tool.r$r.t" ] || continue
        w=$(cut -d' ' -f1 "$T/$step.$tool.r$r.t")
        if [ "$(cat "$T/$step.$tool.r$r.rc")" = 0 ]; then
            printf '%s ' "$w" >> "$T/$step.$tool.rounds"
            if [ -z "$bw" ] || awk -v a="$w" -v b="$bw" 'BEGIN { exit !(a < b) }'; then bw=$w; pick=$r; fi
        else
            printf 'FAILED ' >> "$T/$step.$tool.rounds"
        fi
    done
    [ -n "$pick" ] || pick=$ROUNDS
    cp "$T/$step.$tool.r$pick.t" "$T/$step.$tool.t"
    cp "$T/$step.$tool.r$pick.rc" "$T/$step.$tool.rc"
}
# rounds STEP FUNC: FUNC TOOL ROUND for every tool, ROUNDS times, the tools taking
# turns (round r starts with the r-th tool), then pick each tool's best round
rounds() {
    local step=$1 fn=$2 r i t
    local -a tools=($TOOLS)
    [ "$step" = restore-nv ] && tools=(cairn)
    for (( r=1; r<=ROUNDS; r++ )); do
        for (( i=0; i<${#tools[@]}; i++ )); do
            t=${tools[$(( (i + r - 1) % ${#tools[@]} ))]}
            "$fn" "$t" "$r"
        done
    done
    for t in "${tools[@]}"; do best "$step" "$t"; done
}
size_of() { du -sb "$@" | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
ok() { [ "$(cat "$T/$1.$2.rc" 2>/dev/null)" = 0 ]; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

T=$WORK/times
export CAIRN DISK PW=$WORK/password O=$WORK/out R=$WORK/repos
CR=$WORK/repos/cairn RR=$WORK/repos/restic
init_repo() { # TOOL: a fresh, empty repository
    rm -rf "${R:?}/$1"
    case $1 in
        cairn) "$CAIRN" init --repo "$CR" --password-file "$PW" ;;
        restic) restic init --repo "$RR" ;;
    esac >"$WORK/logs/init.$1.log" 2>&1 || { cat "$WORK/logs/init.$1.log" >&2; die "$1 init failed"; }
    size_of "$R/$1" > "$T/init.$1.repo"
}

# image_tool TOOL ROUND with STEP (image or incr) and N (1 or 2) set: one image
image_tool() {
    local t=$1 r=$2 base
    case $STEP in image) base=init ;; *) base=image ;; esac
    case $t in
        cairn|restic)
            if [ "$STEP" = image ]; then
                init_repo "$t"
            elif [ "$r" -gt 1 ]; then
                # the repository (and the tools' caches) as they were after the full image
                rm -rf "${R:?}/$t" "$WORK/home"
                cp -a "$WORK/base/$t" "$R/$t"; cp -a "$WORK/base/home" "$WORK/home"
            fi ;;
    esac
    case $t in
        cairn)
            run_timed "$STEP" cairn "$r" "\"\$CAIRN\" image create --repo \"\$R/cairn\" --password-file \"\$PW\" --json \"\$DISK\" | tail -n 3"
            grep '"summary"' "$WORK/logs/$STEP.cairn.log" | tail -n 1 > "$T/$STEP.cairn.summary" || true ;;
        pcl)
            rm -rf "$O/pcl.$N"; mkdir -p "$O/pcl.$N"
            attach "$DISK" "$EFI_OFF" "$EFI_SIZE" ro; export EFI_LOOP=$LOOP
            attach "$DISK" "$ROOT_OFF" "$ROOT_SIZE" ro; export ROOT_LOOP=$LOOP
            run_timed "$STEP" pcl "$r" "sgdisk --backup=\"\$O/pcl.$N/table.gpt\" \"\$DISK\" >/dev/null
                partclone.vfat -c -q -s \"\$EFI_LOOP\" -o - -L \"\$O/pcl.$N/efi.log\" | zstd -3 -T0 -q -o \"\$O/pcl.$N/efi.pcl.zst\"
                partclone.ext4 -c -q -s \"\$ROOT_LOOP\" -o - -L \"\$O/pcl.$N/root.log\" | zstd -3 -T0 -q -o \"\$O/pcl.$N/root.pcl.zst\""
            detach "$ROOT_LOOP"; detach "$EFI_LOOP" ;;
        dd)
            rm -f "$O/dd.$N.zst"
            run_timed "$STEP" dd "$r" "dd if=\"\$DISK\" bs=4M status=none | zstd -3 -T0 -q -o \"\$O/dd.$N.zst\"" ;;
        restic)
            run_timed "$STEP" restic "$r" "dd if=\"\$DISK\" bs=4M status=none | restic --repo \"\$R/restic\" backup --stdin --stdin-filename disk.img" ;;
    esac
    # stored: repository growth, or the image files
    case $t in
        cairn|restic)
            local now; now=$(size_of "$R/$t")
            echo $(( now - $(cat "$T/$base.$t.repo") )) > "$T/$STEP.$t.size"
            echo "$now" > "$T/$STEP.$t.repo" ;;
        pcl) size_of "$O/pcl.$N/table.gpt" "$O/pcl.$N/efi.pcl.zst" "$O/pcl.$N/root.pcl.zst" > "$T/$STEP.pcl.size" ;;
        dd) size_of "$O/dd.$N.zst" > "$T/$STEP.dd.size" ;;
    esac
}

LOAD_START=$(loadavg)
log "(1) full image"
STEP=image N=1 rounds image image_tool

log "(2) changing ${CHANGE_PCT}% of the root's used bytes (files picked by $CHANGE_PICK)"
$DISKPY blockhash "$DISK" "$WORK/manifests/blocks.1"
attach "$DISK" "$ROOT_OFF" "$ROOT_SIZE"; ROOT_LOOP=$LOOP
mnt "$ROOT_LOOP" "$MNT"
read -r _ fs_used < <(df -B1 --output=size,used "$MNT" | tail -n 1)
CHANGE_BYTES=$(( fs_used * CHANGE_PCT / 100 ))
CHANGE=$($DISKPY change "$MNT" "$CHANGE_BYTES" "$SEED" "$CHANGE_PICK")
CHANGED=$(echo "$CHANGE" | $PY -c 'import json,sys; print(json.load(sys.stdin)["bytes_written"])')
log "  $CHANGE"
sync
read -r fs_total fs_used2 < <(df -B1 --output=size,used "$MNT" | tail -n 1)
# the source's file list, to check every restore against
$TREE manifest "$MNT" "$WORK/manifests/src.root.json"
umnt "$MNT"; detach "$ROOT_LOOP"
rm -rf "$WORK/efi/src.now"; mkdir -p "$WORK/efi/src.now"
mcopy -s -n -p -m -i "$DISK@@$EFI_OFF" '::*' "$WORK/efi/src.now/"
$TREE manifest "$WORK/efi/src.now" "$WORK/manifests/src.efi.json"
sfdisk -d "$DISK" | sed "s|$DISK|DISK|" > "$WORK/manifests/src.table"
# what the change did to the disk's blocks: the least any block-level tool must store
$DISKPY blockhash "$DISK" "$WORK/manifests/blocks.2"
CHUNK=32768      # cairn image create's default --chunk-size: the unit in which it stores changes
read -r BLK4K BLKCHUNK < <($DISKPY blockdiff "$WORK/manifests/blocks.1" "$WORK/manifests/blocks.2" "$CHUNK")
log "  disk blocks changed: $((BLK4K/1048576)) MiB in 4 KiB blocks, $((BLKCHUNK/1048576)) MiB in $((CHUNK/1024)) KiB chunks"

log "(3) incremental image (a new full image for dd and partclone)"
if [ "$ROUNDS" -gt 1 ]; then
    # every round starts from the repositories and caches of the full image
    rm -rf "$WORK/base"; mkdir -p "$WORK/base"
    cp -a "$CR" "$RR" "$WORK/home" "$WORK/base/"
fi
rm -f "$O/dd.1.zst"; rm -rf "$O/pcl.1"     # the restores use the latest
STEP=incr N=2 rounds incr image_tool
rm -rf "$WORK/base"

# ------------------------------------------------------------------ restores
# verify TOOL IMG: table, EFI files, ext4 fsck and files of a restored disk image
declare -A VERIFY VERIFY_DETAIL
verify() {
    local t=$1 img=$2 why="" res
    if [ ! -s "$img" ]; then VERIFY[$t]=FAIL; VERIFY_DETAIL[$t]="no restored image"; return; fi
    if [ "$(stat -c %s "$img")" != "$DISK_BYTES" ]; then why="$why size $(stat -c %s "$img") != $DISK_BYTES;"; fi
    if ! sfdisk -d "$img" 2>/dev/null | sed "s|$img|DISK|" | cmp -s - "$WORK/manifests/src.table"; then
        why="$why partition table differs;"
    fi
    attach "$img" "$EFI_OFF" "$EFI_SIZE" ro
    fsck.vfat -n "$LOOP" >"$WORK/logs/fsck.$t.efi.log" 2>&1 || why="$why fsck.vfat -n failed;"
    detach "$LOOP"
    rm -rf "$WORK/efi/$t"; mkdir -p "$WORK/efi/$t"
    if mcopy -s -n -p -m -i "$img@@$EFI_OFF" '::*' "$WORK/efi/$t/" 2>"$WORK/logs/mcopy.$t.log"; then
        $TREE manifest "$WORK/efi/$t" "$WORK/manifests/$t.efi.json"
        res=$($TREE compare "$WORK/manifests/src.efi.json" "$WORK/manifests/$t.efi.json") ||
            why="$why EFI files differ: $res;"
    else
        why="$why EFI files unreadable;"
    fi
    rm -rf "${WORK:?}/efi/$t"
    attach "$img" "$ROOT_OFF" "$ROOT_SIZE" ro
    if e2fsck -fn "$LOOP" >"$WORK/logs/e2fsck.$t.log" 2>&1; then
        mnt "$LOOP" "$WORK/mnt/$t" ro,noload
        $TREE manifest "$WORK/mnt/$t" "$WORK/manifests/$t.root.json"
        umnt "$WORK/mnt/$t"
        if res=$($TREE compare "$WORK/manifests/src.root.json" "$WORK/manifests/$t.root.json"); then
            VERIFY_DETAIL[$t]="ext4: e2fsck -fn clean, $res"
        else
            why="$why ext4 files differ: $res;"
        fi
    else
        why="$why e2fsck -fn: $(tail -n 3 "$WORK/logs/e2fsck.$t.log" | tr '\n' ' ');"
    fi
    detach "$LOOP"
    if [ -z "$why" ]; then VERIFY[$t]=PASS; else VERIFY[$t]=FAIL; VERIFY_DETAIL[$t]=$why; fi
}

# restore_tool TOOL ROUND: restore the latest image into a new file; the last round's
# restore is checked
restore_tool() {
    local t=$1 r=$2 step=restore
    OUT=$WORK/restore/$t.img
    rm -f "$OUT"
    case $t in
        cairn)
            if [ "$STEP" = restore-nv ]; then
                step=restore-nv
                run_timed restore-nv cairn "$r" "\"\$CAIRN\" image restore --repo \"\$R/cairn\" --password-file \"\$PW\" --json --no-verify latest \"\$OUT\" | tail -n 3"
            else
                run_timed restore cairn "$r" "\"\$CAIRN\" image restore --repo \"\$R/cairn\" --password-file \"\$PW\" --json latest \"\$OUT\" | tail -n 3"
            fi ;;
        pcl)
            truncate -s "$DISK_BYTES" "$OUT"
            attach "$OUT" "$EFI_OFF" "$EFI_SIZE"; export EFI_LOOP=$LOOP
            attach "$OUT" "$ROOT_OFF" "$ROOT_SIZE"; export ROOT_LOOP=$LOOP
            run_timed restore pcl "$r" "sgdisk --load-backup=\"\$O/pcl.2/table.gpt\" \"\$OUT\" >/dev/null
                zstd -d -c -q \"\$O/pcl.2/efi.pcl.zst\" | partclone.vfat -r -q -s - -o \"\$EFI_LOOP\" -L \"\$O/efi.restore.log\"
                zstd -d -c -q \"\$O/pcl.2/root.pcl.zst\" | partclone.ext4 -r -q -s - -o \"\$ROOT_LOOP\" -L \"\$O/root.restore.log\""
            detach "$ROOT_LOOP"; detach "$EFI_LOOP" ;;
        dd)
            run_timed restore dd "$r" "zstd -d -c -q \"\$O/dd.2.zst\" | dd of=\"\$OUT\" bs=4M iflag=fullblock conv=sparse status=none" ;;
        restic)
            run_timed restore restic "$r" "restic --repo \"\$R/restic\" dump latest /disk.img > \"\$OUT\"" ;;
    esac
    if [ "$r" = "$ROUNDS" ]; then
        local v=$t; [ "$step" = restore-nv ] && v=cairn-nv
        verify "$v" "$OUT"
        log "  $v: ${VERIFY[$v]} ${VERIFY_DETAIL[$v]}"
    fi
    rm -f "$OUT"
}

log "(4) full restore of the latest image into a new file"
export OUT
STEP=restore rounds restore restore_tool
# cairn reads back everything it wrote; without that:
STEP=restore-nv rounds restore-nv restore_tool
LOAD_END=$(loadavg)

# ------------------------------------------------------------------ report
f_wall() { cut -d' ' -f1 "$T/$1.$2.t"; }
f_cpu()  { awk '{printf "%.2f", $2 + $3}' "$T/$1.$2.t"; }
f_mem()  { awk '{printf "%.0f", $4 / 1024}' "$T/$1.$2.t"; }
f_size() { if [ -f "$T/$1.$2.size" ]; then awk '{printf "%.1f", $1 / 1048576}' "$T/$1.$2.size"; else echo "—"; fi; }
v_wall() { cut -d' ' -f1 "$T/$1.$2.t"; }
v_cpu()  { awk '{print $2 + $3}' "$T/$1.$2.t"; }
v_mem()  { cut -d' ' -f4 "$T/$1.$2.t"; }
v_size() { cat "$T/$1.$2.size" 2>/dev/null || echo ""; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "—"; else printf "%.2f", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
name() {
    case $1 in
        cairn) echo "cairn" ;; pcl) echo "partclone+zstd" ;; dd) echo "dd\\|zstd" ;; restic) echo "restic --stdin" ;;
    esac
}
step_name() {
    case $1 in
        image) echo "image (full)" ;;
        incr) echo "incremental after $(mib "$CHANGED") MiB changed" ;;
        restore) echo "restore" ;;
        restore-nv) echo "restore, cairn --no-verify" ;;
    esac
}
cell() { # STEP TOOL
    if [ ! -f "$T/$1.$2.t" ]; then echo "— | — | — | — |"
    elif ok "$1" "$2"; then echo "$(f_wall "$1" "$2") | $(f_cpu "$1" "$2") | $(f_mem "$1" "$2") | $(f_size "$1" "$2") |"
    else echo "FAILED (status $(cat "$T/$1.$2.rc")) | $(f_cpu "$1" "$2") | $(f_mem "$1" "$2") | $(f_size "$1" "$2") |"
    fi
}
json_field() { $PY -c 'import json,sys
try: print(json.loads(open(sys.argv[1]).read())[sys.argv[2]])
except Exception: print("?")' "$1" "$2"; }

echo "# System image benchmark: cairn vs partclone+zstd vs dd|zstd vs restic --stdin"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), work folder on $fstype ($(df --output=source "$WORK" | tail -n 1))"
echo "- cairn $CAIRN_COMMIT ($("$GO" version | cut -d' ' -f3))"
echo "- $(partclone.ext4 -v 2>&1 | grep -m1 -i partclone | sed 's/^ *//'), $(zstd -V | sed 's/^\*\*\* //; s/ \*\*\*$//'), $(restic version | head -n 1), dd (coreutils) $(dd --version | head -n 1 | awk '{print $NF}')"
echo "- disk: $(mib "$DISK_BYTES") MiB file, GPT; p1 EFI FAT32 $(mib "$EFI_SIZE") MiB; p2 ext4 $(mib "$ROOT_SIZE") MiB; filled with random bytes before partitioning"
echo "- ext4 root: $(mib "$fs_used") of $(mib "$fs_total") MiB used ($((fs_used * 100 / fs_total)) %), $n_files files, $n_dirs folders, $n_links symlinks; fill: $FILL"
echo "- change before the incremental (${CHANGE_PCT} % of used bytes, files picked by $CHANGE_PICK): $CHANGE; used afterwards $(mib "$fs_used2") MiB"
echo "- the change on the disk: $(mib "$BLK4K") MiB in changed 4 KiB blocks ($(ratio "$BLK4K" "$CHANGED") × the changed bytes; file data, inodes, bitmaps, directories, journal), $(mib "$BLKCHUNK") MiB in the $((CHUNK/1024)) KiB chunks holding them ($(ratio "$BLKCHUNK" "$CHANGED") ×), before compression"
echo "- cairn image summary: full: bytes_read $(mib "$(json_field "$T/image.cairn.summary" bytes_read)") MiB, data_added $(mib "$(json_field "$T/image.cairn.summary" data_added)") MiB; incremental: bytes_read $(mib "$(json_field "$T/incr.cairn.summary" bytes_read)") MiB, data_added $(mib "$(json_field "$T/incr.cairn.summary" data_added)") MiB"
echo "- load average (1, 5, 15 min) when the measurements started: $LOAD_START; when they ended: $LOAD_END"
if [ "$ROUNDS" -gt 1 ]; then
    echo "- every timed step ran $ROUNDS times, the tools taking turns; the table shows each tool's fastest round (all rounds' wall times below)"
fi
echo "- every timed step starts with a dropped page cache$( [ "$DROP_CACHES" = 1 ] || echo ' — NOT (DROP_CACHES=0)') and ends with \`sync\`; wall and CPU (user+sys) in seconds; peak = max RSS in MiB of the largest single process (in a pipeline, not the sum); stored = MiB the step added: repository growth (\`du -sb\`) for cairn and restic, the size of the image files for partclone (GPT backup + two partclone images) and dd, which have no incremental"
echo
hdr="| step |"; sep="| --- |"
for t in $TOOLS; do n=$(name "$t"); hdr="$hdr $n wall | $n CPU | $n peak | $n stored |"; sep="$sep ---: | ---: | ---: | ---: |"; done
echo "$hdr"; echo "$sep"
for s in image incr restore restore-nv; do
    line="| $(step_name "$s") |"
    for t in $TOOLS; do line="$line $(cell "$s" "$t")"; done
    echo "$line"
done
echo
if [ "$ROUNDS" -gt 1 ]; then
    echo "Wall seconds of every round:"
    echo
    line="| step |"; sep="| --- |"
    for t in $TOOLS; do line="$line $(name "$t") |"; sep="$sep ---: |"; done
    echo "$line"; echo "$sep"
    for s in image incr restore restore-nv; do
        line="| $(step_name "$s") |"
        for t in $TOOLS; do
            if [ -f "$T/$s.$t.rounds" ]; then line="$line $(sed 's/ *$//; s/ /, /g' "$T/$s.$t.rounds") |"; else line="$line — |"; fi
        done
        echo "$line"
    done
    echo
fi
echo "Growth of the incremental per changed byte ($CHANGED bytes written):"
echo
line="|"; sep="|"; vals="|"
for t in $TOOLS; do line="$line $(name "$t") |"; sep="$sep ---: |"; vals="$vals $(ratio "$(v_size incr "$t")" "$CHANGED") |"; done
echo "$line"; echo "$sep"; echo "$vals"
echo
echo "Ratios (below 1 means cairn is faster / smaller):"
echo
hdr="| step |"; sep="| --- |"
for o in pcl dd restic; do n=$(name "$o"); hdr="$hdr wall cairn/$n | CPU cairn/$n | peak cairn/$n | stored cairn/$n |"; sep="$sep ---: | ---: | ---: | ---: |"; done
echo "$hdr"; echo "$sep"
for s in image incr restore; do
    line="| $(step_name "$s") |"
    for o in pcl dd restic; do
        line="$line $(ratio "$(v_wall "$s" cairn)" "$(v_wall "$s" "$o")") | $(ratio "$(v_cpu "$s" cairn)" "$(v_cpu "$s" "$o")") | $(ratio "$(v_mem "$s" cairn)" "$(v_mem "$s" "$o")") | $(ratio "$(v_size "$s" cairn)" "$(v_size "$s" "$o")") |"
    done
    echo "$line"
done
echo
GROWTH=$(ratio "$(v_size incr cairn)" "$CHANGED")
echo "incremental growth / changed bytes = $GROWTH"
echo
echo "Targets:"
echo
# exact: the ratio unrounded, so that a target is judged on the measurement, not on
# its two-decimal print (1.0004 prints as 1.00 but is over a limit of 1)
exact() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "—"; else printf "%.6f", a / b }'; }
target() { # LABEL VALUE LIMIT (met when VALUE <= LIMIT, or < with strict=1) [strict]
    awk -v l="$1" -v v="$2" -v m="$3" -v s="${4:-0}" 'BEGIN {
        if (v == "—" || v == "") { printf "- %s: no measurement\n", l; exit }
        met = s ? (v < m) : (v <= m)
        if (met) printf "- %s: **met** (%.4f, limit %s)\n", l, v, m
        else printf "- %s: **missed** (%.4f, limit %s: %.2f %% over)\n", l, v, m, (v / m - 1) * 100 }'
}
target "image faster than partclone+zstd (wall cairn/partclone+zstd < 1)" "$(exact "$(v_wall image cairn)" "$(v_wall image pcl)")" 1 1
target "image output no larger than partclone+zstd (stored cairn/partclone+zstd <= 1)" "$(exact "$(v_size image cairn)" "$(v_size image pcl)")" 1
target "incremental growth under 1.5x the changed bytes" "$(exact "$(v_size incr cairn)" "$CHANGED")" 1.5 1
target "restore at least as fast as partclone's (wall cairn/partclone+zstd <= 1)" "$(exact "$(v_wall restore cairn)" "$(v_wall restore pcl)")" 1
echo
echo "Restore check (partition table; EFI: fsck.vfat -n and every file's SHA-256; ext4 root: e2fsck -fn and every path, type, size, SHA-256 and symlink target against the source after the change):"
echo
status=0
for t in $TOOLS cairn-nv; do
    case $t in cairn-nv) n="cairn --no-verify" ;; *) n=$(name "$t") ;; esac
    echo "- $n: **${VERIFY[$t]:-FAIL}** — ${VERIFY_DETAIL[$t]:-}"
    [ "${VERIFY[$t]:-FAIL}" = PASS ] || status=1
done
for s in image incr restore; do for t in $TOOLS; do ok "$s" "$t" || status=1; done; done
ok restore-nv cairn || status=1
exit $status
