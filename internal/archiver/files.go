package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"cairn/internal/chunker"
	"cairn/internal/localfs"
	"cairn/internal/repo"
)

type fileJob struct {
	path   string
	node   *repo.Node
	status FileStatus
	f      *future
}

type blobJob struct {
	buf chunkBuf
	res chan blobResult
}

type blobResult struct {
	id    repo.ID
	added int
	err   error
}

// largeFile is the size from which a file needs a large chunker buffer.
const largeFile = 1 << 20

// largeFiles is how many large files are read at once, each with a chunker buffer
// of a few average chunks: more than one, so that the savers are not left waiting
// while one file is opened or read from a cold disk.
const largeFiles = 2

// startWorkers starts the file readers, which chunk files, and the blob savers,
// which hash, compress, seal and pack the chunks on every core.
func (a *archiver) startWorkers(ctx context.Context) {
	var readers, savers sync.WaitGroup
	for range a.opts.Workers {
		readers.Add(1)
		go func() {
			defer readers.Done()
			cdc, err := chunker.NewCDC(nil, a.sizes, a.r.ChunkSeed())
			for job := range a.files {
				if err != nil {
					job.f.err = err
					close(job.f.done)
					continue
				}
				a.readFile(ctx, job, cdc)
				cdc.Release()
			}
		}()
	}
	for range runtime.GOMAXPROCS(0) {
		savers.Add(1)
		go func() {
			defer savers.Done()
			for job := range a.blobs {
				id, added, err := a.saveChunk(ctx, job.buf.data)
				a.chunks.put(job.buf)
				job.res <- blobResult{id: id, added: added, err: err}
			}
		}()
	}
	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		readers.Wait()
		close(a.blobs)
		savers.Wait()
	}()
}

func (a *archiver) saveChunk(ctx context.Context, data []byte) (repo.ID, int, error) {
	if !localfs.IsZero(data) {
		return a.r.SaveBlob(ctx, repo.DataBlob, data)
	}
	a.zeroMu.Lock()
	id, ok := a.zeroIDs[len(data)]
	if !ok {
		id = a.r.BlobID(data)
		a.zeroIDs[len(data)] = id
	}
	a.zeroMu.Unlock()
	n, err := a.r.SaveBlobWithID(ctx, repo.DataBlob, id, data)
	return id, n, err
}

// unchanged reports whether a file may take its content from its node in the parent
// snapshot without being read: same type, size, times and inode, and all content
// still in the repository.
func (a *archiver) unchanged(n, prev *repo.Node) bool {
	if prev == nil || prev.Type != repo.NodeFile || prev.Size != n.Size || prev.MTime != n.MTime ||
		prev.CTime != n.CTime || prev.Inode != n.Inode || prev.Error != "" {
		return false
	}
	if n.Size > 0 && len(prev.Content) == 0 {
		return false
	}
	for _, id := range prev.Content {
		if !a.r.HasBlob(repo.DataBlob, id) {
			return false
		}
	}
	return true
}

// saveFile returns a future of the file's node with its content saved.
func (a *archiver) saveFile(ctx context.Context, path string, n *repo.Node, prev *repo.Node) *future {
	if a.unchanged(n, prev) {
		n.Content = prev.Content
		a.mu.Lock()
		a.stats.FilesUnmodified++
		a.stats.TotalFiles++
		a.stats.TotalBytes += n.Size
		a.mu.Unlock()
		a.progress.BytesRead(int64(n.Size))
		a.progress.FileDone(path, int64(n.Size), FileUnchanged)
		return doneFuture(n)
	}
	status := FileNew
	if prev != nil {
		status = FileChanged
	}
	job := fileJob{path: path, node: n, status: status, f: &future{done: make(chan struct{}), node: n}}
	select {
	case a.files <- job:
	case <-ctx.Done():
		return failedFuture(ctx.Err())
	}
	return job.f
}

// readFile reads and chunks one file, hands the chunks to the savers, and completes
// the job's future with the content ids in order.
func (a *archiver) readFile(ctx context.Context, job fileJob, c *chunker.CDC) {
	handedOff := false
	defer func() {
		if !handedOff {
			close(job.f.done)
		}
	}()
	f, err := openFile(job.path)
	if err != nil {
		job.f.skip = true
		a.addError(job.path, err)
		return
	}
	defer f.Close()
	var regions []region
	if sparse(f) {
		regions = sparseRegions(f, int64(job.node.Size), int64(2*a.sizes.Max))
	} else {
		regions = []region{{off: 0, length: -1}}
	}
	// done gives back the chunker's buffer, and the turn of a large file, once the
	// last chunk is handed to the savers: the next file is read meanwhile.
	done := c.Release
	if job.node.Size >= largeFile {
		// Large files chunk with large buffers, a few at a time: one chunker
		// (about 1 GB/s) could keep every saver busy, were it never waiting for
		// the disk.
		select {
		case a.large <- struct{}{}:
			done = func() {
				c.Release()
				<-a.large
			}
		case <-ctx.Done():
			job.f.err = ctx.Err()
			return
		}
	}
	defer func() {
		if done != nil {
			done()
		}
	}()
	var results []chan blobResult
	var size uint64
	var readErr error
	for _, reg := range regions {
		if reg.hole {
			// A long hole becomes zero chunks without being read or chunked.
			for left := reg.length; left > 0; {
				n := int(min(left, int64(a.sizes.Max)))
				res := make(chan blobResult, 1)
				id, added, err := a.saveChunk(ctx, zeroBuf(n))
				res <- blobResult{id: id, added: added, err: err}
				results = append(results, res)
				left -= int64(n)
				size += uint64(n)
				a.progress.BytesRead(int64(n))
			}
			continue
		}
		var r io.Reader = f
		if reg.length < 0 {
			reg.length = int64(job.node.Size)
		} else {
			r = &holeReader{f: f, pos: reg.off, size: reg.off + reg.length}
		}
		c.Reset(r, reg.length)
		for {
			ch, err := c.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				readErr = err
				break
			}
			buf, err := a.chunks.get(ctx, len(ch.Data))
			if err != nil {
				job.f.err = err
				return
			}
			n := copy(buf.data, ch.Data)
			res := make(chan blobResult, 1)
			select {
			case a.blobs <- blobJob{buf: buf, res: res}:
			case <-ctx.Done():
				a.chunks.put(buf)
				job.f.err = ctx.Err()
				return
			}
			results = append(results, res)
			size += uint64(n)
			a.progress.BytesRead(int64(n))
		}
		if readErr != nil {
			break
		}
	}
	done()
	done = nil
	// Whether the file changed while it was read is known now. Its ids come as the
	// savers get through its chunks; the reader does not wait for them but goes on
	// with the next file, so that reading never waits for saving.
	changed := false
	if after, err := f.Stat(); err == nil && (uint64(after.Size()) != job.node.Size || after.ModTime().UnixNano() != job.node.MTime || size != job.node.Size) {
		changed = true
	}
	select {
	case a.finishing <- struct{}{}:
	case <-ctx.Done():
		job.f.err = ctx.Err()
		return
	}
	handedOff = true
	go func() {
		defer func() { <-a.finishing }()
		defer close(job.f.done)
		a.finishFile(job, results, size, readErr, changed)
	}()
}

// finishFile completes a file's future once the savers have given the ids of all
// its chunks.
func (a *archiver) finishFile(job fileJob, results []chan blobResult, size uint64, readErr error, changed bool) {
	content := make([]repo.ID, 0, len(results))
	var added uint64
	for _, res := range results {
		r := <-res
		if r.err != nil && job.f.err == nil {
			job.f.err = fmt.Errorf("%s: %w", job.path, r.err)
		}
		content = append(content, r.id)
		added += uint64(r.added)
	}
	if job.f.err != nil {
		return
	}
	if readErr != nil {
		job.f.skip = true
		a.addError(job.path, readErr)
		return
	}
	n := job.node
	n.Content = content
	if changed {
		n.Error = "file changed while it was read"
		a.progress.Warning(job.path, n.Error)
	}
	n.Size = size
	a.mu.Lock()
	switch job.status {
	case FileNew:
		a.stats.FilesNew++
	case FileChanged:
		a.stats.FilesChanged++
	}
	a.stats.TotalFiles++
	a.stats.TotalBytes += size
	a.stats.DataAdded += added
	a.mu.Unlock()
	a.progress.FileDone(job.path, int64(size), job.status)
}

// holeReader reads a sparse file, producing the zeros of holes without reading them.
type holeReader struct {
	f       *os.File
	pos     int64
	size    int64
	dataEnd int64 // end of the data region pos is in; pos >= dataEnd means unknown
}

func (h *holeReader) Read(p []byte) (int, error) {
	if h.pos >= h.size {
		return 0, io.EOF
	}
	if int64(len(p)) > h.size-h.pos {
		p = p[:h.size-h.pos]
	}
	if h.pos >= h.dataEnd {
		data, err := localfs.SeekData(h.f, h.pos)
		if errors.Is(err, io.EOF) {
			data = h.size
		} else if err != nil {
			return 0, err
		}
		if data > h.pos { // in a hole
			n := int(min(int64(len(p)), data-h.pos))
			clear(p[:n])
			h.pos += int64(n)
			return n, nil
		}
		hole, err := localfs.SeekHole(h.f, h.pos)
		if err != nil {
			return 0, err
		}
		h.dataEnd = hole
	}
	n := int(min(int64(len(p)), h.dataEnd-h.pos))
	n, err := h.f.ReadAt(p[:n], h.pos)
	h.pos += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

// region is a part of a file: data (read and chunked) or a long hole.
type region struct {
	off, length int64 // length -1: the whole file as one data region
	hole        bool
}

// sparseRegions splits a sparse file into data regions and holes of at least
// minHole bytes; shorter holes stay inside the data regions around them.
func sparseRegions(f *os.File, size, minHole int64) []region {
	var out []region
	addData := func(off, end int64) {
		if end <= off {
			return
		}
		if n := len(out); n > 0 && !out[n-1].hole {
			out[n-1].length = end - out[n-1].off
			return
		}
		out = append(out, region{off: off, length: end - off})
	}
	pos := int64(0)
	for pos < size {
		data, err := localfs.SeekData(f, pos)
		if errors.Is(err, io.EOF) {
			data = size
		} else if err != nil {
			return []region{{off: 0, length: -1}}
		}
		if data-pos >= minHole {
			out = append(out, region{off: pos, length: data - pos, hole: true})
		} else {
			addData(pos, data)
		}
		if data >= size {
			break
		}
		hole, err := localfs.SeekHole(f, data)
		if err != nil {
			return []region{{off: 0, length: -1}}
		}
		addData(data, hole)
		pos = hole
	}
	return out
}

var (
	zeroMu  sync.Mutex
	zeroMem []byte
)

// zeroBuf returns n zero bytes that callers must not change.
func zeroBuf(n int) []byte {
	zeroMu.Lock()
	defer zeroMu.Unlock()
	if len(zeroMem) < n {
		zeroMem = make([]byte, n)
	}
	return zeroMem[:n]
}
