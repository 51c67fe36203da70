// Package repotest gives tests a repository in one call.
package repotest

import (
	"context"
	"testing"

	"cairn/internal/crypto"
	"cairn/internal/repo"
	"cairn/internal/storage"
	"cairn/internal/storage/mem"
)

// Password is the password of every test repository.
const Password = "test password"

// New returns a repository on the memory storage with a cheap KDF and small packs.
func New(t testing.TB) *repo.Repository {
	t.Helper()
	return NewOn(t, mem.New())
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
