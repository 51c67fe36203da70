// Package prune reclaims the space no snapshot uses: it deletes packs whose blobs
// no snapshot reaches, repacks the used blobs of packs that are mostly unused, and
// rewrites the index. The caller holds an exclusive lock, so no backup has written
// anything that is not yet referenced.
package prune

import (
	"context"
	"fmt"
	"sort"

	"cairn/internal/repo"
	"cairn/internal/storage"
)

// Options control a prune.
type Options struct {
	// MaxUnused is the share of the repository's size that may stay unused in
	// packs that are partly used (0.05: 5%); packs are repacked, most unused
	// first, until the rest is within it. 0 repacks every partly used pack.
	MaxUnused float64
	// DryRun only counts.
	DryRun bool
	// Progress, if set, hears what is being done.
	Progress func(format string, args ...any)
}

// Result says what a prune did (or would do).
type Result struct {
	Snapshots       int
	BlobsUsed       int
	PacksKept       int
	PacksDeleted    int // wholly unused, or not in the index
	PacksRepacked   int
	BytesDeleted    int64 // size of the packs deleted and repacked
	BytesRepacked   int64 // used bytes written again
	BytesUnusedLeft int64
}

type blobKey struct {
	t  repo.BlobType
	id repo.ID
}

type packStat struct {
	id           repo.ID
	used, unused int64
	blobs        []repo.IndexedBlob
}

// Prune reclaims the unused space of r.
func Prune(ctx context.Context, r *repo.Repository, opts Options) (*Result, error) {
	say := opts.Progress
	if say == nil {
		say = func(string, ...any) {}
	}
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	res := &Result{}
	say("finding the data every snapshot uses")
	used, n, err := usedBlobs(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("%w (run 'cairn check' and repair the repository before pruning)", err)
	}
	res.Snapshots, res.BlobsUsed = n, len(used)

	packs := map[repo.ID]*packStat{}
	for _, id := range r.IndexedPacks() {
		packs[id] = &packStat{id: id}
	}
	_ = r.EachIndexedBlob(func(b repo.IndexedBlob) error {
		p := packs[b.Pack]
		if used[blobKey{b.Type, b.ID}] {
			p.used += int64(b.Length)
			p.blobs = append(p.blobs, b)
		} else {
			p.unused += int64(b.Length)
		}
		return nil
	})
	stored, err := r.ListFiles(ctx, storage.PackFile)
	if err != nil {
		return nil, err
	}
	var total int64
	drop := map[repo.ID]bool{}
	var repack []*packStat
	for _, f := range stored {
		total += f.Size
		id, err := repo.ParseID(f.Name)
		if err != nil {
			continue
		}
		p, indexed := packs[id]
		switch {
		case !indexed, p.used == 0:
			drop[id] = true
			res.PacksDeleted++
			res.BytesDeleted += f.Size
		case p.unused > 0:
			repack = append(repack, p)
		}
	}
	// Repack the packs with most unused bytes until what stays unused is allowed.
	sort.Slice(repack, func(i, j int) bool { return repack[i].unused > repack[j].unused })
	var unusedLeft int64
	for _, p := range repack {
		unusedLeft += p.unused
	}
	limit := int64(opts.MaxUnused * float64(total))
	var chosen []*packStat
	for _, p := range repack {
		if unusedLeft <= limit {
			break
		}
		chosen = append(chosen, p)
		unusedLeft -= p.unused
		res.BytesRepacked += p.used
		res.BytesDeleted += p.used + p.unused
	}
	res.PacksRepacked = len(chosen)
	res.BytesUnusedLeft = unusedLeft
	res.PacksKept = len(packs) - res.PacksRepacked
	for id := range drop {
		if _, ok := packs[id]; ok {
			res.PacksKept--
		}
	}
	if opts.DryRun {
		return res, nil
	}

	for i, p := range chosen {
		say("repacking pack %d of %d", i+1, len(chosen))
		if err := r.CopyBlobs(ctx, p.id, packBlobs(p.blobs)); err != nil {
			_ = r.Abort(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("pack %s: %w (run 'cairn check --read-data')", p.id.Short(), err)
		}
		drop[p.id] = true
	}
	say("writing the new index")
	if err := r.RewriteIndex(ctx, func(id repo.ID) bool { return !drop[id] }); err != nil {
		return nil, err
	}
	say("deleting %d packs", len(drop))
	for id := range drop {
		if err := r.RemovePack(ctx, id); err != nil {
			return nil, fmt.Errorf("delete pack %s: %w", id.Short(), err)
		}
	}
	return res, nil
}

func packBlobs(list []repo.IndexedBlob) []repo.PackBlob {
	out := make([]repo.PackBlob, len(list))
	for i, b := range list {
		out[i] = repo.PackBlob{Type: b.Type, ID: b.ID, Offset: b.Offset, Length: b.Length, RawLength: b.RawLength}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out
}

// usedBlobs returns every blob a snapshot reaches, and the number of snapshots.
func usedBlobs(ctx context.Context, r *repo.Repository) (map[blobKey]bool, int, error) {
	ids, err := r.SnapshotIDs(ctx)
	if err != nil {
		return nil, 0, err
	}
	used := map[blobKey]bool{}
	for _, id := range ids {
		s, err := r.LoadSnapshot(ctx, id)
		if err != nil {
			return nil, 0, err
		}
		if s.Kind == repo.KindImage && s.Image != nil {
			for _, reg := range s.Image.Regions {
				for _, lid := range reg.Chunks {
					used[blobKey{repo.TreeBlob, lid}] = true
					list, err := r.LoadChunkList(ctx, lid)
					if err != nil {
						return nil, 0, fmt.Errorf("snapshot %s: %w", id.Short(), err)
					}
					for _, c := range list {
						if !c.IsNull() {
							used[blobKey{repo.DataBlob, c}] = true
						}
					}
				}
			}
			continue
		}
		if err := walkTree(ctx, r, s.Tree, used); err != nil {
			return nil, 0, fmt.Errorf("snapshot %s: %w", id.Short(), err)
		}
	}
	return used, len(ids), nil
}

func walkTree(ctx context.Context, r *repo.Repository, id repo.ID, used map[blobKey]bool) error {
	k := blobKey{repo.TreeBlob, id}
	if used[k] {
		return nil
	}
	used[k] = true
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	for _, n := range t.Nodes {
		if n.Subtree != nil {
			if err := walkTree(ctx, r, *n.Subtree, used); err != nil {
				return err
			}
		}
		for _, c := range n.Content {
			used[blobKey{repo.DataBlob, c}] = true
		}
	}
	return nil
}
