package format

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every decoder is fuzzed from valid encodings. Each target checks that the decoder
// does not panic, and for input that it accepts, that encoding the value and decoding
// that again succeeds and gives the same value, and the same encoding. The binary
// codecs are canonical: each value has one encoding, so an accepted input must be
// exactly what the encoder writes.

// checkReencode decodes in; if that works, it encodes the value, decodes and encodes
// again, and fails unless both encodings are equal (and, with sameValue, both decoded
// values too).
func checkReencode[T any](t *testing.T, in []byte, decode func([]byte) (T, error), encode func(T) ([]byte, error), sameValue bool) (T, bool) {
	t.Helper()
	v1, err := decode(in)
	if err != nil {
		var zero T
		if !reflect.ValueOf(&v1).Elem().IsZero() {
			t.Fatalf("error %v with a non-zero value %+v", err, v1)
		}
		return zero, false
	}
	e1, err := encode(v1)
	if err != nil {
		t.Fatalf("decoded %q as %+v, which does not encode: %v", in, v1, err)
	}
	v2, err := decode(e1)
	if err != nil {
		t.Fatalf("decoded %q as %+v, encoded as %q, which does not decode: %v", in, v1, e1, err)
	}
	e2, err := encode(v2)
	if err != nil {
		t.Fatalf("second encoding: %v", err)
	}
	if !bytes.Equal(e1, e2) {
		t.Fatalf("encoding not stable:\n%q\n%q", e1, e2)
	}
	if sameValue && !reflect.DeepEqual(v1, v2) {
		t.Fatalf("value changed by a round trip:\n%+v\n%+v", v1, v2)
	}
	return v1, true
}

func addJSONSeeds(f *testing.F, valid []byte) {
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte("null"))
	f.Add([]byte("{}"))
	f.Add(valid[:len(valid)/2])
	f.Add(append(append([]byte{}, valid...), valid...))
}

func FuzzDecodeKeyFile(f *testing.F) {
	b, _ := EncodeKeyFile(sampleKeyFile())
	addJSONSeeds(f, b)
	f.Add([]byte(`{"version":1,"created":"2024-01-01T00:00:00+02:00","kdf":"argon2id","time":1,"memory_kib":8,"threads":1,"salt":"AAAAAAAAAAAAAAAAAAAAAA==","data":"AQ=="}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		// Times keep their zone's offset but not its pointer: compare the encodings.
		checkReencode(t, in, DecodeKeyFile, EncodeKeyFile, false)
	})
}

func FuzzDecodeMasterKey(f *testing.F) {
	b, _ := EncodeMasterKey(sampleMasterKey())
	addJSONSeeds(f, b)
	f.Fuzz(func(t *testing.T, in []byte) {
		checkReencode(t, in, DecodeMasterKey, EncodeMasterKey, true)
	})
}

func FuzzDecodeConfig(f *testing.F) {
	b, _ := EncodeConfig(sampleConfig())
	addJSONSeeds(f, b)
	f.Add([]byte(`{"version":1,"id":"` + strings.Repeat("AB", 32) + `","chunk_min":1,"chunk_avg":1,"chunk_max":1,"pack_size":1048576}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkReencode(t, in, DecodeConfig, EncodeConfig, true)
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	b, _ := EncodeSnapshot(sampleSnapshot())
	addJSONSeeds(f, b)
	b, _ = EncodeSnapshot(sampleImageSnapshot())
	f.Add(b)
	lost := sampleImageSnapshot()
	lost.Image.Lost = []ByteRange{{Offset: 4096, Length: 8192}, {Offset: 1 << 20, Length: 512}}
	b, _ = EncodeSnapshot(lost)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		// Empty tags decode as [] and encode as nothing: compare the encodings.
		checkReencode(t, in, DecodeSnapshot, EncodeSnapshot, false)
	})
}

func FuzzDecodeTree(f *testing.F) {
	b, _ := EncodeTree(sampleTree())
	addJSONSeeds(f, b)
	f.Add([]byte(`{"nodes":[]}`))
	f.Add([]byte(`{"nodes":[{"name":"a","type":"fifo"},{"name":"b","type":"dir","subtree":"` + testID(1).String() + `"}]}`))
	f.Add([]byte(`{"nodes":[{"name":{"b64":"/w=="},"type":"file","xattrs":[{"name":"n","value":"AA=="}],"content":[]}]}`))
	f.Add([]byte(`{"x":[1,{"y":2}],"Nodes":[{"name":"a","type":"socket","mode":511}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, ok := checkReencode(t, in, DecodeTree, EncodeTree, false)
		if !ok {
			return
		}
		for i, n := range tr.Nodes {
			if err := CheckName(string(n.Name)); err != nil {
				t.Fatalf("accepted node %d: %v", i, err)
			}
			if i > 0 && tr.Nodes[i-1].Name >= n.Name {
				t.Fatalf("accepted unsorted names %q, %q", tr.Nodes[i-1].Name, n.Name)
			}
			if n.Type == NodeDir && n.Subtree == nil {
				t.Fatalf("accepted directory %q without subtree", n.Name)
			}
			if got := tr.Find(string(n.Name)); got != n {
				t.Fatalf("Find(%q) = %v", n.Name, got)
			}
		}
	})
}

func FuzzDecodePackHeader(f *testing.F) {
	f.Add(EncodePackHeader(samplePackBlobs()))
	f.Add(EncodePackHeader(nil))
	f.Add(EncodePackHeader(samplePackBlobs()[:1]))
	f.Add([]byte{})
	f.Add([]byte{1, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		blobs, err := DecodePackHeader(in)
		if err != nil {
			if blobs != nil {
				t.Fatalf("error %v with blobs", err)
			}
			return
		}
		if got := EncodePackHeader(blobs); !bytes.Equal(got, in) {
			t.Fatalf("accepted %q, which encodes as %q", in, got)
		}
		var off uint64
		for i, b := range blobs {
			if uint64(b.Offset) != off || !b.Type.valid() || b.RawLength > MaxBlobSize {
				t.Fatalf("blob %d: %+v (offset want %d)", i, b, off)
			}
			off += uint64(b.Length)
		}
		if off > 1<<32-1 {
			t.Fatalf("blobs end at %d", off)
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add(EncodeIndex(sampleIndex()))
	f.Add(EncodeIndex(&Index{}))
	f.Add(EncodeIndex(&Index{Supersedes: []ID{testID(3)}}))
	f.Add(EncodeIndex(&Index{Packs: []IndexPack{{ID: testID(4), Blobs: samplePackBlobs()[:1]}}}))
	f.Add([]byte("CIX"))
	f.Fuzz(func(t *testing.T, in []byte) {
		idx, err := DecodeIndex(in)
		if err != nil {
			if idx != nil {
				t.Fatalf("error %v with an index", err)
			}
			return
		}
		if got := EncodeIndex(idx); !bytes.Equal(got, in) {
			t.Fatalf("accepted %q, which encodes as %q", in, got)
		}
		for _, p := range idx.Packs {
			for i, b := range p.Blobs {
				if !b.Type.valid() || uint64(b.Offset)+uint64(b.Length) > 1<<32-1 || b.RawLength > MaxBlobSize {
					t.Fatalf("pack %v blob %d: %+v", p.ID, i, b)
				}
			}
		}
	})
}

func FuzzRawStringUnmarshalJSON(f *testing.F) {
	for _, s := range []string{`""`, `"a"`, `"\u00e9"`, `{"b64":"/w=="}`, `{"b64":"YQ=="}`, `null`, `{"b64":""}`, `"\ud800"`, `1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var s RawString
		if err := s.UnmarshalJSON(in); err != nil {
			return
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var s2 RawString
		if err := json.Unmarshal(b, &s2); err != nil {
			t.Fatalf("%q: marshalled as %s, which does not unmarshal: %v", s, b, err)
		}
		if s2 != s {
			t.Fatalf("%q: marshalled as %s, unmarshalled as %q", s, b, s2)
		}
	})
}

// FuzzRawStringRoundTrip checks that every byte string survives JSON.
func FuzzRawStringRoundTrip(f *testing.F) {
	for _, s := range []string{"", "a", "\xff", "\xed\xa0\x80", "\u2028", "a\x00b", "\xc3\x28", "\"\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(RawString(s))
		if err != nil {
			t.Fatal(err)
		}
		// Inside a struct as in a tree, too.
		x := Xattr{Name: RawString(s), Value: []byte(s)}
		xb, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		var got RawString
		var gx Xattr
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: %s: %v", s, b, err)
		}
		if err := json.Unmarshal(xb, &gx); err != nil {
			t.Fatalf("%q: %s: %v", s, xb, err)
		}
		if string(got) != s || string(gx.Name) != s || string(gx.Value) != s {
			t.Fatalf("%q came back as %q and %q, %q", s, got, gx.Name, gx.Value)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add(testID(0).String())
	f.Add(strings.ToUpper(testID(0xa0).String()))
	f.Add("")
	f.Add("0")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if id.String() != strings.ToLower(s) {
			t.Fatalf("ParseID(%q).String() = %s", s, id)
		}
		id2, err := ParseID(id.String())
		if err != nil || id2 != id {
			t.Fatalf("ParseID(%s) = %v, %v", id, id2, err)
		}
		var id3 ID
		b, _ := json.Marshal(id)
		if err := json.Unmarshal(b, &id3); err != nil || id3 != id {
			t.Fatalf("JSON round trip of %s: %v, %v", id, id3, err)
		}
	})
}

func FuzzDecodeChunkList(f *testing.F) {
	f.Add(EncodeChunkList(nil))
	f.Add(EncodeChunkList([]ID{testID(1), {}, testID(2)}))
	f.Add(EncodeChunkListDigests(&ChunkList{IDs: []ID{testID(1), {}, testID(2)}, Group: 2, Digests: []ID{testID(3), {}}}))
	f.Add(chunkListV1Bytes([]ID{testID(1), {}}))
	f.Add([]byte("CCL\x01\xff\xff\xff\xff\x0f"))
	f.Add([]byte("CCL\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeChunkListDigests(b)
		if err != nil {
			return
		}
		ids, err := DecodeChunkList(b)
		if err != nil || !slices.Equal(ids, l.IDs) {
			t.Fatalf("DecodeChunkList: %v, %v", ids, err)
		}
		if l.Group != 0 && len(l.Digests) != (len(l.IDs)+l.Group-1)/l.Group {
			t.Fatalf("%d digests of groups of %d for %d ids", len(l.Digests), l.Group, len(l.IDs))
		}
		want := EncodeChunkListDigests(l)
		if b[3] == 1 {
			want = chunkListV1Bytes(l.IDs)
		}
		if string(want) != string(b) {
			t.Fatalf("re-encoding differs: %x vs %x", want, b)
		}
	})
}

func FuzzDecodeLock(f *testing.F) {
	b, _ := EncodeLock(&Lock{Time: time.Unix(1, 2).UTC(), Exclusive: true, Host: "h", PID: 7, User: "u"})
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeLock(b)
		if err != nil {
			return
		}
		if _, err := EncodeLock(l); err != nil {
			t.Fatal(err)
		}
	})
}
