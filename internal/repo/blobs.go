package repo

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"cairn/internal/crypto"
	"cairn/internal/format"
	"cairn/internal/storage"

	"github.com/klauspost/compress/zstd"
)

// packSlack is room beyond the pack size for the pack's header, so that finishing
// a pack does not copy it.
const packSlack = 256 << 10

// packers gathers sealed blobs into packs, one open pack per blob type, and uploads
// finished packs with a bounded number of uploads at once.
type packers struct {
	r       *Repository
	mu      sync.Mutex
	open    map[BlobType]*openPack
	pending map[blobKey]bool // saved into a pack not yet uploaded
	uploads chan struct{}    // semaphore of uploads in flight
	wg      sync.WaitGroup
	errMu   sync.Mutex
	err     error // first upload error; every later save fails with it

	// Data packs are the largest allocations of a backup. There are at most
	// maxBufs of their buffers: one open pack and one for each upload. free holds
	// those not in use; a saver that needs a new pack when all are in use waits
	// for an upload to finish, so a slow storage slows the backup down instead of
	// making it hold more packs.
	free    chan []byte
	bufs    int // data pack buffers made so far (under mu)
	maxBufs int
}

type openPack struct {
	t     BlobType
	data  []byte
	blobs []format.PackBlob
}

func newPackers(r *Repository) *packers {
	n := storage.Connections(r.st)
	return &packers{
		r:       r,
		open:    map[BlobType]*openPack{},
		pending: map[blobKey]bool{},
		uploads: make(chan struct{}, n),
		free:    make(chan []byte, n+1),
		maxBufs: n + 1,
	}
}

// takeBuf returns the buffer for a new pack of type t without waiting: a free or new
// data pack buffer, or nil for other types, whose packs are small and grow as
// needed. ok is false when every data pack buffer is in use. Call it under mu.
func (p *packers) takeBuf(t BlobType) (buf []byte, ok bool) {
	if t != DataBlob {
		return nil, true
	}
	select {
	case buf = <-p.free:
		return buf, true
	default:
	}
	if p.bufs < p.maxBufs {
		p.bufs++
		return make([]byte, 0, int(p.r.cfg.PackSize)+packSlack), true
	}
	return nil, false
}

// waitBuf waits for a data pack buffer to be given back.
func (p *packers) waitBuf(ctx context.Context) ([]byte, error) {
	select {
	case buf := <-p.free:
		return buf, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// putBuf gives back the buffer of a data pack that is stored or dropped.
func (p *packers) putBuf(op *openPack) {
	if op.t == DataBlob && op.data != nil {
		p.free <- op.data[:0] // never blocks: free holds every buffer there is
	}
}

func (p *packers) failed() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// SaveBlob stores data as a blob of type t unless the repository has it already, and
// returns its id and the bytes it added to the repository (0 for a known blob). The
// blob is durable only after Flush. Callers run SaveBlob from many goroutines at
// once: hashing, compressing and sealing happen on the caller's goroutine.
func (r *Repository) SaveBlob(ctx context.Context, t BlobType, data []byte) (ID, int, error) {
	id := ID(r.key.ContentID(data))
	n, err := r.SaveBlobWithID(ctx, t, id, data)
	return id, n, err
}

// SaveBlobWithID is SaveBlob for a caller that has already computed id with BlobID.
func (r *Repository) SaveBlobWithID(ctx context.Context, t BlobType, id ID, data []byte) (int, error) {
	return r.saveBlob(ctx, t, id, data, r.enc)
}

func (r *Repository) saveBlob(ctx context.Context, t BlobType, id ID, data []byte, enc *zstd.Encoder) (int, error) {
	if len(data) > format.MaxBlobSize {
		return 0, fmt.Errorf("blob of %d bytes exceeds the maximum of %d", len(data), format.MaxBlobSize)
	}
	if ok, err := r.admit(t, id, false); !ok || err != nil {
		return 0, err
	}
	bp := bufPool.Get().(*[]byte)
	payload := r.compress(enc, *bp, data)
	defer func() {
		*bp = payload[:0]
		bufPool.Put(bp)
	}()
	return r.seal(ctx, t, id, payload, len(data))
}

// CopyBlobs stores the listed blobs of a pack again in new packs, as they are
// stored (compressed the same), so that the pack can be deleted once the index
// is rewritten (prune). Every blob is verified against its id first; the first
// that fails stops the copy with its error.
func (r *Repository) CopyBlobs(ctx context.Context, pack ID, blobs []PackBlob) error {
	data, err := r.st.Load(ctx, storage.Handle{Type: storage.PackFile, Name: pack.String()}, 0, 0)
	if err != nil {
		return err
	}
	for _, b := range blobs {
		end := int(b.Offset) + int(b.Length)
		if end > len(data) {
			return fmt.Errorf("%v blob %s: beyond the end of pack %s", b.Type, b.ID.Short(), pack.Short())
		}
		payload, _, err := r.openPayload(b.Type, b.ID, data[b.Offset:end], int(b.RawLength))
		if err != nil {
			return err
		}
		if err := r.copyBlob(ctx, b, payload); err != nil {
			return err
		}
	}
	return nil
}

// copyBlob seals a verified blob's payload, compressed as it was, into a new
// pack, even though the index has the blob.
func (r *Repository) copyBlob(ctx context.Context, b PackBlob, payload []byte) error {
	if ok, err := r.admit(b.Type, b.ID, true); !ok || err != nil {
		return err
	}
	_, err := r.seal(ctx, b.Type, b.ID, payload, int(b.RawLength))
	return err
}

// admit reports whether a blob is to be stored now: not when the repository has
// it (unless repack) or a pack not yet uploaded holds it. It marks an admitted
// blob as pending.
func (r *Repository) admit(t BlobType, id ID, repack bool) (bool, error) {
	p := r.packer
	if err := p.failed(); err != nil {
		return false, err
	}
	k := blobKey{t, id}
	if !repack && r.HasBlob(t, id) {
		return false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending[k] {
		return false, nil
	}
	p.pending[k] = true
	return true, nil
}

// seal encrypts a blob's payload (its encoding byte and bytes) into the open pack
// of its type, finishing the pack first when the blob would overflow it, and
// returns the bytes it stored. rawLength is the blob's plaintext length.
func (r *Repository) seal(ctx context.Context, t BlobType, id ID, payload []byte, rawLength int) (int, error) {
	p := r.packer
	var spare []byte // a data pack buffer got by waiting, not yet used
	defer func() {
		if spare != nil {
			p.free <- spare
		}
	}()
	for {
		p.mu.Lock()
		var full *openPack
		op := p.open[t]
		if op != nil && len(op.data)+len(payload)+crypto.Overhead > int(r.cfg.PackSize) {
			// This blob would overflow the pack: finish the pack first.
			full, op = op, nil
			delete(p.open, t)
		}
		if op == nil {
			buf, ok := spare, spare != nil
			if !ok {
				buf, ok = p.takeBuf(t)
			}
			if !ok {
				// Every data pack buffer is in use: wait for an upload to give
				// one back, then try again (another saver may have opened a
				// pack meanwhile).
				p.mu.Unlock()
				if full != nil {
					if err := p.upload(ctx, full); err != nil {
						return 0, err
					}
				}
				b, err := p.waitBuf(ctx)
				if err != nil {
					return 0, err
				}
				spare = b
				if err := p.failed(); err != nil {
					return 0, err
				}
				continue
			}
			spare = nil
			op = &openPack{t: t, data: buf}
			p.open[t] = op
		}
		offset := len(op.data)
		op.data = r.key.Seal(op.data, payload) // sealed in place: no copy of the blob
		stored := len(op.data) - offset
		op.blobs = append(op.blobs, format.PackBlob{Type: t, ID: id, Offset: uint32(offset), Length: uint32(stored), RawLength: uint32(rawLength)})
		p.mu.Unlock()
		if full != nil {
			if err := p.upload(ctx, full); err != nil {
				return 0, err
			}
		}
		return stored, nil
	}
}

// BlobID returns the id data has as a blob.
func (r *Repository) BlobID(data []byte) ID { return ID(r.key.ContentID(data)) }

// upload starts storing a finished pack in the background; it blocks while the
// maximum number of uploads is already running.
func (p *packers) upload(ctx context.Context, op *openPack) error {
	select {
	case p.uploads <- struct{}{}:
	case <-ctx.Done():
		p.putBuf(op)
		return ctx.Err()
	}
	p.wg.Add(1)
	// The upload outlives the SaveBlob call that filled the pack: it must not end
	// with that caller's context. Flush and Abort wait for it.
	uctx := context.WithoutCancel(ctx)
	go func() {
		defer p.wg.Done()
		defer func() { <-p.uploads }()
		if err := p.store(uctx, op); err != nil {
			p.errMu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.errMu.Unlock()
		}
	}()
	return nil
}

func (p *packers) store(ctx context.Context, op *openPack) error {
	r := p.r
	header := r.key.Seal(nil, format.EncodePackHeader(op.blobs))
	data := append(op.data, header...)
	data = binary.LittleEndian.AppendUint32(data, uint32(len(header)))
	op.data = data
	defer p.putBuf(op) // stored or not, the storage keeps nothing of data
	id := ID(r.key.ContentID(data))
	if err := r.st.Save(ctx, storage.Handle{Type: storage.PackFile, Name: id.String()}, data); err != nil {
		return fmt.Errorf("save pack: %w", err)
	}
	r.cachePack(op.t, id, data)
	ip := format.IndexPack{ID: id, Blobs: op.blobs}
	r.index.mu.Lock()
	r.index.addPack(ip)
	r.index.unsaved = append(r.index.unsaved, ip)
	r.index.mu.Unlock()
	p.mu.Lock()
	for _, b := range op.blobs {
		delete(p.pending, blobKey{b.Type, b.ID})
	}
	p.mu.Unlock()
	return nil
}

// Flush stores every open pack, waits for all uploads, and writes an index file for
// them, after which every blob saved so far is durable and loadable.
func (r *Repository) Flush(ctx context.Context) error {
	p := r.packer
	p.mu.Lock()
	var ops []*openPack
	for t, op := range p.open {
		ops = append(ops, op)
		delete(p.open, t)
	}
	p.mu.Unlock()
	for _, op := range ops {
		if err := p.upload(ctx, op); err != nil {
			return err
		}
	}
	p.wg.Wait()
	p.dropFreeBufs()
	if err := p.failed(); err != nil {
		return err
	}
	return r.saveIndex(ctx)
}

// dropFreeBufs lets the garbage collector have the data pack buffers not in use, so
// that what follows a Flush (the index, the snapshot) reuses their memory instead
// of adding to it.
func (p *packers) dropFreeBufs() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		select {
		case <-p.free:
			p.bufs--
		default:
			return
		}
	}
}

// Abort drops the open packs, waits for uploads under way, and writes an index for
// the packs that were stored, so that a failed backup's stored data is reused by the
// next one instead of lying unreferenced. It returns the first error.
func (r *Repository) Abort(ctx context.Context) error {
	p := r.packer
	p.mu.Lock()
	for t, op := range p.open {
		for _, b := range op.blobs {
			delete(p.pending, blobKey{b.Type, b.ID})
		}
		delete(p.open, t)
		p.putBuf(op)
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.dropFreeBufs()
	return r.saveIndex(ctx)
}

// LoadBlob returns the plaintext of a blob, verified against its id.
func (r *Repository) LoadBlob(ctx context.Context, t BlobType, id ID) ([]byte, error) {
	l, ok := r.index.lookup(t, id)
	if !ok {
		return nil, fmt.Errorf("%v blob %s: not in index", t, id.Short())
	}
	if data, ok, err := r.loadCachedBlob(ctx, t, id, l); ok {
		return data, err
	}
	sealed, err := r.st.Load(ctx, storage.Handle{Type: storage.PackFile, Name: l.Pack.String()}, int64(l.Offset), int64(l.Length))
	if err != nil {
		return nil, fmt.Errorf("%v blob %s: %w", t, id.Short(), err)
	}
	return r.openBlob(t, id, sealed, int(l.RawLength))
}

// openBlob decrypts, decompresses and verifies one sealed blob.
func (r *Repository) openBlob(t BlobType, id ID, sealed []byte, rawLength int) ([]byte, error) {
	_, data, err := r.openPayload(t, id, sealed, rawLength)
	return data, err
}

// openPayload decrypts a blob's sealed bytes and verifies them against its id,
// returning its payload (as stored: encoding byte and bytes) and its plaintext.
// sealed is not changed.
func (r *Repository) openPayload(t BlobType, id ID, sealed []byte, rawLength int) (payload, data []byte, err error) {
	payload, err = r.key.Open(nil, sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("%v blob %s: %w", t, id.Short(), err)
	}
	data, err = r.decompress(payload, rawLength)
	if err != nil {
		return nil, nil, fmt.Errorf("%v blob %s: %w", t, id.Short(), err)
	}
	if len(data) != rawLength || ID(r.key.ContentID(data)) != id {
		return nil, nil, fmt.Errorf("%v blob %s: content does not match its id (damaged)", t, id.Short())
	}
	return payload, data, nil
}

// LoadPackBlobs reads a whole pack once and calls fn with each listed blob's verified
// plaintext, or with the error that blob has.
func (r *Repository) LoadPackBlobs(ctx context.Context, pack ID, blobs []PackBlob, fn func(PackBlob, []byte, error) error) error {
	data, err := r.st.Load(ctx, storage.Handle{Type: storage.PackFile, Name: pack.String()}, 0, 0)
	if err != nil {
		return err
	}
	for _, b := range blobs {
		end := int(b.Offset) + int(b.Length)
		if end > len(data) {
			if err := fn(b, nil, fmt.Errorf("%v blob %s: beyond the end of pack %s", b.Type, b.ID.Short(), pack.Short())); err != nil {
				return err
			}
			continue
		}
		plain, err := r.openBlob(b.Type, b.ID, append([]byte(nil), data[b.Offset:end]...), int(b.RawLength))
		if err := fn(b, plain, err); err != nil {
			return err
		}
	}
	return nil
}

// readGap is how far apart two wanted blobs of a pack may lie and still be read
// with one load: reading a gap this long costs less than another request.
const readGap = 1 << 20

// ReadBlobs reads the listed blobs of one pack and calls fn, in the order of their
// offsets, with each one's verified plaintext or the error it has. Blobs lying close
// together are read with one load, so that a pack costs one request however many of
// its blobs are wanted. The plaintext is valid only during the call to fn, which
// must not keep it; an error from fn stops ReadBlobs and is returned.
func (r *Repository) ReadBlobs(ctx context.Context, pack ID, blobs []PackBlob, fn func(PackBlob, []byte, error) error) error {
	sorted := slices.Clone(blobs)
	slices.SortFunc(sorted, func(a, b PackBlob) int { return cmp.Compare(a.Offset, b.Offset) })
	h := storage.Handle{Type: storage.PackFile, Name: pack.String()}
	bufs := openBufPool.Get().(*openBufs)
	defer openBufPool.Put(bufs)
	for i := 0; i < len(sorted); {
		start, end := int64(sorted[i].Offset), int64(sorted[i].Offset)+int64(sorted[i].Length)
		j := i + 1
		for ; j < len(sorted) && int64(sorted[j].Offset) <= end+readGap; j++ {
			end = max(end, int64(sorted[j].Offset)+int64(sorted[j].Length))
		}
		data, err := r.st.Load(ctx, h, start, end-start)
		for _, b := range sorted[i:j] {
			var plain []byte
			var berr error
			if err != nil {
				berr = fmt.Errorf("%v blob %s: %w", b.Type, b.ID.Short(), err)
			} else {
				off := int64(b.Offset) - start
				plain, berr = r.openBlobInto(bufs, b.Type, b.ID, data[off:off+int64(b.Length)], int(b.RawLength))
			}
			if err := fn(b, plain, berr); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// openBufs are the buffers ReadBlobs opens blobs into, reused from blob to blob.
type openBufs struct {
	payload, plain []byte
}

var openBufPool = sync.Pool{New: func() any { return new(openBufs) }}

// openBlobInto is openBlob with the payload and plaintext in bufs: the plaintext
// it returns is valid until bufs is used again.
func (r *Repository) openBlobInto(bufs *openBufs, t BlobType, id ID, sealed []byte, rawLength int) ([]byte, error) {
	payload, err := r.key.Open(bufs.payload[:0], sealed)
	if err != nil {
		return nil, fmt.Errorf("%v blob %s: %w", t, id.Short(), err)
	}
	bufs.payload = payload
	var data []byte
	switch {
	case len(payload) == 0:
		err = errors.New("empty blob payload")
	case payload[0] == format.BlobRaw:
		data = payload[1:]
	case payload[0] == format.BlobZstd:
		data, err = r.dec.DecodeAll(payload[1:], bufs.plain[:0])
		if err == nil {
			bufs.plain = data
		}
	default:
		err = fmt.Errorf("unknown blob encoding %d", payload[0])
	}
	if err != nil {
		return nil, fmt.Errorf("%v blob %s: %w", t, id.Short(), err)
	}
	if len(data) != rawLength || ID(r.key.ContentID(data)) != id {
		return nil, fmt.Errorf("%v blob %s: content does not match its id (damaged)", t, id.Short())
	}
	return data, nil
}
