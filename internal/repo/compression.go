package repo

import (
	"context"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression selects how SaveBlobCompressed compresses a blob. Either way the
// blob is one zstd frame (or stored as is when that is not smaller), read the
// same.
type Compression int

const (
	// CompressDefault is what SaveBlob does: zstd's default speed with a 2 MiB
	// window.
	CompressDefault Compression = iota
	// CompressLarge is for blobs of several MiB, such as the spans of disk
	// images: zstd's better level with an 8 MiB window, and literals
	// entropy-coded even where nothing repeats (base64, text with few matches),
	// which the default leaves as they are. On the image benchmark's disk it
	// stores 2 % less than the default level with the same window, for about
	// twice the compression CPU on compressible data (83 against 180 MB/s a core
	// on /usr/lib) and 0.6 against 1 GB/s on random data.
	CompressLarge
)

// largeEncoder is the encoder of CompressLarge, made on first use.
type largeEncoder struct {
	once sync.Once
	enc  *zstd.Encoder
}

func (l *largeEncoder) get() *zstd.Encoder {
	l.once.Do(func() {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderCRC(false),
			zstd.WithWindowSize(8<<20), zstd.WithLowerEncoderMem(true), zstd.WithAllLitEntropyCompression(true))
		if err != nil {
			panic(err) // only on invalid options
		}
		l.enc = enc
	})
	return l.enc
}

// SaveBlobCompressed is SaveBlobWithID with the compression c.
func (r *Repository) SaveBlobCompressed(ctx context.Context, t BlobType, id ID, data []byte, c Compression) (int, error) {
	enc := r.enc
	if c == CompressLarge {
		enc = r.large.get()
	}
	return r.saveBlob(ctx, t, id, data, enc)
}
