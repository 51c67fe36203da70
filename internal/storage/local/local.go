// Package local is a Storage in a folder of the local filesystem.
//
// Layout of a repository at PATH:
//
//	PATH/config
//	PATH/keys/NAME
//	PATH/data/XX/NAME      XX is the first two characters of NAME (00..ff made up front)
//	PATH/index/NAME
//	PATH/snapshots/NAME
//	PATH/locks/NAME
//
// Save writes a temporary file ".tmp-*" in the target folder, fsyncs it, renames it
// into place without replacing an existing file, and fsyncs the folder, so a crash
// leaves either the whole file or none (and perhaps a temporary file, which List
// skips). Stored files are read-only (0400); folders are 0700.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"cairn/internal/storage"
)

const (
	tmpPrefix = ".tmp-"
	fileMode  = 0o400
	dirMode   = 0o700
	// writeChunk is how much Save writes between checks of its context.
	writeChunk = 4 << 20
)

// Storage is a repository folder. Create or Open one; all methods are safe for
// concurrent use, also by several processes.
type Storage struct {
	root string
}

var _ storage.Storage = (*Storage)(nil)

// Create makes the folders of a new repository at path (and path itself if need
// be). It fails with an error matching storage.ErrExists if a repository, that is a
// config file, is already there. The config itself is written later by Save.
func Create(path string) (*Storage, error) {
	s, err := newStorage(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(s.path(storage.Handle{Type: storage.ConfigFile})); err == nil {
		return nil, fmt.Errorf("a repository already exists at %s: %w", s.root, storage.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	var dirs []string
	for _, t := range storage.FileTypes[1:] {
		dirs = append(dirs, filepath.Join(s.root, string(t)))
	}
	for i := 0; i < 256; i++ {
		dirs = append(dirs, filepath.Join(s.root, string(storage.PackFile), fmt.Sprintf("%02x", i)))
	}
	if err := os.MkdirAll(s.root, dirMode); err != nil {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	}
	for _, d := range []string{filepath.Join(s.root, string(storage.PackFile)), s.root} {
		if err := syncDir(d); err != nil {
			return nil, fmt.Errorf("create repository: %w", err)
		}
	}
	return s, nil
}

// Open opens the repository at path. If path or its config file does not exist the
// error says "no repository at PATH" and matches fs.ErrNotExist.
func Open(path string) (*Storage, error) {
	s, err := newStorage(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.path(storage.Handle{Type: storage.ConfigFile})); errors.Is(err, fs.ErrNotExist) {
		return nil, noRepoError(s.root)
	} else if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	return s, nil
}

func newStorage(path string) (*Storage, error) {
	if path == "" {
		return nil, errors.New("no repository path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return &Storage{root: abs}, nil
}

type noRepoError string

func (e noRepoError) Error() string { return "no repository at " + string(e) }
func (e noRepoError) Unwrap() error { return fs.ErrNotExist }

// path returns the file name of h, which must be valid.
func (s *Storage) path(h storage.Handle) string {
	switch h.Type {
	case storage.ConfigFile:
		return filepath.Join(s.root, string(h.Type))
	case storage.PackFile:
		return filepath.Join(s.root, string(h.Type), h.Name[:min(2, len(h.Name))], h.Name)
	}
	return filepath.Join(s.root, string(h.Type), h.Name)
}

// Location implements storage.Storage: the repository's absolute path.
func (s *Storage) Location() string { return s.root }

// Save implements storage.Storage. When the disk is full the error says so and
// where, and matches syscall.ENOSPC.
func (s *Storage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	final := s.path(h)
	dir := filepath.Dir(final)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) && h.Type != storage.ConfigFile {
		// A folder made on demand: a data subfolder outside 00..ff, or one deleted.
		if err = os.Mkdir(dir, dirMode); err == nil || errors.Is(err, fs.ErrExist) {
			f, err = os.CreateTemp(dir, tmpPrefix+"*")
		}
	}
	if err != nil {
		return s.saveError(h, err)
	}
	tmp := f.Name()
	err = writeFile(ctx, f, data)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = renameNoReplace(tmp, final)
		if errors.Is(err, fs.ErrExist) {
			os.Remove(tmp)
			return fmt.Errorf("save %v: %w", h, storage.ErrExists)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return s.saveError(h, err)
	}
	if err := syncDir(dir); err != nil {
		return s.saveError(h, err)
	}
	return nil
}

// writeFile writes data to f, fsyncs, makes it read-only and closes it; f is
// closed whatever happens.
func writeFile(ctx context.Context, f *os.File, data []byte) error {
	for len(data) > 0 {
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
		n := min(len(data), writeChunk)
		if _, err := f.Write(data[:n]); err != nil {
			f.Close()
			return err
		}
		data = data[n:]
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(fileMode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (s *Storage) saveError(h storage.Handle, err error) error {
	if isDiskFull(err) {
		return fmt.Errorf("save %v: the disk is full at %s: %w", h, s.root, err)
	}
	return fmt.Errorf("save %v: %w", h, err)
}

// Load implements storage.Storage.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if err := h.Valid(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(h))
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	size := fi.Size()
	if offset < 0 || length < 0 || offset > size || length > size-offset {
		return nil, storage.Invalidf("load %v: offset %d length %d outside file of %d bytes", h, offset, length, size)
	}
	if length == 0 {
		length = size - offset
	}
	buf := make([]byte, length)
	n, err := f.ReadAt(buf, offset)
	if n == len(buf) {
		err = nil // ReadAt may report io.EOF along with the last byte
	} else if err == io.EOF {
		err = io.ErrUnexpectedEOF // the file is shorter than its Stat said
	}
	if err != nil {
		return nil, fmt.Errorf("load %v: %w", h, err)
	}
	return buf, nil
}

// Stat implements storage.Storage.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return storage.FileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.FileInfo{}, err
	}
	fi, err := os.Stat(s.path(h))
	if err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat %v: %w", h, err)
	}
	return storage.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// List implements storage.Storage. It skips temporary files and any name that is
// not a valid handle of type t.
func (s *Storage) List(ctx context.Context, t storage.FileType, fn func(storage.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	switch t {
	case storage.ConfigFile:
		fi, err := s.Stat(ctx, storage.Handle{Type: t})
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(fi)
	case storage.PackFile:
		return s.listDir(ctx, filepath.Join(s.root, string(t)), func(e fs.DirEntry) error {
			if !e.IsDir() {
				return nil
			}
			sub := e.Name()
			return s.listFiles(ctx, t, filepath.Join(s.root, string(t), sub), func(name string) bool {
				return name[:min(2, len(name))] == sub
			}, fn)
		})
	}
	return s.listFiles(ctx, t, filepath.Join(s.root, string(t)), nil, fn)
}

// listFiles calls fn for each regular file in dir whose name is a valid handle of
// type t and, if accept is not nil, is accepted by it.
func (s *Storage) listFiles(ctx context.Context, t storage.FileType, dir string, accept func(string) bool, fn func(storage.FileInfo) error) error {
	return s.listDir(ctx, dir, func(e fs.DirEntry) error {
		name := e.Name()
		if !e.Type().IsRegular() || (storage.Handle{Type: t, Name: name}).Valid() != nil || accept != nil && !accept(name) {
			return nil
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since the folder was read
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		return fn(storage.FileInfo{Name: name, Size: fi.Size()})
	})
}

// listDir calls visit for each entry of dir, reading it in batches; a missing dir
// has no entries.
func (s *Storage) listDir(ctx context.Context, dir string, visit func(fs.DirEntry) error) error {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	defer f.Close()
	for {
		entries, err := f.ReadDir(1024)
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := visit(e); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
	}
}

// Remove implements storage.Storage.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(s.path(h)); err != nil {
		return fmt.Errorf("remove %v: %w", h, err)
	}
	return nil
}

// Close implements storage.Storage; it has nothing to release.
func (s *Storage) Close() error { return nil }
