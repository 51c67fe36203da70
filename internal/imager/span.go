package imager

import (
	"fmt"

	"cairn/internal/repo"
)

// SpanSize is the most bytes one blob of an image holds. A region is cut into
// chunks of its chunk size, the unit in which an image tells what changed; a
// blob holds a span of them: 2^k chunks (k ≥ 0) from a multiple of 2^k,
// clipped to the region's end. A chunk list names, for each chunk, the blob
// whose span holds it (docs/format.md, "Image snapshots"). A first image
// stores whole spans of up to SpanSize bytes, which compress about as well as
// a stream of the whole disk; a later one stores only the chunks that changed,
// in small spans, and names the earlier blobs for the rest.
const SpanSize = 8 << 20

// maxKeptSpans bounds what reading a group of chunks loads: a later image that
// would name earlier blobs holding more than maxKeptSpans times the group's
// bytes stores the group as one span again.
const maxKeptSpans = 2

// spanOf returns the chunks [start, end) of reg that a blob of n bytes named
// at chunk i holds: the run of 2^k chunks from a multiple of 2^k that holds i,
// clipped to the region's end, whose bytes add up to n. There is at most one;
// when there is none, the chunk list and the blob do not belong together.
func spanOf(reg *repo.ImageRegion, i int64, n int64) (start, end int64, err error) {
	cs, total := int64(reg.ChunkSize), reg.NumChunks()
	if i < 0 || i >= total {
		return 0, 0, fmt.Errorf("chunk %d of a region of %d chunks", i, total)
	}
	for l := int64(1); ; l *= 2 {
		s := i - i%l
		e := min(s+l, total)
		b := min(e*cs, reg.Size) - s*cs
		if b == n {
			return s, e, nil
		}
		if b > n || (s == 0 && e == total) {
			return 0, 0, fmt.Errorf("a blob of %d bytes at chunk %d fits no span of %d-byte chunks", n, i, cs)
		}
	}
}

// spanBytes returns the byte range of chunks [start, end) of reg, relative to
// the region.
func spanBytes(reg *repo.ImageRegion, start, end int64) (off, n int64) {
	cs := int64(reg.ChunkSize)
	return start * cs, min(end*cs, reg.Size) - start*cs
}

// coveringSpan returns the smallest span (a run of 2^k chunks from a multiple
// of 2^k, clipped to total chunks) that holds chunks first and last.
func coveringSpan(first, last, total int64) (start, end int64) {
	l := int64(1)
	for first/l != last/l {
		l *= 2
	}
	start = first - first%l
	return start, min(start+l, total)
}

// pieces cuts the chunks [start, end) into spans, largest first: each one
// 2^k chunks from a multiple of 2^k, none longer than most chunks.
func pieces(start, end, most int64) [][2]int64 {
	var out [][2]int64
	for p := start; p < end; {
		l := int64(1)
		for l*2 <= most && p%(l*2) == 0 && p+l*2 <= end {
			l *= 2
		}
		out = append(out, [2]int64{p, p + l})
		p += l
	}
	return out
}
