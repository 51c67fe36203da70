package repo

import (
	"context"
	"errors"
	"testing"
	"time"

	"cairn/internal/crypto"
	"cairn/internal/storage/mem"
)

// A shared lock waits for an exclusive one to go, up to sharedLockWait; an
// exclusive lock never waits.
func TestSharedLockWaitsForExclusive(t *testing.T) {
	ctx := context.Background()
	r, err := Init(ctx, mem.New(), "pw", Options{KDF: crypto.FastKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer func(old time.Duration) { sharedLockWait = old }(sharedLockWait)
	sharedLockWait = 5 * time.Second

	excl, err := r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = excl.Unlock()
	}()
	shared, err := r.Lock(ctx, false)
	if err != nil {
		t.Fatalf("shared lock after the exclusive one went: %v", err)
	}
	// Under the shared lock an exclusive one fails at once.
	if _, err := r.Lock(ctx, true); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive lock under a shared one: %v", err)
	}
	if err := shared.Unlock(); err != nil {
		t.Fatal(err)
	}

	// An exclusive lock held longer than the wait: the shared one fails.
	sharedLockWait = 200 * time.Millisecond
	excl, err = r.Lock(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	defer excl.Unlock()
	if _, err := r.Lock(ctx, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("shared lock under a held exclusive one: %v", err)
	}
}
