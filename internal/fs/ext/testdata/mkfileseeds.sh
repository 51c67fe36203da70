#!/bin/sh
# Makes the small real filesystems the file reader's fuzz and corruption tests
# start from (run as root, from this folder; needs e2fsprogs, attr, acl, gzip
# and loop mounts). Each is a 1 MiB filesystem with 1 KiB blocks, filled by
# the kernel through a loop mount:
#
# ext4-files.img.gz         extents (a depth-1 tree), a hashed folder (of
#                           hard links, so that the inode table stays small),
#                           unwritten extents, xattrs in the inode and a block
# ext4-inline-files.img.gz  the same with inline_data
# ext2-files.img.gz         block pointers up to triple indirect
set -eu
tmp=$(mktemp -d)
trap 'umount "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
mkdir "$tmp/mnt"

fill() { # mount point
	m=$1
	: > "$m/empty"
	printf 'small file\n' > "$m/small"
	yes 'a line of text in a file of three thousand bytes' | head -c 3000 > "$m/text"
	yes 'thirteen kilobytes' | head -c 13000 > "$m/indirect"
	yes 'double indirect' | head -c 280000 > "$m/double"
	i=0
	while [ $i -lt 12 ]; do # 12 separate extents
		printf 'chunk %d' $i | dd of="$m/sparse" bs=1 seek=$((i * 8192)) conv=notrunc 2>/dev/null
		i=$((i + 1))
	done
	printf 'far away' | dd of="$m/far" bs=1 seek=$((70 << 20)) 2>/dev/null # triple indirect with 1 KiB blocks
	fallocate -l 20000 "$m/prealloc" 2>/dev/null && printf 'written' | dd of="$m/prealloc" bs=1 seek=9000 conv=notrunc 2>/dev/null ||
		printf 'no fallocate' > "$m/prealloc"
	mkdir -p "$m/dir/sub/subsub"
	printf 'deep\n' > "$m/dir/sub/subsub/file"
	mkdir "$m/hashed"
	: > "$m/hashed/target"
	i=0
	while [ $i -lt 80 ]; do # hard links: one inode for all
		ln "$m/hashed/target" "$m/hashed/entry-with-a-name-long-enough-to-fill-$i"
		i=$((i + 1))
	done
	ln -s small "$m/link"
	ln -s "$(yes long-target | head -n 8 | tr '\n' /)" "$m/longlink"
	ln "$m/small" "$m/dir/hardlink"
	mkfifo "$m/fifo"
	mknod "$m/null" c 1 3
	mknod "$m/disk" b 259 70000
	setfattr -n user.one -v 1 "$m/small"
	setfattr -n user.big -v "$(yes 0123456789 | head -n 60 | tr -d '\n')" "$m/text"
	setfacl -m u:1234:rwx "$m/text"
	setfacl -d -m g:99:rx "$m/dir"
	chown 70000:80000 "$m/indirect"
	chmod 4755 "$m/indirect"
	touch -h -d '1960-01-02 03:04:05.123456789' "$m/link"
	touch -d '2100-01-02 03:04:05.987654321' "$m/dir"
}

make() { # name mkfs-program options...
	name=$1 prog=$2
	shift 2
	rm -f "$tmp/$name.img"
	truncate -s 1M "$tmp/$name.img"
	"$prog" -q -F -b 1024 -N 128 -E nodiscard,hash_seed=2a5bd2c8-6f7e-4d60-9d3b-0f3c6a1b9e01 \
		-U 5f1b3c2a-8d4e-4f6a-9b7c-1e2d3f4a5b6c "$@" "$tmp/$name.img"
	mount -o loop "$tmp/$name.img" "$tmp/mnt"
	fill "$tmp/mnt"
	umount "$tmp/mnt"
	e2fsck -fn "$tmp/$name.img" >/dev/null
	gzip -9n < "$tmp/$name.img" > "$name-files.img.gz"
}
make ext4 mkfs.ext4 -O ^has_journal
make ext4-inline mkfs.ext4 -O ^has_journal,inline_data
make ext2 mkfs.ext2
ls -l ./*-files.img.gz
