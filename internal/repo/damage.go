package repo

import (
	"context"
	"errors"
	"fmt"

	"cairn/internal/format"
	"cairn/internal/storage"
)

// ByteRange is a run of bytes of a disk, as in the format package.
type ByteRange = format.ByteRange

// ErrDamaged is matched (errors.Is) by the errors of the Read methods below when the
// object is lost: a blob the index does not have, a file or pack the storage does
// not have or that is too short, or bytes that were read but are not what was
// stored. Any other error is a failure to read (such as an unreachable storage),
// which says nothing about the object; repairs must not drop data for it.
var ErrDamaged = errors.New("damaged or missing")

// lost wraps err with ErrDamaged when the storage says the file is missing or the
// range is outside it.
func lost(err error) error {
	if storage.IsNotExist(err) || errors.Is(err, storage.ErrInvalid) {
		return fmt.Errorf("%w (%w)", err, ErrDamaged)
	}
	return err
}

// ReadBlob is LoadBlob whose error matches ErrDamaged when the blob is lost.
func (r *Repository) ReadBlob(ctx context.Context, t BlobType, id ID) ([]byte, error) {
	l, ok := r.index.lookup(t, id)
	if !ok {
		return nil, fmt.Errorf("%v blob %s: not in the index: %w", t, id.Short(), ErrDamaged)
	}
	sealed, err := r.st.Load(ctx, storage.Handle{Type: storage.PackFile, Name: l.Pack.String()}, int64(l.Offset), int64(l.Length))
	if err != nil {
		return nil, fmt.Errorf("%v blob %s: %w", t, id.Short(), lost(err))
	}
	data, err := r.openBlob(t, id, sealed, int(l.RawLength))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrDamaged)
	}
	return data, nil
}

// ReadTree is LoadTree whose error matches ErrDamaged when the tree is lost or does
// not decode.
func (r *Repository) ReadTree(ctx context.Context, id ID) (*Tree, error) {
	b, err := r.ReadBlob(ctx, TreeBlob, id)
	if err != nil {
		return nil, err
	}
	t, err := format.DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w: %w", id.Short(), err, ErrDamaged)
	}
	return t, nil
}

// ReadChunkList is LoadChunkList whose error matches ErrDamaged when the list is
// lost or does not decode.
func (r *Repository) ReadChunkList(ctx context.Context, id ID) ([]ID, error) {
	b, err := r.ReadBlob(ctx, TreeBlob, id)
	if err != nil {
		return nil, err
	}
	ids, err := format.DecodeChunkList(b)
	if err != nil {
		return nil, fmt.Errorf("chunk list %s: %w: %w", id.Short(), err, ErrDamaged)
	}
	return ids, nil
}

// ReadSnapshot is LoadSnapshot whose error matches ErrDamaged when the snapshot
// file is gone, or was read but is not a valid snapshot.
func (r *Repository) ReadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	h := storage.Handle{Type: storage.SnapshotFile, Name: id.String()}
	sealed, err := r.st.Load(ctx, h, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id.Short(), lost(err))
	}
	if ID(r.key.ContentID(sealed)) != id {
		return nil, fmt.Errorf("snapshot %s: content does not match its name: %w", id.Short(), ErrDamaged)
	}
	plain, err := r.key.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w: %w", id.Short(), err, ErrDamaged)
	}
	s, err := format.DecodeSnapshot(plain)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w: %w", id.Short(), err, ErrDamaged)
	}
	return s, nil
}

// PackStored reports, for each pack id, whether the storage holds it; a repair asks
// before it reads, so that a pack's absence is known without an error for each blob.
func (r *Repository) PackStored(ctx context.Context) (map[ID]bool, error) {
	files, err := r.ListFiles(ctx, storage.PackFile)
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	out := make(map[ID]bool, len(files))
	for _, f := range files {
		if id, err := ParseID(f.Name); err == nil {
			out[id] = true
		}
	}
	return out, nil
}

// VerifyPackBlobs reads a whole pack once and returns the blobs of list that do not
// decrypt or match their id, with why. A pack the storage does not have, or that is
// shorter than list says, loses the blobs it cannot hold; any other failure to read
// it is returned as the error.
func (r *Repository) VerifyPackBlobs(ctx context.Context, pack ID, list []PackBlob) (map[ID]error, error) {
	bad := map[ID]error{}
	err := r.LoadPackBlobs(ctx, pack, list, func(b PackBlob, _ []byte, err error) error {
		if err != nil {
			bad[b.ID] = err
		}
		return nil
	})
	if err != nil {
		if err = lost(err); errors.Is(err, ErrDamaged) {
			for _, b := range list {
				bad[b.ID] = fmt.Errorf("pack %s: %w", pack.Short(), err)
			}
			return bad, nil
		}
		return nil, fmt.Errorf("pack %s: %w", pack.Short(), err)
	}
	return bad, nil
}
