package restorer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"cairn/internal/localfs"
	"cairn/internal/vfs"
)

// verifyFile re-reads a restored file and compares it with the snapshot's content.
func verifyFile(ctx context.Context, p string, e *vfs.Entry) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	src, err := e.Open(ctx)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != src.Size() {
		return fmt.Errorf("size %d, snapshot has %d", fi.Size(), src.Size())
	}
	var buf []byte
	return src.Chunks(ctx, 4, func(off int64, data []byte) error {
		if cap(buf) < len(data) {
			buf = make([]byte, len(data))
		}
		if localfs.IsZero(data) {
			// A hole in the restored file reads as zeros: no need to read it.
			if next, err := localfs.SeekData(f, off); errors.Is(err, io.EOF) || (err == nil && next >= off+int64(len(data))) {
				return nil
			}
		}
		got := buf[:len(data)]
		if _, err := f.ReadAt(got, off); err != nil && err != io.EOF {
			return err
		}
		if !bytes.Equal(got, data) {
			return fmt.Errorf("content differs from the snapshot in bytes %d to %d", off, off+int64(len(data)))
		}
		return nil
	})
}
