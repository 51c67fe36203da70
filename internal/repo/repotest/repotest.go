// Package repotest gives tests a repository in one call, on the storage that
// CAIRN_TEST_STORAGE names, so that the repository's tests run on every backend.
package repotest

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"testing"

	"cairn/internal/crypto"
	"cairn/internal/repo"
	"cairn/internal/storage"
	"cairn/internal/storage/local"
	"cairn/internal/storage/mem"
	"cairn/internal/storage/s3"
	"cairn/internal/storage/sftp"
	"cairn/internal/testserver"
)

// Password is the password of every test repository.
const Password = "test password"

// StorageEnv is the environment variable that picks the storage of Storage: mem
// (the default), local, sftp or s3. scripts/test runs the repository's tests on
// each.
const StorageEnv = "CAIRN_TEST_STORAGE"

// Storage returns a new, empty storage of the kind CAIRN_TEST_STORAGE names: the
// memory storage, a local folder, a folder on a real sshd (testserver.SSHD), or a
// new bucket on a real S3 server (testserver.S3). It sets HOME or the AWS
// variables for the rest of t as the remote ones need, so t must not be parallel.
func Storage(t testing.TB) storage.Storage {
	t.Helper()
	ctx := context.Background()
	var (
		st  storage.Storage
		err error
	)
	switch kind := os.Getenv(StorageEnv); kind {
	case "", "mem":
		return mem.New()
	case "local":
		st, err = nilIfError(local.Create(filepath.Join(t.TempDir(), "repo")))
	case "sftp":
		srv := testserver.SSHD(t)
		srv.Env(t)
		cfg := sftp.Config{Host: srv.Alias, Path: path.Join(srv.Dir, "repo")}
		st, err = nilIfError(sftp.Create(ctx, cfg))
	case "s3":
		srv := testserver.S3(t)
		srv.Env(t)
		cfg, perr := s3.ParseLocation(srv.Location(srv.NewBucket(t), "repo"))
		if perr != nil {
			t.Fatal(perr)
		}
		st, err = nilIfError(s3.Create(ctx, cfg))
	default:
		t.Fatalf("%s=%q: want mem, local, sftp or s3", StorageEnv, kind)
	}
	if err != nil {
		t.Fatalf("%s storage: %v", os.Getenv(StorageEnv), err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func nilIfError[S storage.Storage](s S, err error) (storage.Storage, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// New returns a repository on Storage(t) with a cheap KDF and small packs.
func New(t testing.TB) *repo.Repository {
	t.Helper()
	return NewOn(t, Storage(t))
}

// NewOn returns a new repository in st with a cheap KDF and small packs.
func NewOn(t testing.TB, st storage.Storage) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), st, Password, repo.Options{KDF: crypto.FastKDFParams, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}
