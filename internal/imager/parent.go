package imager

import (
	"context"
	"fmt"

	"cairn/internal/repo"
)

// parentRegion reads the chunk ids and group digests of a region of the parent
// image in order, a chunk list at a time. A list that cannot be loaded ends
// the comparison with the parent for the rest of the region: the image is
// then stored as if there were no parent, which is correct, only larger.
type parentRegion struct {
	ctx   context.Context
	r     *repo.Repository
	reg   repo.ImageRegion
	next  int             // the next list to load
	cur   *repo.ChunkList // the list holding chunk curAt
	curAt int64           // chunk index of cur's first id
	done  bool
}

// parentGroup is a group of chunks as the parent image has them.
type parentGroup struct {
	reg    *repo.ImageRegion
	first  int64
	ids    []repo.ID
	digest repo.ID // null when the parent's list has no digest for the group
}

// findParentRegion returns the region of the parent image that lies where reg
// does, with the same size and chunk size (so that its chunk ids name the
// same bytes), or nil.
func findParentRegion(ctx context.Context, r *repo.Repository, parent *repo.Image, reg *repo.ImageRegion) *parentRegion {
	if parent == nil {
		return nil
	}
	for _, p := range parent.Regions {
		if p.Offset == reg.Offset && p.Size == reg.Size && p.ChunkSize == reg.ChunkSize && p.Kind == reg.Kind {
			return &parentRegion{ctx: ctx, r: r, reg: p}
		}
	}
	return nil
}

// group returns the parent's chunks [first, first+n), or nil when they cannot
// be read. Calls must come with increasing first.
func (p *parentRegion) group(first int64, n int) *parentGroup {
	g := &parentGroup{reg: &p.reg, first: first, ids: make([]repo.ID, 0, n)}
	for c := first; c < first+int64(n); {
		for !p.done && (p.cur == nil || c >= p.curAt+int64(len(p.cur.IDs))) {
			if p.cur != nil {
				p.curAt += int64(len(p.cur.IDs))
			}
			if p.next >= len(p.reg.Chunks) {
				p.done = true
				break
			}
			l, err := p.r.LoadChunkListDigests(p.ctx, p.reg.Chunks[p.next])
			p.next++
			if err != nil {
				p.done = true
				break
			}
			p.cur = l
		}
		if p.done {
			return nil
		}
		i := c - p.curAt
		k := min(int64(len(p.cur.IDs))-i, first+int64(n)-c)
		g.ids = append(g.ids, p.cur.IDs[i:i+k]...)
		c += k
	}
	// The digest, when the list has one for exactly these chunks.
	if l := p.cur; l.Group > 0 && first >= p.curAt {
		i := first - p.curAt
		if i%int64(l.Group) == 0 && (int64(n) == int64(l.Group) || i+int64(n) == int64(len(l.IDs))) {
			g.digest = l.Digests[i/int64(l.Group)]
		}
	}
	return g
}

// chunks loads the parent's blobs of the group and returns each chunk's bytes
// (nil for a null chunk), and the size of each blob; nil when the parent has no
// chunk of the group.
func (g *parentGroup) chunks(ctx context.Context, r *repo.Repository, reg *repo.ImageRegion) ([][]byte, map[repo.ID]int, error) {
	out := make([][]byte, len(g.ids))
	blobs := map[repo.ID][]byte{}
	any := false
	for j, id := range g.ids {
		if id.IsNull() {
			continue
		}
		any = true
		c := g.first + int64(j)
		b, ok := blobs[id]
		if !ok {
			var err error
			if b, err = r.LoadBlob(ctx, repo.DataBlob, id); err != nil {
				return nil, nil, err
			}
			blobs[id] = b
		}
		// The same blob may hold equal spans at two places: its span is
		// found from each chunk.
		s, _, err := reg.SpanOf(c, int64(len(b)))
		if err != nil {
			return nil, nil, fmt.Errorf("parent image: %w", err)
		}
		so, _ := spanBytes(reg, s, s)
		off, n := spanBytes(reg, c, c+1)
		out[j] = b[off-so : off-so+n]
	}
	if !any {
		return nil, nil, nil
	}
	sizes := make(map[repo.ID]int, len(blobs))
	for id, b := range blobs {
		sizes[id] = len(b)
	}
	return out, sizes, nil
}
