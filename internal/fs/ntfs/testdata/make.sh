#!/usr/bin/env bash
# Makes ntfs.img.gz, the small NTFS image the fuzz targets and the unit tests
# start from: 2 MiB, zero-filled (so it compresses to little), label
# "Cairn test", serial 0123456789ABCDEF, a file of 5000 "x" with a named
# stream, a folder with a small file, and a deleted file of 6000 "y" whose
# clusters are free. Run it as root: it writes through an ntfs-3g mount.
#
# Its $UpCase table (128 KiB that gzip hardly shrinks, and that Probe never
# reads) is zeroed to keep the file small, so Windows and ntfs-3g would find
# fault with the image; this package's parser does not read it.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'umount "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT

truncate -s 2M "$tmp/ntfs.img"
mkntfs -F -Q -L "Cairn test" "$tmp/ntfs.img" >/dev/null 2>&1
ntfslabel --new-serial=0123456789ABCDEF "$tmp/ntfs.img" >/dev/null
mkdir "$tmp/mnt"
ntfs-3g "$tmp/ntfs.img" "$tmp/mnt"
head -c 5000 /dev/zero | tr '\0' 'x' >"$tmp/mnt/x.txt"
setfattr -n user.stream -v "a named stream" "$tmp/mnt/x.txt"
head -c 6000 /dev/zero | tr '\0' 'y' >"$tmp/mnt/y.txt"
mkdir "$tmp/mnt/dir"
echo hello >"$tmp/mnt/dir/hello.txt"
sync
rm "$tmp/mnt/y.txt"
umount "$tmp/mnt"
ntfsfix -n "$tmp/ntfs.img" >/dev/null
# $UpCase is MFT record 10; its data is one run of clusters of 4 KiB.
read -r lcn len < <(ntfsinfo -v -i 10 "$tmp/ntfs.img" 2>/dev/null |
	awk '/Runlist:/ { getline; print $2, $3; exit }')
dd if=/dev/zero of="$tmp/ntfs.img" bs=4096 seek=$((lcn)) count=$((len)) conv=notrunc status=none
gzip -9n <"$tmp/ntfs.img" >ntfs.img.gz
ls -l ntfs.img.gz
