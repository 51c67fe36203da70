#!/usr/bin/env bash
# File-backup benchmark: cairn against restic and borg, side by side in one run.
#
#   sudo bench/files.sh > bench/results-files.md
#
# Environment:
#   SIZE_GIB   size of the test tree in GiB (default 3)
#   WORK       work folder (default /var/tmp/cairn-bench; must not be on tmpfs)
#   TOOLS      tools to run, in order (default "cairn restic borg")
#   SEED       seed of the generated data (default 42)
#   CHANGE_PCT percent of files changed before row (c) (default 2)
#   KEEP=1     keep the work folder afterwards
#   DROP_CACHES=0  do not drop the page cache before timed steps (default 1)
#
# The Markdown report goes to stdout, progress to stderr.
set -euo pipefail

SIZE_GIB=${SIZE_GIB:-3}
WORK=${WORK:-/var/tmp/cairn-bench}
TOOLS=${TOOLS:-cairn restic borg}
SEED=${SEED:-42}
CHANGE_PCT=${CHANGE_PCT:-2}
KEEP=${KEEP:-0}
DROP_CACHES=${DROP_CACHES:-1}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
TREE="$PY $HERE/files-tree.py"
TIME=/usr/bin/time

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it drops the page cache and copies /usr with owners): sudo $0"
[ -x "$TIME" ] || die "GNU time is needed at $TIME (apt-get install time)"
for t in $TOOLS; do
    case $t in
        cairn) ;;
        restic|borg) command -v "$t" >/dev/null || die "$t not installed" ;;
        *) die "unknown tool $t" ;;
    esac
done
case "$WORK" in /*) ;; *) die "WORK must be an absolute path" ;; esac

# The work folder must be on a real disk: a tmpfs would hold the data in RAM and
# make "cold" reads meaningless.
mkdir -p "$WORK"
fstype=$(df --output=fstype "$WORK" | tail -n 1 | tr -d ' ')
case "$fstype" in tmpfs|ramfs) die "$WORK is on $fstype; set WORK to a folder on disk" ;; esac
SIZE_BYTES=$(awk -v g="$SIZE_GIB" 'BEGIN { printf "%.0f", g * 1073741824 }')
[ "$SIZE_BYTES" -gt $((64 * 1024 * 1024)) ] || die "SIZE_GIB=$SIZE_GIB is too small (at least 0.1)"
need=$(( SIZE_BYTES / 1024 * 8 ))   # KiB: tree + 3 repos + restore, with room
avail=$(df --output=avail -k "$WORK" | tail -n 1 | tr -d ' ')
[ "$avail" -gt "$need" ] || die "$WORK has $((avail/1024/1024)) GiB free; about $((need/1024/1024)) GiB needed"

cleanup() {
    if [ "$KEEP" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "${WORK:?}/src" "$WORK/repos" "$WORK/restore" "$WORK/home" "$WORK/bin" \
            "$WORK/times" "$WORK/logs" "$WORK/manifests" "$WORK/usr-list.txt" "$WORK/password"
        rmdir "$WORK" 2>/dev/null || true
    fi
}
trap cleanup EXIT

SRC=$WORK/src
rm -rf "${WORK:?}/src" "$WORK/repos" "$WORK/restore" "$WORK/home" "$WORK/times" "$WORK/logs" "$WORK/manifests"
mkdir -p "$WORK/bin" "$WORK/repos" "$WORK/restore" "$WORK/home" "$WORK/times" "$WORK/logs" "$WORK/manifests"

# ------------------------------------------------------------------ build cairn
GO=$(command -v go || true)
[ -n "$GO" ] || GO=/usr/local/go/bin/go
log "building cairn in $ROOT"
CAIRN=$WORK/bin/cairn
if ! (cd "$ROOT" && "$GO" build -o "$CAIRN" ./cmd/cairn) >"$WORK/bin/build.log" 2>&1; then
    # git refusing a checkout owned by another user breaks VCS stamping only
    (cd "$ROOT" && "$GO" build -buildvcs=false -o "$CAIRN" ./cmd/cairn) \
        >"$WORK/bin/build.log" 2>&1 || { cat "$WORK/bin/build.log" >&2; die "cairn does not build"; }
fi
CAIRN_COMMIT=$(git -c safe.directory='*' -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -c safe.directory='*' -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    CAIRN_COMMIT="$CAIRN_COMMIT (+ uncommitted changes)"
fi

# Tools keep caches and state under $WORK/home, not in root's home.
export HOME=$WORK/home
export XDG_CACHE_HOME=$WORK/home/.cache XDG_CONFIG_HOME=$WORK/home/.config XDG_DATA_HOME=$WORK/home/.local/share
export BORG_BASE_DIR=$WORK/home
PASSWORD=bench-password-not-secret
printf '%s\n' "$PASSWORD" > "$WORK/password"
export RESTIC_PASSWORD=$PASSWORD BORG_PASSPHRASE=$PASSWORD
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
unset CAIRN_REPO CAIRN_PASSWORD CAIRN_PASSWORD_FILE RESTIC_REPOSITORY BORG_REPO || true

# ------------------------------------------------------------------ test tree
log "making a ${SIZE_GIB} GiB test tree in $SRC (seed $SEED)"
t0=$(date +%s)
$TREE gen "$SRC" "$SIZE_BYTES" "$SEED"
read -r n_files n_dirs n_links n_bytes < <($TREE stats "$SRC")
read -r u_files _ _ u_bytes < <($TREE stats "$SRC/usr")
read -r s_files _ _ s_bytes < <($TREE stats "$SRC/data/small")
read -r r_files _ _ r_bytes < <($TREE stats "$SRC/data/random")
read -r x_files _ _ x_bytes < <($TREE stats "$SRC/data/text")
log "tree: $n_files files, $n_dirs folders, $n_links symlinks, $((n_bytes/1024/1024)) MiB in $(( $(date +%s) - t0 )) s"
off=$(( (n_bytes - SIZE_BYTES) * 100 / SIZE_BYTES ))
[ "${off#-}" -le 5 ] || die "the tree is $((n_bytes/1024/1024)) MiB, not the $((SIZE_BYTES/1024/1024)) MiB asked for"

# ------------------------------------------------------------------ measuring
drop_caches() {
    sync
    if [ "$DROP_CACHES" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi
}

# run_timed STEP TOOL CMD...: time CMD cold; record wall, user+sys, max RSS, rc.
run_timed() {
    local step=$1 tool=$2; shift 2
    local out=$WORK/times/$step.$tool logf=$WORK/logs/$step.$tool.log rc=0
    drop_caches
    log "  $step: $tool"
    $TIME -f '%e %U %S %M' -o "$out.time" -- "$@" >"$logf" 2>&1 || rc=$?
    # GNU time writes "Command exited with non-zero status N" first on failure
    tail -n 1 "$out.time" > "$out.t"
    echo "$rc" > "$out.rc"
    if ! ok_rc "$tool" "$rc"; then
        log "  $step: $tool FAILED with status $rc; last lines of $logf:"
        tail -n 15 "$logf" | sed 's/^/      /' >&2
    elif [ "$rc" != 0 ]; then
        log "  $step: $tool finished with warning status $rc"
    fi
}

# cairn/restic 3 = saved but something unreadable; borg 1 = warnings.
ok_rc() {
    case "$1:$2" in
        *:0|cairn:3|restic:3|borg:1) return 0 ;;
        *) return 1 ;;
    esac
}

repo_size() { # STEP TOOL
    du -sb "$WORK/repos/$2" | cut -f1 > "$WORK/times/$1.$2.repo"
}

backup() { # STEP TOOL SNAPNAME
    local step=$1 tool=$2 name=$3 r=$WORK/repos/$2
    case $tool in
        cairn)  run_timed "$step" cairn "$CAIRN" backup --repo "$r" --password-file "$WORK/password" --json "$SRC" ;;
        restic) run_timed "$step" restic restic --repo "$r" backup --json "$SRC" ;;
        borg)   run_timed "$step" borg borg create "$r::$name" "$SRC" ;;
    esac
    repo_size "$step" "$tool"
    # keep logs small: cairn/restic --json print a progress line per update
    if [ "$tool" != borg ]; then tail -n 3 "$WORK/logs/$step.$tool.log" > "$WORK/logs/$step.$tool.tmp" &&
        mv "$WORK/logs/$step.$tool.tmp" "$WORK/logs/$step.$tool.log"; fi
}

restore() { # STEP TOOL SNAPNAME
    local step=$1 tool=$2 name=$3 r=$WORK/repos/$2 dst=$WORK/restore/$2
    rm -rf "$dst"; mkdir -p "$dst"
    case $tool in
        cairn)  run_timed "$step" cairn "$CAIRN" restore latest --target "$dst" --repo "$r" --password-file "$WORK/password" -q ;;
        restic) run_timed "$step" restic restic --repo "$r" restore latest --target "$dst" ;;
        borg)   (cd "$dst" && run_timed "$step" borg borg extract "$r::$name") ;;
    esac
}

log "initializing repositories"
for t in $TOOLS; do
    r=$WORK/repos/$t
    case $t in
        cairn)  "$CAIRN" init --repo "$r" --password-file "$WORK/password" ;;
        restic) restic init --repo "$r" ;;
        borg)   borg init --encryption=repokey-blake2 "$r" ;;
    esac >"$WORK/logs/init.$t.log" 2>&1 || { cat "$WORK/logs/init.$t.log" >&2; die "$t init failed"; }
done

STEPS="first second changed restore"
log "(a) first backup"
for t in $TOOLS; do backup first "$t" first; done
log "(b) second backup, nothing changed"
for t in $TOOLS; do backup second "$t" second; done
log "(c) changing ${CHANGE_PCT}% of the files"
CHANGE=$($TREE modify "$SRC" "$CHANGE_PCT" "$SEED")
log "  $CHANGE"
for t in $TOOLS; do backup changed "$t" changed; done
log "(d) full restore of the latest snapshot"
for t in $TOOLS; do restore restore "$t" changed; done

log "verifying restores"
$TREE manifest "$SRC" "$WORK/manifests/src.json"
declare -A VERIFY VERIFY_DETAIL
for t in $TOOLS; do
    dst=$WORK/restore/$t$SRC      # all three restore the absolute path under the target
    if [ ! -d "$dst" ]; then
        VERIFY[$t]=FAIL; VERIFY_DETAIL[$t]="no $SRC inside the restore folder"; continue
    fi
    $TREE manifest "$dst" "$WORK/manifests/$t.json"
    if res=$($TREE compare "$WORK/manifests/src.json" "$WORK/manifests/$t.json"); then
        VERIFY[$t]=PASS
    else
        VERIFY[$t]=FAIL
    fi
    VERIFY_DETAIL[$t]=$res
    rm -rf "${WORK:?}/restore/$t"
done

# ------------------------------------------------------------------ report
f_wall() { cut -d' ' -f1 "$WORK/times/$1.$2.t"; }
f_cpu()  { awk '{printf "%.2f", $2 + $3}' "$WORK/times/$1.$2.t"; }
f_mem()  { awk '{printf "%.0f", $4 / 1024}' "$WORK/times/$1.$2.t"; }
f_repo() { if [ -f "$WORK/times/$1.$2.repo" ]; then awk '{printf "%.0f", $1 / 1048576}' "$WORK/times/$1.$2.repo"; else echo "—"; fi; }
# raw values for ratios
v_wall() { cut -d' ' -f1 "$WORK/times/$1.$2.t"; }
v_cpu()  { awk '{print $2 + $3}' "$WORK/times/$1.$2.t"; }
v_mem()  { cut -d' ' -f4 "$WORK/times/$1.$2.t"; }
v_repo() { cat "$WORK/times/$1.$2.repo" 2>/dev/null || echo ""; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "—"; else printf "%.2f", a / b }'; }
cell_ok() { local rc; rc=$(cat "$WORK/times/$1.$2.rc"); ok_rc "$2" "$rc"; }

step_name() {
    case $1 in
        first) echo "(a) first backup" ;;
        second) echo "(b) second backup, no change" ;;
        changed) echo "(c) backup after ${CHANGE_PCT}% of files changed" ;;
        restore) echo "(d) full restore" ;;
    esac
}
version() {
    case $1 in
        cairn) echo "cairn $CAIRN_COMMIT" ;;
        restic) restic version | head -n 1 ;;
        borg) borg --version ;;
    esac
}
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

echo "# File backup benchmark: ${TOOLS// / vs }"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), work folder on $fstype ($(df --output=source "$WORK" | tail -n 1))"
for t in $TOOLS; do echo "- $(version "$t")"; done
echo "- test tree: $(mib "$n_bytes") MiB in $n_files files, $n_dirs folders, $n_links symlinks (seed $SEED):"
echo "  copy of /usr parts $(mib "$u_bytes") MiB / $u_files files;" \
     "random $(mib "$r_bytes") MiB / $r_files files; text $(mib "$x_bytes") MiB / $x_files files;" \
     "small files $(mib "$s_bytes") MiB / $s_files files"
echo "- change before (c): $CHANGE"
echo "- every timed step starts with a dropped page cache$( [ "$DROP_CACHES" = 1 ] || echo ' — NOT (DROP_CACHES=0)'); wall and CPU (user+sys) in seconds, peak = max RSS in MiB, repo = \`du -sb\` of the repository after the step in MiB"
echo
hdr="| step |"; sep="| --- |"
for t in $TOOLS; do hdr="$hdr $t wall | $t CPU | $t peak | $t repo |"; sep="$sep ---: | ---: | ---: | ---: |"; done
echo "$hdr"; echo "$sep"
for s in $STEPS; do
    line="| $(step_name "$s") |"
    for t in $TOOLS; do
        if cell_ok "$s" "$t"; then
            line="$line $(f_wall "$s" "$t") | $(f_cpu "$s" "$t") | $(f_mem "$s" "$t") | $(f_repo "$s" "$t") |"
        else
            line="$line FAILED (status $(cat "$WORK/times/$s.$t.rc")) | $(f_cpu "$s" "$t") | $(f_mem "$s" "$t") | $(f_repo "$s" "$t") |"
        fi
    done
    echo "$line"
done
echo

others=""
for t in $TOOLS; do [ "$t" = cairn ] || others="$others $t"; done
if [[ " $TOOLS " == *" cairn "* ]] && [ -n "$others" ]; then
    echo "Ratios (below 1 means cairn is faster / smaller):"
    echo
    hdr="| step |"; sep="| --- |"
    for o in $others; do hdr="$hdr wall cairn/$o | CPU cairn/$o | peak cairn/$o | repo cairn/$o |"; sep="$sep ---: | ---: | ---: | ---: |"; done
    echo "$hdr"; echo "$sep"
    for s in $STEPS; do
        line="| $(step_name "$s") |"
        for o in $others; do
            line="$line $(ratio "$(v_wall "$s" cairn)" "$(v_wall "$s" "$o")") | $(ratio "$(v_cpu "$s" cairn)" "$(v_cpu "$s" "$o")") | $(ratio "$(v_mem "$s" cairn)" "$(v_mem "$s" "$o")") | $(ratio "$(v_repo "$s" cairn)" "$(v_repo "$s" "$o")") |"
        done
        echo "$line"
    done
    echo
fi

if [[ " $TOOLS " == *" cairn "* && " $TOOLS " == *" restic "* ]]; then
    # the targets of the file-backup issue, judged on unrounded ratios (1.0004 prints
    # as 1.00 but is over a limit of 1)
    echo "Targets (cairn against restic, each row: wall time, repository size and peak memory no higher):"
    echo
    exact() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "—"; else printf "%.6f", a / b }'; }
    target() { # LABEL VALUE: met when VALUE <= 1
        awk -v l="$1" -v v="$2" 'BEGIN {
            if (v == "—" || v == "") { printf "- %s: no measurement\n", l; exit }
            if (v <= 1) printf "- %s: **met** (%.4f)\n", l, v
            else printf "- %s: **missed** (%.4f: %.2f %% over)\n", l, v, (v - 1) * 100 }'
    }
    for s in $STEPS; do
        target "$(step_name "$s"), wall" "$(exact "$(v_wall "$s" cairn)" "$(v_wall "$s" restic)")"
        target "$(step_name "$s"), peak memory" "$(exact "$(v_mem "$s" cairn)" "$(v_mem "$s" restic)")"
        [ "$s" = restore ] || target "$(step_name "$s"), repository" "$(exact "$(v_repo "$s" cairn)" "$(v_repo "$s" restic)")"
    done
    echo
fi

echo "Restore verification (content: every path, type, size, SHA-256 and symlink target; metadata: mode, owner, file mtime — reported, not graded):"
echo
status=0
for t in $TOOLS; do
    echo "- $t: **${VERIFY[$t]}** — ${VERIFY_DETAIL[$t]}"
    [ "${VERIFY[$t]}" = PASS ] || status=1
done
for t in $TOOLS; do for s in $STEPS; do cell_ok "$s" "$t" || status=1; done; done
exit $status
