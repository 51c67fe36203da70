#!/usr/bin/env bash
# Makes reader.img.gz, the small FAT12 image the file reader's fuzz target
# starts from: 512 KiB, zero-filled, with a long name, a Unicode name, a
# lower-case 8.3 name, nested folders, an empty file, a read-only file and a
# fragmented file (small files written, every other one deleted, then a file
# over the holes).
set -euo pipefail
cd "$(dirname "$0")"
export MTOOLS_SKIP_CHECK=1 LC_ALL=C.UTF-8 TZ=UTC
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
img=$tmp/reader.img
truncate -s 512K "$img"
mkfs.vfat -F 12 -s 1 -i 1234ABCD -n READER "$img" >/dev/null
mkdir -p "$tmp/src/a/b/c" "$tmp/src/Ünïcödé folder"
echo "a long name" >"$tmp/src/a long file name with spaces.txt"
echo "lower" >"$tmp/src/readme.txt"
echo "deep" >"$tmp/src/a/b/c/deep.txt"
echo "unicode" >"$tmp/src/Ünïcödé folder/日本語.txt"
: >"$tmp/src/empty"
echo "read only" >"$tmp/src/ro.txt"
mcopy -s -m -i "$img" "$tmp"/src/* ::/
mattrib -i "$img" +r ::/ro.txt
for i in 0 1 2 3 4 5; do
	head -c 1500 /dev/zero | tr '\0' "$i" >"$tmp/p$i"
	mcopy -i "$img" "$tmp/p$i" ::/
done
mdel -i "$img" ::/p0 ::/p2 ::/p4
head -c 3000 /dev/zero | tr '\0' 'f' >"$tmp/fragmented"
mcopy -i "$img" "$tmp/fragmented" ::/
mshowfat -i "$img" ::/fragmented
fsck.vfat -n "$img" >/dev/null
gzip -9n <"$img" >reader.img.gz
ls -l reader.img.gz
