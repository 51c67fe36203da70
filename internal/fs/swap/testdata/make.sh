#!/usr/bin/env bash
# Makes the small swap areas the fuzz target and the unit tests start from:
# zero-filled (so they compress to little), label "cairn swap", UUID
# 0f6a2b8e-6f1c-4a5e-9d3b-2c7e8f9a0b1c, ten pages each.
#
#   swap4k.img.gz   pages of 4 KiB (x86, most arm64)
#   swap64k.img.gz  pages of 64 KiB (ppc64, some arm64)
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ps in 4 64; do
	truncate -s $((10 * ps))K "$tmp/swap.img"
	mkswap -p $((ps * 1024)) -L "cairn swap" -U 0f6a2b8e-6f1c-4a5e-9d3b-2c7e8f9a0b1c "$tmp/swap.img" >/dev/null 2>&1
	gzip -9n <"$tmp/swap.img" >"swap${ps}k.img.gz"
	rm "$tmp/swap.img"
done
ls -l ./*.gz
