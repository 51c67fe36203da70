package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"cairn/internal/crypto"
	"cairn/internal/format"
	"cairn/internal/storage"
)

// keyFileName is the name a key file is stored under: the hex SHA-256 of its bytes.
// A key file cannot be checked with the repository's keyed hash (it is what opens
// the key), so a plain hash in its name is what tells a damaged key file from a
// wrong password.
func keyFileName(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// errKeyNameMismatch says that a key file's bytes do not hash to its name.
var errKeyNameMismatch = errors.New("content does not match its name (damaged)")

// checkKeyBytes returns an error if a key file's bytes are not what was stored under
// name, or do not decode.
func checkKeyBytes(name string, b []byte) (*format.KeyFile, error) {
	if keyFileName(b) != strings.ToLower(name) {
		return nil, errKeyNameMismatch
	}
	return format.DecodeKeyFile(b)
}

// CheckKeyFile reads one key file and verifies that its bytes match its name and
// decode; it cannot tell whether the key opens with a password no one has given.
func (r *Repository) CheckKeyFile(ctx context.Context, name string) error {
	b, err := r.st.Load(ctx, storage.Handle{Type: storage.KeyFile, Name: name}, 0, 0)
	if err != nil {
		return err
	}
	_, err = checkKeyBytes(name, b)
	return err
}

// openWithKeys tries every key file of st with password and returns the master key
// and the key file's name. When none opens it says why: a wrong password when every
// key file is intact, or which key files are damaged, or that there are none.
func openWithKeys(ctx context.Context, st storage.Storage, password string) (*crypto.Key, string, error) {
	var names []string
	err := st.List(ctx, storage.KeyFile, func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list keys: %w", err)
	}
	if len(names) == 0 {
		return nil, "", fmt.Errorf("the repository cannot be opened: it has no key files (the folder keys/ is empty or missing), and without one its data cannot be decrypted")
	}
	var damaged []string
	for _, name := range names {
		k, err := openKey(ctx, st, name, password)
		if err == nil {
			return k, name, nil
		}
		if storage.IsNotExist(err) {
			continue // removed since the listing
		}
		// The password may not be this key's, or the key file may be damaged; the
		// name tells which.
		b, lerr := st.Load(ctx, storage.Handle{Type: storage.KeyFile, Name: name}, 0, 0)
		switch {
		case storage.IsNotExist(lerr):
		case lerr != nil:
			damaged = append(damaged, fmt.Sprintf("key file %s cannot be read: %v", short(name), lerr))
		case keyFileName(b) != strings.ToLower(name):
			damaged = append(damaged, fmt.Sprintf("key file %s is damaged (its content does not match its name)", short(name)))
		case !errors.Is(err, crypto.ErrAuth):
			damaged = append(damaged, fmt.Sprintf("key file %s: %v", short(name), err))
		}
	}
	if len(damaged) == 0 {
		return nil, "", ErrWrongPassword
	}
	what := "no other key opens with this password"
	if len(damaged) == len(names) {
		what = "it has no other key"
	}
	return nil, "", fmt.Errorf("the repository cannot be opened: %s; %s", strings.Join(damaged, "; "), what)
}

func short(name string) string {
	if len(name) > 8 {
		return name[:8]
	}
	return name
}

// missingConfig is the error of Open for a storage without a config file: no
// repository, or one that has lost its config.
func missingConfig(ctx context.Context, st storage.Storage) error {
	for _, t := range []storage.FileType{storage.KeyFile, storage.PackFile, storage.SnapshotFile, storage.IndexFile} {
		found := false
		err := st.List(ctx, t, func(storage.FileInfo) error {
			found = true
			return errStopList
		})
		if found {
			return fmt.Errorf("%s: the repository cannot be opened: its config file is missing (it holds the repository's id and chunker settings; %s/ still holds files)", st.Location(), t)
		}
		if err != nil && !errors.Is(err, errStopList) && !storage.IsNotExist(err) {
			return err
		}
	}
	return fmt.Errorf("%s: %w", st.Location(), ErrNoRepository)
}

var errStopList = errors.New("stop listing")
