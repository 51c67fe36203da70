#!/bin/sh
# Makes the seed images of the fuzz and corruption tests (run as root, from
# this folder; needs e2fsprogs, gzip and loop mounts).
#
# ext4-head.img.gz  first 64 KiB of a 16 MiB ext4 (default features, 1 KiB
#                   blocks): the tests pad it with zeros to 16 MiB
# ext4-recover.img.gz, ext3-recover.img.gz
#                   4 MiB filesystems copied while mounted, after
#                   files were written and fsynced: they need recovery, and their
#                   journals hold committed block bitmaps.
set -eu
tmp=$(mktemp -d)
trap 'umount "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
export E2FSPROGS_FAKE_TIME=1700000000

truncate -s 16M "$tmp/head.img"
mkfs.ext4 -q -F -E nodiscard,hash_seed=2a5bd2c8-6f7e-4d60-9d3b-0f3c6a1b9e01 \
	-U 5f1b3c2a-8d4e-4f6a-9b7c-1e2d3f4a5b6c -L seed "$tmp/head.img"
head -c 65536 "$tmp/head.img" | gzip -9n > ext4-head.img.gz

recover() { # name mkfs-program options...
	name=$1 prog=$2
	shift 2
	truncate -s 4M "$tmp/$name.img"
	"$prog" -q -F -E nodiscard -b 1024 -N 32 -J size=1 "$@" "$tmp/$name.img"
	mkdir -p "$tmp/mnt"
	mount -o loop "$tmp/$name.img" "$tmp/mnt"
	for i in 1 2 3 4 5 6 7 8; do
		yes "$name $i" | head -c $((i * 20000)) > "$tmp/mnt/f$i"
		sync "$tmp/mnt/f$i" # fsync: commits the journal, bitmaps stay stale
	done
	cp "$tmp/$name.img" "$tmp/$name.snap"
	umount "$tmp/mnt"
	gzip -9n < "$tmp/$name.snap" > "$name-recover.img.gz"
}
recover ext4 mkfs.ext4
recover ext3 mkfs.ext3
ls -l ./*.gz
