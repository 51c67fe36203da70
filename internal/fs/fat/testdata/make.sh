#!/usr/bin/env bash
# Makes the small FAT images the fuzz target and the unit tests start from.
# The images are zero-filled, so they compress to little, each with a label, a
# serial and (but fat32small, which mtools refuses) a few files and folders
# written with mtools, and one file deleted.
#
#   fat12.img.gz  1 MiB FAT12
#   fat16.img.gz  3 MiB FAT16, 512-byte clusters
#   fat32.img.gz  34 MiB FAT32, 512-byte clusters (just above 65524 clusters)
#   fat32small.img.gz  4 MiB FAT32 with fewer clusters than the specification's
#                      minimum, as mkfs.vfat -F 32 makes on small disks
set -euo pipefail
cd "$(dirname "$0")"
export MTOOLS_SKIP_CHECK=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

make() { # name size-KiB mkfs-args...
	local name=$1 kib=$2
	shift 2
	rm -f "$tmp/$name.img"
	truncate -s "${kib}K" "$tmp/$name.img"
	mkfs.vfat -i 1234ABCD -n "CAIRN TEST" "$@" "$tmp/$name.img" >/dev/null
	printf 'hello from %s\n' "$name" >"$tmp/hello.txt"
	head -c 5000 /dev/zero | tr '\0' 'x' >"$tmp/five.bin"
	head -c 3000 /dev/zero | tr '\0' 'y' >"$tmp/gone.bin"
	if [[ $name != fat32small ]]; then # mtools refuses a FAT32 with so few clusters
		mmd -i "$tmp/$name.img" ::/dir ::/dir/sub
		mcopy -i "$tmp/$name.img" "$tmp/hello.txt" ::/
		mcopy -i "$tmp/$name.img" "$tmp/gone.bin" ::/dir/
		mcopy -i "$tmp/$name.img" "$tmp/five.bin" ::/dir/sub/
		mdel -i "$tmp/$name.img" ::/dir/gone.bin
	fi
	fsck.vfat -n "$tmp/$name.img" >/dev/null
	gzip -9n <"$tmp/$name.img" >"$name.img.gz"
}

make fat12 1024 -F 12
make fat16 3072 -F 16 -s 1
make fat32 34816 -F 32 -s 1
make fat32small 4096 -F 32 2>/dev/null # it warns of too few clusters
ls -l ./*.gz
