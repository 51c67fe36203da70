package ext

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
)

// A file's block map is read lazily, one window at a time: the logical blocks
// mapped by one extent tree leaf, or by one block of pointers (or the 12
// direct pointers), found by descending the tree from the inode. Reading a
// file in order reads each node of its map once (through the block cache);
// reading it anywhere costs at most one node a tree level. Nothing about a
// damaged map can make a descent loop: a tree's depth falls by one at each
// level, and pointer blocks have fixed levels.

// window maps the logical blocks [lo, hi) of a file: runs of mapped blocks,
// sorted and not overlapping, and holes between them. Unwritten extents are
// holes: they read as zeros.
type window struct {
	lo, hi uint64
	runs   []blockRun
}

// find returns, for logical block l in [w.lo, w.hi), the physical block of l
// and the number of blocks from l mapped contiguously, or, in a hole, the
// number of hole blocks from l, with mapped false.
func (w *window) find(l uint64) (phys, n uint64, mapped bool) {
	i := sort.Search(len(w.runs), func(i int) bool { return w.runs[i].logical+w.runs[i].n > l })
	if i < len(w.runs) && w.runs[i].logical <= l {
		r := w.runs[i]
		return r.physical + l - r.logical, r.logical + r.n - l, true
	}
	end := w.hi
	if i < len(w.runs) {
		end = w.runs[i].logical
	}
	return 0, end - l, false
}

// blockMapper finds the physical blocks of a file's logical blocks, keeping
// the last window it read. It is safe for concurrent use.
type blockMapper struct {
	r  *reader
	in *inode

	mu  sync.Mutex
	win *window
}

// find returns, for logical block l, its physical block and the number of
// blocks from l mapped contiguously (mapped true), or the number of hole
// blocks from l (mapped false); n is at least 1.
func (m *blockMapper) find(l uint64) (phys, n uint64, mapped bool, err error) {
	m.mu.Lock()
	w := m.win
	m.mu.Unlock()
	if w == nil || l < w.lo || l >= w.hi {
		if m.in.flags&inodeFlagExtents != 0 {
			w, err = m.r.extentWindow(m.in, l)
		} else {
			w, err = m.r.indirectWindow(m.in, l)
		}
		if err != nil {
			return 0, 0, false, err
		}
		m.mu.Lock()
		m.win = w
		m.mu.Unlock()
	}
	phys, n, mapped = w.find(l)
	return phys, n, mapped, nil
}

// maxLogical is one past the last logical block a map can address: 2^32 for
// extent trees (32-bit ee_block), and 12 direct pointers, then a single,
// double and triple indirect block's worth for block pointers.
func (r *reader) maxLogical(in *inode) uint64 {
	if in.flags&inodeFlagExtents != 0 {
		return 1 << 32
	}
	p := uint64(r.f.blockSize / 4)
	return 12 + p + p*p + p*p*p
}

// checkBlocks checks that the n blocks from physical are inside the
// filesystem, past the boot block.
func (f *filesystem) checkBlocks(physical, n uint64) error {
	if physical < max(uint64(f.sb.firstDataBlock), 1) || physical >= f.sb.blocksCount || f.sb.blocksCount-physical < n {
		return fmt.Errorf("blocks %d+%d outside the filesystem of %d blocks", physical, n, f.sb.blocksCount)
	}
	return nil
}

// extentHeader is the 12-byte header of an extent tree node.
type extentHeader struct {
	entries, max, depth int
}

// parseExtentHeader decodes and checks the header of node b (i_block, or a
// tree block).
func parseExtentHeader(b []byte) (extentHeader, error) {
	le := binary.LittleEndian
	if le.Uint16(b) != extentMagic {
		return extentHeader{}, errors.New("bad extent header magic")
	}
	h := extentHeader{int(le.Uint16(b[2:])), int(le.Uint16(b[4:])), int(le.Uint16(b[6:]))}
	if h.depth > extentMaxDepth {
		return h, fmt.Errorf("extent tree too deep (%d)", h.depth)
	}
	if h.entries > h.max || 12+12*h.max > len(b) {
		return h, fmt.Errorf("extent node of %d entries (at most %d) in %d bytes", h.entries, h.max, len(b))
	}
	return h, nil
}

// extentWindow descends in's extent tree to the leaf that maps logical block
// l and returns its window: at each index node, the last entry whose first
// block is at or before l (or the first entry), narrowing [lo, hi) to the
// blocks between that entry's first block and the next's.
func (r *reader) extentWindow(in *inode, l uint64) (*window, error) {
	le := binary.LittleEndian
	lo, hi := uint64(0), uint64(1)<<32
	if l >= hi {
		return &window{lo: hi, hi: math.MaxUint64}, nil
	}
	node := in.block[:]
	at := uint64(0) // the node's block, 0 for the root in the inode
	want := -1      // the depth the node must have
	for {
		h, err := parseExtentHeader(node)
		if err == nil && want >= 0 && h.depth != want {
			err = fmt.Errorf("depth %d, want %d", h.depth, want)
		}
		if err != nil {
			if at != 0 {
				return nil, fmt.Errorf("extent node at block %d: %w", at, err)
			}
			return nil, err
		}
		if h.depth == 0 {
			return r.extentLeaf(node[12:12+12*h.entries], lo, hi, at)
		}
		if h.entries == 0 {
			return nil, fmt.Errorf("empty extent index node at block %d", at)
		}
		i := 0
		for j := range h.entries {
			k := uint64(le.Uint32(node[12+12*j:]))
			if j > 0 && k <= uint64(le.Uint32(node[12+12*(j-1):])) {
				return nil, fmt.Errorf("extent index node at block %d out of order", at)
			}
			if k <= l {
				i = j
			}
		}
		e := node[12+12*i:]
		if i > 0 {
			lo = max(lo, uint64(le.Uint32(e)))
		}
		if i+1 < h.entries {
			hi = min(hi, uint64(le.Uint32(e[12:])))
		}
		child := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		if err := r.f.checkBlocks(child, 1); err != nil {
			return nil, fmt.Errorf("extent node: %w", err)
		}
		if node, err = r.block(child); err != nil {
			return nil, fmt.Errorf("reading extent node: %w", err)
		}
		at, want = child, h.depth-1
	}
}

// extentLeaf returns the window [lo, hi) of the leaf entries b (in the node
// at block at): its written extents, clipped to the window.
func (r *reader) extentLeaf(b []byte, lo, hi, at uint64) (*window, error) {
	le := binary.LittleEndian
	w := &window{lo: lo, hi: hi}
	end := uint64(0) // of the previous extent
	for i := 0; i+12 <= len(b); i += 12 {
		e := b[i:]
		first := uint64(le.Uint32(e))
		n := uint64(le.Uint16(e[4:]))
		unwritten := n > extentUninit
		if unwritten {
			n -= extentUninit
		}
		physical := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
		switch {
		case n == 0:
			return nil, fmt.Errorf("empty extent in the leaf at block %d", at)
		case first < end:
			return nil, fmt.Errorf("extents out of order or overlapping in the leaf at block %d", at)
		}
		end = first + n
		if err := r.f.checkBlocks(physical, n); err != nil {
			return nil, fmt.Errorf("extent: %w", err)
		}
		if unwritten || end <= lo || first >= hi {
			continue
		}
		if first < lo {
			physical += lo - first
			first = lo
		}
		w.runs = append(w.runs, blockRun{first, physical, min(end, hi) - first})
	}
	return w, nil
}

// indirectWindow returns the window of block pointers that maps logical
// block l: the 12 direct pointers, or the block of pointers reached through
// the single, double or triple indirect block; a zero pointer on the way is a
// hole as long as what it would map.
func (r *reader) indirectWindow(in *inode, l uint64) (*window, error) {
	le := binary.LittleEndian
	p := uint64(r.f.blockSize / 4)
	if l < 12 {
		return r.pointerWindow(in.block[:48], 0)
	}
	// The first logical block and span of the single, double and triple
	// indirect trees.
	first, span := uint64(12), p
	for level := 1; level <= 3; level++ {
		if l >= first+span {
			first += span
			span *= p
			continue
		}
		ptr := uint64(le.Uint32(in.block[4*(11+level):]))
		// Descend: at each level, the pointer to the subtree holding l.
		for {
			if ptr == 0 {
				return &window{lo: first, hi: first + span}, nil
			}
			if err := r.f.checkBlocks(ptr, 1); err != nil {
				return nil, fmt.Errorf("indirect block: %w", err)
			}
			b, err := r.block(ptr)
			if err != nil {
				return nil, fmt.Errorf("reading indirect block: %w", err)
			}
			if span == p {
				return r.pointerWindow(b, first)
			}
			span /= p
			k := (l - first) / span
			first += k * span
			ptr = uint64(le.Uint32(b[4*k:]))
		}
	}
	return &window{lo: first, hi: math.MaxUint64}, nil
}

// pointerWindow returns the window of the block pointers in b, mapping
// logical blocks from first on.
func (r *reader) pointerWindow(b []byte, first uint64) (*window, error) {
	le := binary.LittleEndian
	n := uint64(len(b) / 4)
	w := &window{lo: first, hi: first + n}
	for i := uint64(0); i < n; i++ {
		ptr := uint64(le.Uint32(b[4*i:]))
		if ptr == 0 {
			continue
		}
		if err := r.f.checkBlocks(ptr, 1); err != nil {
			return nil, fmt.Errorf("block pointer: %w", err)
		}
		if k := len(w.runs); k > 0 && w.runs[k-1].logical+w.runs[k-1].n == first+i && w.runs[k-1].physical+w.runs[k-1].n == ptr {
			w.runs[k-1].n++
			continue
		}
		w.runs = append(w.runs, blockRun{first + i, ptr, 1})
	}
	return w, nil
}
