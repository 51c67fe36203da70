package vfs

import (
	"context"
	"fmt"

	"cairn/internal/repo"
)

// treeSource serves a file snapshot: folders are tree blobs, files lists of data blobs.
type treeSource struct {
	r *repo.Repository
}

func (s *treeSource) children(ctx context.Context, e *Entry) ([]*Entry, error) {
	if e.Node.Subtree == nil {
		return nil, fmt.Errorf("%s: folder has no tree", e.Name())
	}
	t, err := s.r.LoadTree(ctx, *e.Node.Subtree)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name(), err)
	}
	out := make([]*Entry, len(t.Nodes))
	for i, n := range t.Nodes {
		out[i] = &Entry{Node: n, src: s}
	}
	return out, nil
}

func (s *treeSource) open(ctx context.Context, e *Entry) (*File, error) {
	f := &File{ctx: ctx}
	var off int64
	for _, id := range e.Node.Content {
		size, ok := s.r.BlobSize(repo.DataBlob, id)
		if !ok {
			return nil, fmt.Errorf("%s: data blob %s is missing from the repository", e.Name(), id.Short())
		}
		f.chunks = append(f.chunks, chunkRef{offset: off, length: int64(size)})
		off += int64(size)
	}
	f.size = off
	content := e.Node.Content
	f.load = func(ctx context.Context, i int) ([]byte, error) {
		b, err := s.r.LoadBlob(ctx, repo.DataBlob, content[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		return b, nil
	}
	return f, nil
}
