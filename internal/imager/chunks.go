package imager

import "cairn/internal/fs"

// usedRanges walks a region's used extents chunk by chunk. The extents are sorted
// and merged (fs.Normalize), and chunks are asked for in increasing order.
type usedRanges struct {
	ext []fs.Extent
	i   int
}

// in returns the parts of [off, off+n) that are used, relative to the region.
func (u *usedRanges) in(off, n int64) []fs.Extent {
	end := off + n
	for u.i < len(u.ext) && u.ext[u.i].Off+u.ext[u.i].Len <= off {
		u.i++
	}
	var out []fs.Extent
	for j := u.i; j < len(u.ext) && u.ext[j].Off < end; j++ {
		e := u.ext[j]
		s, t := max(e.Off, off), min(e.Off+e.Len, end)
		if t > s {
			out = append(out, fs.Extent{Off: s, Len: t - s})
		}
	}
	return out
}
