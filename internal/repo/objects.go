package repo

import (
	"context"
	"fmt"
	"strings"

	"cairn/internal/format"
	"cairn/internal/storage"
)

// SaveTree stores a directory listing as a tree blob.
func (r *Repository) SaveTree(ctx context.Context, t *Tree) (ID, int, error) {
	b, err := format.EncodeTree(t)
	if err != nil {
		return ID{}, 0, err
	}
	return r.SaveBlob(ctx, TreeBlob, b)
}

// LoadTree loads and checks a tree blob.
func (r *Repository) LoadTree(ctx context.Context, id ID) (*Tree, error) {
	b, err := r.LoadBlob(ctx, TreeBlob, id)
	if err != nil {
		return nil, err
	}
	t, err := format.DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), err)
	}
	return t, nil
}

// SaveChunkList stores a list of at most ChunkListMax chunk ids (null ids allowed)
// as a metadata blob, kept with the trees.
func (r *Repository) SaveChunkList(ctx context.Context, ids []ID) (ID, error) {
	if len(ids) > format.ChunkListMax {
		return ID{}, fmt.Errorf("chunk list of %d ids exceeds %d", len(ids), format.ChunkListMax)
	}
	id, _, err := r.SaveBlob(ctx, TreeBlob, format.EncodeChunkList(ids))
	return id, err
}

// LoadChunkList loads a list of chunk ids saved by SaveChunkList.
func (r *Repository) LoadChunkList(ctx context.Context, id ID) ([]ID, error) {
	b, err := r.LoadBlob(ctx, TreeBlob, id)
	if err != nil {
		return nil, err
	}
	ids, err := format.DecodeChunkList(b)
	if err != nil {
		return nil, fmt.Errorf("chunk list %s: %w", id.Short(), err)
	}
	return ids, nil
}

// SaveSnapshot flushes all blobs and then stores the snapshot, so that a snapshot
// never names a blob that is not durable.
func (r *Repository) SaveSnapshot(ctx context.Context, s *Snapshot) (ID, error) {
	if err := r.Flush(ctx); err != nil {
		return ID{}, err
	}
	s.Version = format.Version
	b, err := format.EncodeSnapshot(s)
	if err != nil {
		return ID{}, err
	}
	id, err := r.saveFile(ctx, storage.SnapshotFile, b)
	if err != nil {
		return ID{}, fmt.Errorf("save snapshot: %w", err)
	}
	return id, nil
}

// LoadSnapshot loads one snapshot.
func (r *Repository) LoadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	b, err := r.loadFile(ctx, storage.SnapshotFile, id)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	s, err := format.DecodeSnapshot(b)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	return s, nil
}

// ListFiles returns the names of every stored file of type t.
func (r *Repository) ListFiles(ctx context.Context, t storage.FileType) ([]storage.FileInfo, error) {
	var out []storage.FileInfo
	err := r.st.List(ctx, t, func(fi storage.FileInfo) error {
		out = append(out, fi)
		return nil
	})
	return out, err
}

// SnapshotIDs returns the ids of every snapshot file.
func (r *Repository) SnapshotIDs(ctx context.Context) ([]ID, error) {
	files, err := r.ListFiles(ctx, storage.SnapshotFile)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var ids []ID
	for _, f := range files {
		if id, err := ParseID(f.Name); err == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// RemoveSnapshot deletes a snapshot file (its data stays until prune).
func (r *Repository) RemoveSnapshot(ctx context.Context, id ID) error {
	return r.st.Remove(ctx, storage.Handle{Type: storage.SnapshotFile, Name: id.String()})
}

// CheckFile loads a stored file and verifies that its content matches its name and
// opens with the key (for sealed types).
func (r *Repository) CheckFile(ctx context.Context, t storage.FileType, name string) error {
	id, err := ParseID(name)
	if err != nil {
		return fmt.Errorf("%s/%s: name is not an id", t, name)
	}
	if t != storage.PackFile {
		r.cache.remove(t, name) // check the stored file, not a cached copy
	}
	switch t {
	case storage.IndexFile:
		_, err = r.LoadIndexFile(ctx, id)
	case storage.SnapshotFile:
		_, err = r.LoadSnapshot(ctx, id)
	case storage.PackFile:
		var data []byte
		data, err = r.st.Load(ctx, storage.Handle{Type: t, Name: name}, 0, 0)
		if err == nil && ID(r.key.ContentID(data)) != id {
			err = fmt.Errorf("pack %s: content does not match its name (damaged)", id.Short())
		}
	default:
		err = fmt.Errorf("cannot check files of type %s", t)
	}
	return err
}

// ShortID returns the first 8 hex digits of id.
func ShortID(id ID) string { return id.Short() }

// HasPrefix reports whether id's hex form starts with prefix.
func HasPrefix(id ID, prefix string) bool {
	return strings.HasPrefix(id.String(), strings.ToLower(prefix))
}
