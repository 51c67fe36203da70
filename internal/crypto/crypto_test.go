package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// testKey returns a fixed key: Encrypt is seed, seed+1, ...; MAC is its complement.
func testKey(t testing.TB, seed byte) *Key {
	t.Helper()
	enc, mac := make([]byte, KeySize), make([]byte, KeySize)
	for i := range KeySize {
		enc[i] = seed + byte(i)
		mac[i] = ^(seed + byte(i))
	}
	k, err := NewKey(enc, mac)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testKey(t, 1)
	for _, n := range []int{0, 1, 15, 16, 17, 1000, 1 << 20} {
		p := bytes.Repeat([]byte{byte(n), 0xaa, 0x55}, n)[:n]
		s := k.Seal(nil, p)
		if len(s) != n+Overhead {
			t.Fatalf("sealed %d bytes into %d, want %d", n, len(s), n+Overhead)
		}
		got, err := k.Open(nil, s)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("%d bytes: opened different data", n)
		}
	}
}

func TestSealOpenAppend(t *testing.T) {
	k := testKey(t, 1)
	p := []byte("hello, world")
	s := k.Seal([]byte("prefix"), p)
	if string(s[:6]) != "prefix" || len(s) != 6+len(p)+Overhead {
		t.Fatalf("Seal did not append: %q", s)
	}
	got, err := k.Open([]byte("head:"), s[6:])
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "head:hello, world" {
		t.Fatalf("Open did not append: %q", got)
	}
}

// TestSealLayout pins the sealed form that docs/format.md describes: a 24-byte random
// nonce, then the XChaCha20-Poly1305 ciphertext and 16-byte tag, no additional data.
func TestSealLayout(t *testing.T) {
	k := testKey(t, 7)
	p := []byte("layout")
	s := k.Seal(nil, p)
	if chacha20poly1305.NonceSizeX != 24 || chacha20poly1305.Overhead != 16 || Overhead != 40 {
		t.Fatal("nonce or tag size changed")
	}
	a, err := chacha20poly1305.NewX(k.Encrypt[:])
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Open(nil, s[:24], s[24:], nil)
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("sealed data is not nonce || XChaCha20-Poly1305(Encrypt): %v", err)
	}
	if s2 := k.Seal(nil, p); bytes.Equal(s[:24], s2[:24]) || bytes.Equal(s, s2) {
		t.Fatal("two seals share a nonce")
	}
}

func TestOpenFlippedBit(t *testing.T) {
	k := testKey(t, 1)
	s := k.Seal(nil, []byte("every bit of this is authenticated"))
	for i := range len(s) * 8 {
		bad := append([]byte(nil), s...)
		bad[i/8] ^= 1 << (i % 8)
		if _, err := k.Open(nil, bad); !errors.Is(err, ErrAuth) {
			t.Fatalf("bit %d flipped: err = %v, want ErrAuth", i, err)
		}
	}
	if _, err := k.Open(nil, s); err != nil {
		t.Fatalf("original no longer opens: %v", err)
	}
}

func TestOpenWrongKey(t *testing.T) {
	k := testKey(t, 1)
	s := k.Seal(nil, []byte("secret"))
	for _, other := range []*Key{testKey(t, 2), mustRandomKey(t)} {
		if _, err := other.Open(nil, s); !errors.Is(err, ErrAuth) {
			t.Fatalf("wrong key: err = %v, want ErrAuth", err)
		}
	}
	// Only the Encrypt half seals: a key with the other half changed opens.
	sameEnc, err := NewKey(k.Encrypt[:], make([]byte, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sameEnc.Open(nil, s); err != nil {
		t.Fatalf("key with the same Encrypt half: %v", err)
	}
}

func TestOpenShortOrChanged(t *testing.T) {
	k := testKey(t, 1)
	s := k.Seal(nil, []byte("abc"))
	empty := k.Seal(nil, nil)
	if got, err := k.Open(nil, empty); err != nil || len(got) != 0 {
		t.Fatalf("sealed empty plaintext: %q, %v", got, err)
	}
	for n := range Overhead + 3 {
		if _, err := k.Open(nil, s[:n]); !errors.Is(err, ErrAuth) {
			t.Fatalf("first %d bytes: err = %v, want ErrAuth", n, err)
		}
		if _, err := k.Open(nil, make([]byte, n)); !errors.Is(err, ErrAuth) {
			t.Fatalf("%d zero bytes: err = %v, want ErrAuth", n, err)
		}
	}
	for _, bad := range [][]byte{
		append(append([]byte(nil), s...), 0),
		s[1:],
		append(append([]byte(nil), s[:24]...), s[25:]...),
		append(append([]byte(nil), empty[:24]...), s[24:]...), // another seal's nonce
	} {
		if _, err := k.Open(nil, bad); !errors.Is(err, ErrAuth) {
			t.Fatalf("changed input: err = %v, want ErrAuth", err)
		}
	}
}

func mustRandomKey(t testing.TB) *Key {
	t.Helper()
	k, err := NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewRandomKey(t *testing.T) {
	a, b := mustRandomKey(t), mustRandomKey(t)
	if a.Encrypt == b.Encrypt || a.MAC == b.MAC || a.Encrypt == a.MAC {
		t.Fatal("random keys repeat")
	}
	if a.Encrypt == [KeySize]byte{} || a.MAC == [KeySize]byte{} {
		t.Fatal("random key is zero")
	}
}

func TestNewKeyRejects(t *testing.T) {
	for _, c := range [][2]int{{0, 32}, {32, 0}, {31, 32}, {32, 33}, {64, 0}} {
		if _, err := NewKey(make([]byte, c[0]), make([]byte, c[1])); err == nil {
			t.Errorf("NewKey(%d, %d bytes) accepted", c[0], c[1])
		}
	}
}

func TestContentID(t *testing.T) {
	k1, k2 := testKey(t, 1), testKey(t, 2)
	data := []byte("the same data")
	id := k1.ContentID(data)
	if id != k1.ContentID(data) || id != testKey(t, 1).ContentID(data) {
		t.Fatal("ContentID differs for the same key and data")
	}
	if id == k2.ContentID(data) {
		t.Fatal("ContentID equal under two keys")
	}
	if id == k1.ContentID([]byte("the same dat")) || id == k1.ContentID(nil) {
		t.Fatal("ContentID equal for different data")
	}
	// Only the MAC half keys the ids.
	sameMAC, err := NewKey(make([]byte, KeySize), k1.MAC[:])
	if err != nil {
		t.Fatal(err)
	}
	if sameMAC.ContentID(data) != id {
		t.Fatal("ContentID depends on the Encrypt half")
	}
}

// TestContentIDVectors checks ContentID against the official BLAKE3 keyed_hash test
// vectors (first 32 bytes of output): content ids of every repository depend on it.
func TestContentIDVectors(t *testing.T) {
	k, err := NewKey(make([]byte, KeySize), []byte("whats the Elvish word for friend"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		n    int
		want string
	}{
		{0, "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"},
		{1, "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b"},
		{1023, "c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e"},
		{1024, "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4"},
		{1025, "357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69"},
		{8193, "954a2a75420c8d6547e3ba5b98d963e6fa6491addc8c023189cc519821b4a1f5"},
		{31744, "efa53b389ab67c593dba624d898d0f7353ab99e4ac9d42302ee64cbf9939a419"},
	} {
		in := make([]byte, v.n)
		for i := range in {
			in[i] = byte(i % 251)
		}
		id := k.ContentID(in)
		if got := hex.EncodeToString(id[:]); got != v.want {
			t.Errorf("ContentID of %d bytes = %s, want %s", v.n, got, v.want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	k := testKey(t, 3) // first used by many goroutines at once
	data := bytes.Repeat([]byte("x"), 5000)
	want := testKey(t, 3).ContentID(data)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if k.ContentID(data) != want {
					t.Error("ContentID differs under concurrency")
					return
				}
				p, err := k.Open(nil, k.Seal(nil, data))
				if err != nil || !bytes.Equal(p, data) {
					t.Errorf("Seal/Open under concurrency: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestDeriveKey(t *testing.T) {
	salt := []byte("0123456789abcdef")
	p := FastKDFParams
	k, err := DeriveKey("correct horse", salt, p)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := DeriveKey("correct horse", salt, p)
	if err != nil {
		t.Fatal(err)
	}
	if k.Encrypt != k2.Encrypt || k.MAC != k2.MAC {
		t.Fatal("DeriveKey is not deterministic")
	}
	// The key is the 64 bytes of Argon2id: Encrypt the first 32, MAC the rest.
	raw := argon2.IDKey([]byte("correct horse"), salt, p.Time, p.MemoryKiB, p.Threads, 64)
	if !bytes.Equal(k.Encrypt[:], raw[:32]) || !bytes.Equal(k.MAC[:], raw[32:]) {
		t.Fatal("DeriveKey is not Argon2id split in two halves")
	}
	// Pinned: every key file in every repository depends on this.
	const want = "ae928cb676219b99e9be5506f6e8dcfc6237efdf570facc1eaf9dba4a836ffb5"
	if got := hex.EncodeToString(k.Encrypt[:]); got != want {
		t.Errorf("DeriveKey Encrypt half = %s, want %s", got, want)
	}
	for _, other := range []struct {
		pw   string
		salt []byte
		p    KDFParams
	}{
		{"correct horsE", salt, p},
		{"", salt, p},
		{"correct horse", []byte("0123456789abcdeF"), p},
		{"correct horse", salt, KDFParams{Time: 2, MemoryKiB: p.MemoryKiB, Threads: p.Threads}},
		{"correct horse", salt, KDFParams{Time: p.Time, MemoryKiB: 128, Threads: p.Threads}},
		{"correct horse", salt, KDFParams{Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: 2}},
	} {
		o, err := DeriveKey(other.pw, other.salt, other.p)
		if err != nil {
			t.Fatal(err)
		}
		if o.Encrypt == k.Encrypt || o.MAC == k.MAC {
			t.Errorf("DeriveKey(%q, %q, %+v) gives the same key", other.pw, other.salt, other.p)
		}
	}
}

func TestDeriveKeyRejects(t *testing.T) {
	salt := make([]byte, 16)
	for _, p := range []KDFParams{
		{},
		{Time: 0, MemoryKiB: 64, Threads: 1},
		{Time: 1, MemoryKiB: 0, Threads: 1},
		{Time: 1, MemoryKiB: 7, Threads: 1},
		{Time: 1, MemoryKiB: 64, Threads: 0},
		{Time: MaxKDFTime + 1, MemoryKiB: 64, Threads: 1},
		{Time: 1, MemoryKiB: MaxKDFMemoryKiB + 1, Threads: 1},
		{Time: 1001, MemoryKiB: 64, Threads: 1},
		{Time: 1, MemoryKiB: 4 << 20, Threads: 1},
		{Time: 1<<32 - 1, MemoryKiB: 1<<32 - 1, Threads: 255},
	} {
		if k, err := DeriveKey("pw", salt, p); err == nil || k != nil {
			t.Errorf("DeriveKey accepted %+v", p)
		}
	}
}

func TestTuneKDF(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Argon2id with 64 MiB")
	}
	for _, target := range []time.Duration{0, time.Nanosecond, time.Millisecond} {
		p := TuneKDF(target)
		if p.Time < 1 || p.MemoryKiB != 64<<10 || p.Threads == 0 {
			t.Fatalf("TuneKDF(%v) = %+v", target, p)
		}
	}
	if p := TuneKDF(time.Hour); p.Time < 1 || p.Time > 50 {
		t.Fatalf("TuneKDF(1h) = %+v, want 1..50 passes", p)
	}
	// What it returns is usable.
	if _, err := DeriveKey("pw", make([]byte, 16), TuneKDF(0)); err != nil {
		t.Fatal(err)
	}
}

func FuzzOpen(f *testing.F) {
	k := testKey(f, 5)
	f.Add(k.Seal(nil, []byte("valid")))
	f.Add(k.Seal(nil, nil))
	f.Add([]byte{})
	f.Add(make([]byte, Overhead))
	f.Add(bytes.Repeat([]byte{0xff}, Overhead+10))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := k.Open([]byte("dst"), in)
		if err != nil {
			if !errors.Is(err, ErrAuth) || p != nil {
				t.Fatalf("Open = %q, %v; want nil, ErrAuth", p, err)
			}
			return
		}
		// Only our seeds are genuine: a plaintext opens, and opens again.
		if len(p) != 3+len(in)-Overhead || string(p[:3]) != "dst" {
			t.Fatalf("Open returned %d bytes for %d", len(p), len(in))
		}
		if q, err := k.Open(nil, in); err != nil || !bytes.Equal(q, p[3:]) {
			t.Fatalf("second Open: %v", err)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	k := testKey(b, 1)
	p := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	dst := make([]byte, 0, len(p)+Overhead)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		dst = k.Seal(dst[:0], p)
	}
}

func BenchmarkOpen(b *testing.B) {
	k := testKey(b, 1)
	p := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	s := k.Seal(nil, p)
	dst := make([]byte, 0, len(p))
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		var err error
		if dst, err = k.Open(dst[:0], s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkContentID(b *testing.B) {
	k := testKey(b, 1)
	p := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		k.ContentID(p)
	}
}
