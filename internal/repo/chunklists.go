package repo

import (
	"context"
	"fmt"

	"cairn/internal/format"
)

// ChunkList is a chunk list with its group digests (format.ChunkList).
type ChunkList = format.ChunkList

// SaveChunkListDigests stores a chunk list with the digests of its groups of
// l.Group chunks (see format.ChunkList), as SaveChunkList does.
func (r *Repository) SaveChunkListDigests(ctx context.Context, l *ChunkList) (ID, error) {
	n := len(l.IDs)
	switch {
	case n > format.ChunkListMax:
		return ID{}, fmt.Errorf("chunk list of %d ids exceeds %d", n, format.ChunkListMax)
	case l.Group == 0 && len(l.Digests) != 0, l.Group < 0, l.Group&(l.Group-1) != 0, l.Group > format.ChunkListMax,
		l.Group != 0 && (n == 0 || len(l.Digests) != (n+l.Group-1)/l.Group):
		return ID{}, fmt.Errorf("chunk list of %d ids with %d digests of groups of %d", n, len(l.Digests), l.Group)
	}
	id, _, err := r.SaveBlob(ctx, TreeBlob, format.EncodeChunkListDigests(l))
	return id, err
}

// LoadChunkListDigests loads a chunk list with its digests; a list saved
// without them (or by an older version) has none.
func (r *Repository) LoadChunkListDigests(ctx context.Context, id ID) (*ChunkList, error) {
	b, err := r.LoadBlob(ctx, TreeBlob, id)
	if err != nil {
		return nil, err
	}
	l, err := format.DecodeChunkListDigests(b)
	if err != nil {
		return nil, fmt.Errorf("chunk list %s: %w", id.Short(), err)
	}
	return l, nil
}
