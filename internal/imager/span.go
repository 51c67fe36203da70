package imager

import "cairn/internal/repo"

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
