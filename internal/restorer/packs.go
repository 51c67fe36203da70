package restorer

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"cairn/internal/localfs"
	"cairn/internal/repo"
	"cairn/internal/vfs"
)

// contentPlan restores the content of files pack by pack, as restic does: the walk
// adds each file and where each of its chunks goes, then every pack is read once,
// in the order the walk first needed it, and each blob is written to every place
// that holds it. A restore so reads the repository nearly in the order it was
// written, with one request a pack, instead of a request a chunk scattered over
// the packs of the files restored at once.
//
// The walk plans a batch of files at a time and hands its packs to the workers,
// which go from one batch's packs to the next without waiting; at most two batches
// are planned and not yet restored, so memory does not grow with the snapshot. A
// pack whose blobs are wanted by two batches is read in two parts.
type contentPlan struct {
	r       *repo.Repository
	rs      *restorer
	workers int
	batch   *planBatch // being planned

	tasks   chan packTask // packs for the workers
	slots   chan struct{} // one for each batch handed to the workers and not done
	started bool
	all     sync.WaitGroup // the workers
}

// packTask is one pack of a batch, for a worker.
type packTask struct {
	batch *planBatch
	pack  repo.ID
}

// batchesInFlight is how many planned batches may wait for the workers or be
// restored at once.
const batchesInFlight = 2

// batchChunks is how many chunks a batch plans before it is restored.
const batchChunks = 4096

// planBatch is the content of a batch of files.
type planBatch struct {
	uses   map[repo.ID][]blobUse       // where each blob goes
	packs  map[repo.ID][]repo.PackBlob // the blobs wanted from each pack
	order  []repo.ID                   // packs in the order the walk first needed them
	chunks int
	left   sync.WaitGroup // packs not yet restored
}

func newBatch() *planBatch {
	return &planBatch{uses: map[repo.ID][]blobUse{}, packs: map[repo.ID][]repo.PackBlob{}}
}

// blobUse is a place a blob is written to: a file and an offset in it.
type blobUse struct {
	file *plannedFile
	off  int64
}

// plannedFile is a file whose content the plan writes.
type plannedFile struct {
	path  string // in the target
	entry *vfs.Entry
	size  int64        // the sum of its chunks
	left  atomic.Int64 // chunks not yet written (or failed)

	mu      sync.Mutex // held while the file is created
	created bool
	err     error       // the file could not be created
	failed  atomic.Bool // an error was reported: no metadata, not counted
}

func newContentPlan(r *repo.Repository, rs *restorer, workers int) *contentPlan {
	return &contentPlan{r: r, rs: rs, workers: workers, batch: newBatch(), slots: make(chan struct{}, batchesInFlight)}
}

// add plans the content of the file e, to be restored at dst. It fails, planning
// nothing, if a chunk is not in the repository's index. A full batch is started.
func (pl *contentPlan) add(ctx context.Context, dst string, e *vfs.Entry) error {
	f := &plannedFile{path: dst, entry: e}
	locs := make([]repo.BlobLocation, len(e.Node.Content))
	for i, id := range e.Node.Content {
		l, ok := pl.r.LookupBlob(repo.DataBlob, id)
		if !ok {
			return fmt.Errorf("data blob %s is missing from the repository", id.Short())
		}
		locs[i] = l
	}
	b := pl.batch
	for i, id := range e.Node.Content {
		l := locs[i]
		uses := b.uses[id]
		if len(uses) == 0 {
			if _, ok := b.packs[l.Pack]; !ok {
				b.order = append(b.order, l.Pack)
			}
			b.packs[l.Pack] = append(b.packs[l.Pack], repo.PackBlob{Type: repo.DataBlob, ID: id, Offset: l.Offset, Length: l.Length, RawLength: l.RawLength})
		}
		b.uses[id] = append(uses, blobUse{file: f, off: f.size})
		f.size += int64(l.RawLength)
	}
	f.left.Store(int64(len(e.Node.Content)))
	b.chunks += len(e.Node.Content)
	if b.chunks >= batchChunks {
		pl.start(ctx)
	}
	return nil
}

// start hands the batch planned so far to the workers, once fewer than
// batchesInFlight batches are with them.
func (pl *contentPlan) start(ctx context.Context) {
	b := pl.batch
	if len(b.order) == 0 {
		return
	}
	pl.batch = newBatch()
	if !pl.started {
		pl.started = true
		pl.tasks = make(chan packTask)
		for range pl.workers {
			pl.all.Add(1)
			go func() {
				defer pl.all.Done()
				for t := range pl.tasks {
					pl.restorePack(ctx, t.batch, t.pack)
					t.batch.left.Done()
				}
			}()
		}
	}
	select {
	case pl.slots <- struct{}{}:
	case <-ctx.Done():
		return
	}
	b.left.Add(len(b.order))
	go func() {
		defer func() { <-pl.slots }()
		for i, p := range b.order {
			select {
			case pl.tasks <- packTask{batch: b, pack: p}:
			case <-ctx.Done():
				b.left.Add(i - len(b.order))
				return
			}
		}
		b.left.Wait()
	}()
}

// finish restores what is still planned and waits until every batch is done.
func (pl *contentPlan) finish(ctx context.Context) {
	pl.start(ctx)
	for range batchesInFlight {
		pl.slots <- struct{}{}
	}
	if pl.started {
		close(pl.tasks)
		pl.all.Wait()
	}
}

func (pl *contentPlan) restorePack(ctx context.Context, b *planBatch, pack repo.ID) {
	// ReadBlobs fails only with ctx's error, which Restore returns.
	_ = pl.r.ReadBlobs(ctx, pack, b.packs[pack], func(pb repo.PackBlob, data []byte, err error) error {
		zero := err == nil && localfs.IsZero(data)
		for _, u := range b.uses[pb.ID] {
			pl.write(ctx, u, data, zero, err)
		}
		return ctx.Err()
	})
}

// write puts one blob's data (or the error it has) into one file.
func (pl *contentPlan) write(ctx context.Context, u blobUse, data []byte, zero bool, err error) {
	f := u.file
	if err == nil && !f.failed.Load() {
		pl.rs.progress.BytesWritten(int64(len(data)))
		err = f.writeAt(u.off, data, zero)
	}
	if err != nil {
		pl.fail(f, err)
	}
	if f.left.Add(-1) == 0 {
		pl.finishFile(ctx, f)
	}
}

func (pl *contentPlan) fail(f *plannedFile, err error) {
	if f.failed.CompareAndSwap(false, true) {
		pl.rs.fail(f.path, err)
	}
}

// writeAt writes data at off, creating the file (with its full size, so that zero
// chunks, which are not written, stay holes) if this is the first write.
func (f *plannedFile) writeAt(off int64, data []byte, zero bool) error {
	f.mu.Lock()
	var out *os.File
	if !f.created {
		f.created = true
		out, f.err = createFile(f.path, f.size)
	}
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if zero {
		if out != nil {
			return out.Close()
		}
		return nil
	}
	if out == nil {
		if out, err = os.OpenFile(f.path, os.O_WRONLY|noFollow, 0); err != nil {
			return err
		}
	}
	_, err = out.WriteAt(data, off)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// createFile replaces whatever non-folder is at p with an empty file of size bytes
// (a hole, to be written over), never following a symlink.
func createFile(p string, size int64) (*os.File, error) {
	if err := removeExisting(p); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// finishFile checks that a file whose content is all written has its recorded
// size, then finishes it as every restored file is (restorer.finishFile).
func (pl *contentPlan) finishFile(ctx context.Context, f *plannedFile) {
	if f.failed.Load() {
		return
	}
	if uint64(f.size) != f.entry.Node.Size {
		pl.fail(f, fmt.Errorf("restored %d bytes, the snapshot records %d", f.size, f.entry.Node.Size))
		return
	}
	pl.rs.finishFile(ctx, f.path, f.entry)
}
