package repo

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"cairn/internal/crypto"
	"cairn/internal/format"
	"cairn/internal/storage"
)

// ErrWrongPassword is returned by Open when no key of the repository opens with the password.
var ErrWrongPassword = errors.New("wrong password: no key of this repository opens with it")

// ErrNoRepository is returned by Open when the storage holds no repository.
var ErrNoRepository = errors.New("no repository here (create one with 'cairn init')")

// Options are the settings of a new repository.
type Options struct {
	// KDF sets the password hashing; the zero value tunes it to about half a second.
	KDF crypto.KDFParams
	// PackSize is the size at which packs are finished; 0 means 8 MiB.
	PackSize uint32
}

// Repository is an open repository. Its methods are safe for concurrent use.
type Repository struct {
	st     storage.Storage
	key    *crypto.Key
	cfg    *format.Config
	keyID  string
	enc    *zstd.Encoder
	dec    *zstd.Decoder
	large  largeEncoder // compression.go
	index  *masterIndex
	packer *packers
	cache  *cache // nil: off (cache.go)
}

// Init creates a repository in st protected by password.
func Init(ctx context.Context, st storage.Storage, password string, opts Options) (*Repository, error) {
	if _, err := st.Stat(ctx, storage.Handle{Type: storage.ConfigFile}); err == nil {
		return nil, fmt.Errorf("a repository already exists at %s", st.Location())
	}
	if err := missingConfig(ctx, st); !errors.Is(err, ErrNoRepository) {
		return nil, fmt.Errorf("refusing to create a repository over the files of another: %w", err)
	}
	key, err := crypto.NewRandomKey()
	if err != nil {
		return nil, err
	}
	var rid [32]byte
	if _, err := rand.Read(rid[:]); err != nil {
		return nil, err
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	cfg := &format.Config{
		Version:  format.Version,
		ID:       hex.EncodeToString(rid[:]),
		ChunkMin: 512 << 10, ChunkAvg: 1 << 20, ChunkMax: 8 << 20,
		ChunkSeed: binary.LittleEndian.Uint64(seed[:]),
		PackSize:  opts.PackSize,
	}
	if cfg.PackSize == 0 {
		cfg.PackSize = 8 << 20
	}
	r := newRepository(st, key, cfg)
	keyName, err := r.AddKey(ctx, password, opts.KDF)
	if err != nil {
		return nil, err
	}
	r.keyID = keyName
	b, err := format.EncodeConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := st.Save(ctx, storage.Handle{Type: storage.ConfigFile}, key.Seal(nil, b)); err != nil {
		return nil, fmt.Errorf("save config: %w", err)
	}
	return r, nil
}

func newRepository(st storage.Storage, key *crypto.Key, cfg *format.Config) *Repository {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderCRC(false), zstd.WithWindowSize(2<<20), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(err) // only on invalid options
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(format.MaxBlobSize*2))
	if err != nil {
		panic(err)
	}
	r := &Repository{st: st, key: key, cfg: cfg, enc: enc, dec: dec, index: newMasterIndex()}
	r.packer = newPackers(r)
	return r
}

// AddKey stores a new key file that opens the repository with password and returns
// its name. A zero kdf is tuned to about half a second.
func (r *Repository) AddKey(ctx context.Context, password string, kdf crypto.KDFParams) (string, error) {
	if kdf == (crypto.KDFParams{}) {
		kdf = crypto.TuneKDF(500 * time.Millisecond)
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	wrap, err := crypto.DeriveKey(password, salt, kdf)
	if err != nil {
		return "", err
	}
	mk, err := format.EncodeMasterKey(&format.MasterKey{Encrypt: r.key.Encrypt[:], MAC: r.key.MAC[:]})
	if err != nil {
		return "", err
	}
	host, _ := os.Hostname()
	kf := &format.KeyFile{
		Version: format.Version, Created: time.Now().UTC(), Host: host, User: currentUser(),
		KDF: "argon2id", Time: kdf.Time, MemoryKiB: kdf.MemoryKiB, Threads: kdf.Threads,
		Salt: salt, Data: wrap.Seal(nil, mk),
	}
	b, err := format.EncodeKeyFile(kf)
	if err != nil {
		return "", err
	}
	h := storage.Handle{Type: storage.KeyFile, Name: keyFileName(b)}
	if err := r.st.Save(ctx, h, b); err != nil {
		return "", fmt.Errorf("save key: %w", err)
	}
	return h.Name, nil
}

func currentUser() string {
	u, err := user.Current()
	if err != nil {
		return ""
	}
	return u.Username
}

// Open opens the repository in st with password and loads its index.
func Open(ctx context.Context, st storage.Storage, password string) (*Repository, error) {
	return OpenWith(ctx, st, password, OpenOptions{})
}

// OpenWith is Open with options, such as a local cache (OpenOptions).
func OpenWith(ctx context.Context, st storage.Storage, password string, opts OpenOptions) (*Repository, error) {
	if _, err := st.Stat(ctx, storage.Handle{Type: storage.ConfigFile}); err != nil {
		if storage.IsNotExist(err) {
			return nil, missingConfig(ctx, st)
		}
		return nil, err
	}
	key, keyName, err := openWithKeys(ctx, st, password)
	if err != nil {
		return nil, err
	}
	sealed, err := st.Load(ctx, storage.Handle{Type: storage.ConfigFile}, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	plain, err := key.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("the repository cannot be opened: its config file is damaged (%v)", err)
	}
	cfg, err := format.DecodeConfig(plain)
	if err != nil {
		return nil, fmt.Errorf("the repository cannot be opened: its config file is damaged (%v)", err)
	}
	r := newRepository(st, key, cfg)
	r.keyID = keyName
	r.useCache(opts)
	if err := r.LoadIndex(ctx); err != nil {
		return nil, err
	}
	r.dropUnindexedPacks()
	return r, nil
}

func openKey(ctx context.Context, st storage.Storage, name, password string) (*crypto.Key, error) {
	b, err := st.Load(ctx, storage.Handle{Type: storage.KeyFile, Name: name}, 0, 0)
	if err != nil {
		return nil, err
	}
	kf, err := format.DecodeKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name[:8], err)
	}
	wrap, err := crypto.DeriveKey(password, kf.Salt, crypto.KDFParams{Time: kf.Time, MemoryKiB: kf.MemoryKiB, Threads: kf.Threads})
	// The key derivation's memory (64 MiB by default) is garbage now: give it back
	// at once. Left to the collector, it would stay while the heap grows by as much
	// again, and that would be the peak memory of every command that does little
	// else.
	debug.FreeOSMemory()
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name[:8], err)
	}
	plain, err := wrap.Open(nil, kf.Data)
	if err != nil {
		return nil, err
	}
	mk, err := format.DecodeMasterKey(plain)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name[:8], err)
	}
	return crypto.NewKey(mk.Encrypt, mk.MAC)
}

// Storage returns the storage the repository lives in.
func (r *Repository) Storage() storage.Storage { return r.st }

// ID returns the repository's id.
func (r *Repository) ID() string { return r.cfg.ID }

// ChunkSizes returns the content-defined chunker sizes for files.
func (r *Repository) ChunkSizes() (min, avg, max int) {
	return int(r.cfg.ChunkMin), int(r.cfg.ChunkAvg), int(r.cfg.ChunkMax)
}

// ChunkSeed returns the secret seed of the content-defined chunker's gear table.
func (r *Repository) ChunkSeed() uint64 { return r.cfg.ChunkSeed }

// Close waits for nothing and frees the codecs; call Flush first to keep unsaved blobs.
func (r *Repository) Close() error {
	r.dec.Close()
	return r.enc.Close()
}

// saveFile seals plaintext, names it by the keyed hash of the sealed bytes, and stores it.
func (r *Repository) saveFile(ctx context.Context, t storage.FileType, plaintext []byte) (ID, error) {
	sealed := r.key.Seal(nil, plaintext)
	id := ID(r.key.ContentID(sealed))
	if err := r.st.Save(ctx, storage.Handle{Type: t, Name: id.String()}, sealed); err != nil {
		return ID{}, err
	}
	return id, nil
}

// loadFile loads and opens a sealed file, checking that its name matches its content.
func (r *Repository) loadFile(ctx context.Context, t storage.FileType, id ID) ([]byte, error) {
	h := storage.Handle{Type: t, Name: id.String()}
	sealed, err := r.st.Load(ctx, h, 0, 0)
	if err != nil {
		return nil, err
	}
	if ID(r.key.ContentID(sealed)) != id {
		return nil, fmt.Errorf("%v: content does not match its name (damaged)", h)
	}
	plain, err := r.key.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", h, err)
	}
	return plain, nil
}

// compress returns the blob payload of data: a leading encoding byte, then data
// compressed with zstd, or data itself when that is not smaller.
func (r *Repository) compress(enc *zstd.Encoder, dst, data []byte) []byte {
	dst = append(dst[:0], format.BlobZstd)
	dst = enc.EncodeAll(data, dst)
	if len(dst) >= len(data)+1 {
		dst = append(dst[:0], format.BlobRaw)
		dst = append(dst, data...)
	}
	return dst
}

// decompress returns the data of a blob payload.
func (r *Repository) decompress(payload []byte, rawLength int) ([]byte, error) {
	if len(payload) == 0 {
		return nil, errors.New("empty blob payload")
	}
	switch payload[0] {
	case format.BlobRaw:
		return payload[1:], nil
	case format.BlobZstd:
		return r.dec.DecodeAll(payload[1:], make([]byte, 0, rawLength))
	}
	return nil, fmt.Errorf("unknown blob encoding %d", payload[0])
}

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// KeyInfo describes one key file.
type KeyInfo struct {
	Name    string
	Created time.Time
	Host    string
	User    string
	Current bool // the key this repository was opened with
}

// Keys lists the repository's key files, oldest first.
func (r *Repository) Keys(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := r.st.List(ctx, storage.KeyFile, func(fi storage.FileInfo) error {
		b, err := r.st.Load(ctx, storage.Handle{Type: storage.KeyFile, Name: fi.Name}, 0, 0)
		if err != nil {
			return err
		}
		kf, err := format.DecodeKeyFile(b)
		if err != nil {
			out = append(out, KeyInfo{Name: fi.Name})
			return nil
		}
		out = append(out, KeyInfo{Name: fi.Name, Created: kf.Created, Host: kf.Host, User: kf.User, Current: fi.Name == r.keyID})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// CurrentKey returns the name of the key the repository was opened with.
func (r *Repository) CurrentKey() string { return r.keyID }

// RemoveKey deletes a key file; the key in use cannot be removed, so a repository
// always keeps at least one key.
func (r *Repository) RemoveKey(ctx context.Context, name string) error {
	if name == r.keyID {
		return errors.New("refusing to remove the key in use; open the repository with another password first")
	}
	return r.st.Remove(ctx, storage.Handle{Type: storage.KeyFile, Name: name})
}

// ChangePassword adds a key for password and removes the key in use.
func (r *Repository) ChangePassword(ctx context.Context, password string, kdf crypto.KDFParams) (string, error) {
	name, err := r.AddKey(ctx, password, kdf)
	if err != nil {
		return "", err
	}
	old := r.keyID
	r.keyID = name
	if err := r.st.Remove(ctx, storage.Handle{Type: storage.KeyFile, Name: old}); err != nil {
		return name, fmt.Errorf("the new key %s was added but the old one could not be removed: %w", name[:8], err)
	}
	return name, nil
}
