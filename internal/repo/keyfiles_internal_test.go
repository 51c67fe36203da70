package repo

import (
	"context"
	"strings"
	"testing"
	"time"

	"cairn/internal/crypto"
	"cairn/internal/format"
	"cairn/internal/storage"
	"cairn/internal/storage/mem"
)

// TestKeyFileWithHugeKDFIsRefused plants a well-formed key file that asks for
// Argon2id with 1000 passes over 4 GiB: opening the repository must not run it
// (that would take hours and the machine's memory), but refuse it with a reason,
// and still open with the real key.
func TestKeyFileWithHugeKDFIsRefused(t *testing.T) {
	ctx := context.Background()
	st := mem.New()
	r, err := Init(ctx, st, "pw", Options{KDF: crypto.FastKDFParams})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
	planted, err := format.EncodeKeyFile(&format.KeyFile{Version: format.Version, Created: time.Now(), KDF: "argon2id",
		Time: 1000, MemoryKiB: 4 << 20, Threads: 4, Salt: make([]byte, 16), Data: []byte("sealed master key")})
	if err != nil {
		t.Fatal(err)
	}
	name := keyFileName(planted)
	if err := st.Save(ctx, storage.Handle{Type: storage.KeyFile, Name: name}, planted); err != nil {
		t.Fatal(err)
	}

	r, err = Open(ctx, st, "pw")
	if err != nil {
		t.Fatalf("open with the real key beside the planted one: %v", err)
	}
	_ = r.Close()
	_, err = Open(ctx, st, "wrong")
	if err == nil || !strings.Contains(err.Error(), "key file "+name[:8]) || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("open with a wrong password: %v, want the planted key file %s named as asking too much", err, name[:8])
	}
}
