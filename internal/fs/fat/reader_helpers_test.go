package fat

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"testing"

	cfs "cairn/internal/fs"
)

// errBroken is wrapped by the errors of walk and readAll that say a reader
// broke a promise of fs.Reader.
var errBroken = errors.New("broken promise")

// walkFunc is called by walk for every entry under the root with its path
// ("." for the root).
type walkFunc func(p string, e *cfs.Entry) error

// walk visits every entry of rd, folders before their entries, checking what
// ReadDir promises: names valid, sorted and unique. It stops at the first
// error.
func walk(rd cfs.Reader, fn walkFunc) error {
	root, err := rd.Root()
	if err != nil {
		return err
	}
	var visit func(p string, e *cfs.Entry) error
	visit = func(p string, e *cfs.Entry) error {
		if err := fn(p, e); err != nil {
			return err
		}
		if e.Type != cfs.TypeDir {
			return nil
		}
		list, err := rd.ReadDir(e)
		if err != nil {
			return err
		}
		for i, c := range list {
			if err := checkName(c.Name); err != nil {
				return err
			}
			if i > 0 && list[i-1].Name >= c.Name {
				return fmt.Errorf("%w: %s: %q after %q: not sorted or not unique", errBroken, p, c.Name, list[i-1].Name)
			}
			if err := visit(path.Join(p, c.Name), c); err != nil {
				return err
			}
		}
		return nil
	}
	return visit(".", root)
}

// checkName checks what fs.Entry promises of a name.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: bad name %q", errBroken, name)
	}
	return nil
}

// readAll reads a file's content through rd in pieces of odd sizes, checking
// that it is e.Size bytes long.
func readAll(rd cfs.Reader, e *cfs.Entry) ([]byte, error) {
	f, err := rd.Open(e)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, e.Size))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != e.Size {
		return nil, fmt.Errorf("%w: %s: %d bytes read of %d", errBroken, e.Name, len(b), e.Size)
	}
	var one [1]byte
	if n, err := f.ReadAt(one[:], e.Size); n != 0 || err != io.EOF {
		return nil, fmt.Errorf("%w: %s: read at the end: %d, %v", errBroken, e.Name, n, err)
	}
	return b, nil
}

// readerTree returns the tree rd reads as hashTree gives a folder's.
func readerTree(t *testing.T, rd cfs.Reader) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := walk(rd, func(p string, e *cfs.Entry) error {
		switch e.Type {
		case cfs.TypeDir:
			m[p] = "dir"
		case cfs.TypeFile:
			b, err := readAll(rd, e)
			if err != nil {
				return err
			}
			m[p] = "file " + sum(b)
		default:
			m[p] = e.Type
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
