// Package storage defines where repository files live. A Storage holds named files
// grouped by type; it never interprets their content. Providers: local (a folder),
// mem (tests), and the network ones; wrappers for retries and limits are stacked by
// Wrap in one place.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// FileType is the kind of a repository file; each is kept in its own folder.
type FileType string

// The file types of a repository.
const (
	ConfigFile   FileType = "config"
	KeyFile      FileType = "keys"
	PackFile     FileType = "data"
	IndexFile    FileType = "index"
	SnapshotFile FileType = "snapshots"
	LockFile     FileType = "locks"
)

// FileTypes lists every file type, config first.
var FileTypes = []FileType{ConfigFile, KeyFile, PackFile, IndexFile, SnapshotFile, LockFile}

// Valid reports whether t is one of FileTypes; the error matches ErrInvalid.
func (t FileType) Valid() error {
	for _, ft := range FileTypes {
		if t == ft {
			return nil
		}
	}
	return Invalidf("unknown file type %q", t)
}

// Handle names one file. The config file has an empty Name.
type Handle struct {
	Type FileType
	Name string
}

func (h Handle) String() string {
	if h.Type == ConfigFile {
		return string(h.Type)
	}
	return string(h.Type) + "/" + h.Name
}

// Valid reports whether h names a file: a known type and, except for the config, a
// name of 1 to 128 letters, digits, '-' and '_'. The error matches ErrInvalid.
func (h Handle) Valid() error {
	switch h.Type {
	case ConfigFile:
		if h.Name != "" {
			return Invalidf("config handle with name %q", h.Name)
		}
		return nil
	case KeyFile, PackFile, IndexFile, SnapshotFile, LockFile:
	default:
		return Invalidf("unknown file type %q", h.Type)
	}
	if h.Name == "" || len(h.Name) > 128 {
		return Invalidf("invalid file name %q", h.Name)
	}
	for _, c := range h.Name {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return Invalidf("invalid file name %q", h.Name)
		}
	}
	return nil
}

// FileInfo describes a stored file.
type FileInfo struct {
	Name string
	Size int64
}

// ErrNotExist is returned (wrapped) when a file does not exist. It is fs.ErrNotExist
// itself, so test with errors.Is(err, fs.ErrNotExist) or IsNotExist.
var ErrNotExist = fs.ErrNotExist

// ErrExists is returned (wrapped) by Save when a file of that name is already stored.
var ErrExists = errors.New("file already exists")

// ErrInvalid is matched (errors.Is) by errors for requests that can never succeed,
// such as an invalid handle or a Load range outside the file. Retrying them is futile.
var ErrInvalid = errors.New("invalid request")

// Invalidf returns an error with the formatted message that matches ErrInvalid.
func Invalidf(format string, args ...any) error {
	return invalidError(fmt.Sprintf(format, args...))
}

type invalidError string

func (e invalidError) Error() string        { return string(e) }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

// Storage stores repository files. Every method is safe for concurrent use.
// A file is written once and never changed: Save of an existing name fails with
// ErrExists, and a file is either wholly visible or not at all (no reader ever sees
// part of a Save). A file is visible to Load, Stat and List as soon as Save returns.
//
// Every method given an invalid handle (Handle.Valid) or file type returns an error
// matching ErrInvalid and touches nothing. The package storagetest checks all of
// this; every provider runs it.
type Storage interface {
	// Location names the storage for people, such as a path or URL.
	Location() string
	// Save stores data as file h. If h exists the error matches ErrExists and the
	// stored file is unchanged; on any error nothing of h is visible afterwards.
	// If ctx is done when Save is called, or is cancelled before Save completes, Save
	// fails with ctx's error and stores nothing. Save does not keep data after it
	// returns: the caller reuses it.
	Save(ctx context.Context, h Handle, data []byte) error
	// Load returns length bytes of h from offset; length 0 means to the end. A range
	// that does not lie wholly inside the file (negative, or past the end) is an error
	// matching ErrInvalid; offset equal to the size with length 0 returns no bytes.
	// A missing file is an error matching ErrNotExist.
	Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error)
	// Stat returns h's size, or an error matching ErrNotExist.
	Stat(ctx context.Context, h Handle) (FileInfo, error)
	// List calls fn for each file of type t, in no particular order; for ConfigFile
	// that is the config, with an empty Name, if it exists. When an error occurs, or
	// fn returns one, List stops and returns it. fn may call other methods of the
	// Storage.
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error
	// Remove deletes h; removing a file that does not exist is an error matching ErrNotExist.
	Remove(ctx context.Context, h Handle) error
	// Close releases connections and other resources.
	Close() error
}

// IsNotExist reports whether err says that a file does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// Connections returns how many saves of pack files should run at once on s: what s
// says through a Connections() int method, or 2.
func Connections(s Storage) int {
	if c, ok := s.(interface{ Connections() int }); ok && c.Connections() > 0 {
		return c.Connections()
	}
	return 2
}
