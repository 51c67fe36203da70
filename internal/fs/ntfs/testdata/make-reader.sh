#!/usr/bin/env bash
# Makes reader.img.gz, the small NTFS image the file reader's fuzz target
# starts from: 3 MiB, zero-filled, written through ntfs-3g: nested folders, a
# folder of 40 files with long names (its index needs $INDEX_ALLOCATION), a
# Unicode name, an empty, a resident and a non-resident file, a sparse file,
# a compressed file, a hard link, a named stream, an Interix symbolic link and
# a file with a DOS name. Run it as root.
#
# $LogFile and $UpCase (which the reader never reads) are zeroed, so that
# the image compresses well and its non-zero bytes end early: the fuzz
# target takes its start, without the backup boot sector at the end.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'umount "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT

img=$tmp/reader.img
truncate -s 3M "$img"
mkntfs -F -Q -c 1024 -L reader "$img" >/dev/null 2>&1
ntfslabel --new-serial=0123456789ABCDEF "$img" >/dev/null
mkdir "$tmp/mnt"
ntfs-3g "$img" "$tmp/mnt" -o compression
cd "$tmp/mnt"
mkdir -p a/b/c many compressed
echo deep >a/b/c/deep.txt
for i in $(seq -w 1 12); do echo "$i" >"many/a rather long file name, number $i.txt"; done
echo unicode >"Ünïcödé ☃.txt"
: >empty
echo small >resident.txt
head -c 3000 /dev/zero | tr '\0' 'n' >nonresident.bin
printf 'start' >sparse.bin
truncate -s 200000 sparse.bin
setfattr -h -v 0x00000800 -n system.ntfs_attrib_be compressed
head -c 40000 /dev/zero | tr '\0' 'c' >compressed/text.txt
ln resident.txt a/hardlink.txt
setfattr -n user.stream -v "stream data" resident.txt
ln -s a/b/c/deep.txt symlink
echo dos >"Long Name.txt"
setfattr -n system.ntfs_dos_name -v "LONGNA~1.TXT" "Long Name.txt"
cd - >/dev/null
umount "$tmp/mnt"
ntfsfix -n "$img" >/dev/null
# Zero what the reader never reads: $MFTMirr, $LogFile, $Secure's $SDS
# stream, $UpCase, and the MFT records not in use.
for spec in 1: 2: 9:\$SDS 10:; do
	ntfsinfo -v -i "${spec%%:*}" "$img" 2>/dev/null | awk -v want="${spec#*:}" '
		/^Dumping attribute \$DATA/ { data = 1; named = ""; next }
		/^Dumping attribute/ { data = 0 }
		data && /Attribute name:/ { named = $NF; gsub("\x27", "", named) }
		data && /Runlist:/ { go = (named == want); next }
		go && /^\t\t\t0x/ && $2 != "<HOLE>" { print $2, $3 }
		go && !/^\t\t\t0x/ { go = 0 }'
done >"$tmp/runs" # all read before any is zeroed: ntfsinfo checks $MFTMirr
while read -r lcn len; do
	dd if=/dev/zero of="$img" bs=1024 seek=$((lcn)) count=$((len)) conv=notrunc status=none
done <"$tmp/runs"
python3 - "$img" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
b = bytearray(f.read())
cs = struct.unpack_from('<H', b, 11)[0] * b[13]
mft = struct.unpack_from('<Q', b, 0x30)[0] * cs
off = mft
while off + 1024 <= len(b) and b[off:off+4] in (b'FILE', b'\0\0\0\0'):
    if b[off:off+4] == b'FILE' and not struct.unpack_from('<H', b, off + 22)[0] & 1:
        b[off:off+1024] = bytes(1024)
    off += 1024
f.seek(0)
f.write(b)
PY
gzip -9n <"$img" >reader.img.gz
ls -l reader.img.gz
python3 - "$img" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()[:-512].rstrip(b'\0')
print('non-zero up to', len(b))
PY
