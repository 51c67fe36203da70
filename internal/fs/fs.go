// Package fs knows the filesystems found inside disk images. Each one has a
// sub-package (ext, fat, ntfs, swap) that reads, from the filesystem's own
// structures, which bytes it uses; Probe finds which one is on a partition. The
// imager reads and stores only those bytes; everything else restores as zeros.
package fs

import (
	"errors"
	"sort"
)

// ErrUnknown is returned by a probe that does not recognise the filesystem.
var ErrUnknown = errors.New("unknown filesystem")

// Extent is a run of bytes, relative to the start of the partition.
type Extent struct {
	Off, Len int64
}

// Allocation is what a filesystem says about its own space.
type Allocation struct {
	// Type is the filesystem's name: "ext2", "ext3", "ext4", "fat12", "fat16",
	// "fat32", "ntfs" or "swap".
	Type  string
	Label string
	UUID  string
	// BlockSize is the filesystem's allocation unit in bytes (ext block, FAT or
	// NTFS cluster, swap page); image chunks are aligned to it.
	BlockSize int
	// Size is the filesystem's size in bytes; it may be smaller than its partition.
	Size int64
	// Used lists the bytes the filesystem uses (data and its own metadata, boot
	// sectors and backup structures included), sorted, not overlapping, merged.
	Used []Extent
	// Unneeded lists used bytes whose content the filesystem never reads again,
	// sorted, not overlapping, merged, each inside Used: the log area of an ext3/4
	// journal that is empty. An image stores none of them; they restore as zeros.
	Unneeded []Extent
	// Warnings says what was found damaged and worked around by counting more
	// as used, such as a block bitmap that fails its checksum, whose group is
	// then used whole.
	Warnings []string
}

// Stored returns the extents of a that an image stores: Used without Unneeded.
func (a *Allocation) Stored() []Extent {
	return Subtract(a.Used, a.Unneeded)
}

// UsedBytes returns the total length of a's used extents.
func (a *Allocation) UsedBytes() int64 {
	var n int64
	for _, e := range a.Used {
		n += e.Len
	}
	return n
}

// Subtract returns the parts of a that are not in b. Both must be sorted and
// not overlapping (as Normalize returns them); so is the result.
func Subtract(a, b []Extent) []Extent {
	var out []Extent
	j := 0
	for _, e := range a {
		off, end := e.Off, e.Off+e.Len
		for j < len(b) && b[j].Off+b[j].Len <= off {
			j++
		}
		for k := j; k < len(b) && b[k].Off < end; k++ {
			if b[k].Off > off {
				out = append(out, Extent{Off: off, Len: b[k].Off - off})
			}
			off = max(off, b[k].Off+b[k].Len)
		}
		if off < end {
			out = append(out, Extent{Off: off, Len: end - off})
		}
	}
	return out
}

// Intersect returns the parts of a that are also in b, under the same rules as
// Subtract.
func Intersect(a, b []Extent) []Extent {
	return Subtract(a, Subtract(a, b))
}

// Normalize sorts extents, merges those that touch or overlap, drops empty ones
// and clips them to [0, size).
func Normalize(ext []Extent, size int64) []Extent {
	sort.Slice(ext, func(i, j int) bool { return ext[i].Off < ext[j].Off })
	out := ext[:0]
	for _, e := range ext {
		if e.Off < 0 {
			e.Len += e.Off
			e.Off = 0
		}
		if e.Off+e.Len > size {
			e.Len = size - e.Off
		}
		if e.Len <= 0 {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Off+out[n-1].Len >= e.Off {
			if end := e.Off + e.Len; end > out[n-1].Off+out[n-1].Len {
				out[n-1].Len = end - out[n-1].Off
			}
			continue
		}
		out = append(out, e)
	}
	return out
}
