package format

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testID returns an id whose bytes are seed, seed+1, ... so that every sample is
// fixed and distinct.
func testID(seed byte) ID {
	var id ID
	for i := range id {
		id[i] = seed + byte(i)
	}
	return id
}

func idPtr(id ID) *ID { return &id }

func sampleKeyFile() *KeyFile {
	return &KeyFile{
		Version:   Version,
		Created:   time.Date(2024, 5, 17, 9, 30, 15, 123456789, time.UTC),
		Host:      "alpha",
		User:      "ada",
		KDF:       "argon2id",
		Time:      3,
		MemoryKiB: 64 << 10,
		Threads:   4,
		Salt:      bytes.Repeat([]byte{0xa5}, 32),
		Data:      append(bytes.Repeat([]byte{0x01, 0xfe}, 40), 0x00, 0xff),
	}
}

func sampleMasterKey() *MasterKey {
	m := &MasterKey{Encrypt: make([]byte, 32), MAC: make([]byte, 32)}
	for i := range 32 {
		m.Encrypt[i] = byte(i)
		m.MAC[i] = byte(0xff - i)
	}
	return m
}

func sampleConfig() *Config {
	return &Config{
		Version:   Version,
		ID:        testID(0x10).String(),
		ChunkMin:  512 << 10,
		ChunkAvg:  1 << 20,
		ChunkSeed: 0x0123456789abcdef,
		ChunkMax:  8 << 20,
		PackSize:  16 << 20,
	}
}

func samplePackBlobs() []PackBlob {
	return []PackBlob{
		{Type: DataBlob, ID: testID(0x20), Offset: 0, Length: 41, RawLength: 1},
		{Type: TreeBlob, ID: testID(0x40), Offset: 41, Length: 300, RawLength: 1000},
		{Type: DataBlob, ID: testID(0x60), Offset: 341, Length: MaxBlobSize + 1024, RawLength: MaxBlobSize},
		{Type: DataBlob, ID: testID(0x80), Offset: MaxBlobSize + 1365, Length: 128, RawLength: 127},
	}
}

func sampleIndex() *Index {
	return &Index{
		Packs: []IndexPack{
			{ID: testID(0xa0), Blobs: samplePackBlobs()},
			{ID: testID(0xc0), Blobs: []PackBlob{
				{Type: TreeBlob, ID: testID(0xe0), Offset: 1 << 31, Length: 1 << 20, RawLength: 3 << 20},
			}},
			{ID: testID(0xd0)}, // a pack whose blobs were all superseded
		},
		Supersedes: []ID{testID(0x01), testID(0x02)},
	}
}

func sampleSnapshot() *Snapshot {
	return &Snapshot{
		Version:  Version,
		Time:     time.Date(2024, 5, 17, 9, 31, 0, 5, time.UTC),
		Kind:     KindFile,
		Host:     "alpha",
		User:     "ada",
		Paths:    []string{"/home/ada", "/etc"},
		Tags:     []string{"daily", "laptop"},
		Parent:   idPtr(testID(0x30)),
		Tree:     testID(0x31),
		Original: idPtr(testID(0x32)),
		Summary: &Summary{
			Start:           time.Date(2024, 5, 17, 9, 30, 0, 0, time.UTC),
			End:             time.Date(2024, 5, 17, 9, 31, 0, 0, time.UTC),
			FilesNew:        1,
			FilesChanged:    2,
			FilesUnmodified: 3,
			DirsNew:         4,
			DirsChanged:     5,
			DirsUnmodified:  6,
			TotalFiles:      7,
			TotalBytes:      1 << 40,
			DataAdded:       9,
			DataAddedStored: 10,
			Errors:          11,
		},
	}
}

// sampleChunkList is a version 2 list of 5 chunks: a blob spanning chunks 0-3
// of which chunk 2 was since replaced by a one-chunk blob, then a null chunk;
// digests of groups of 4 (the second one unknown).
func sampleChunkList() *ChunkList {
	return &ChunkList{
		IDs:     []ID{testID(1), testID(1), testID(2), testID(1), {}},
		Group:   4,
		Digests: []ID{testID(3), {}},
	}
}

func sampleImageSnapshot() *Snapshot {
	return &Snapshot{
		Version: Version,
		Time:    time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Kind:    KindImage,
		Host:    "beta",
		Paths:   []string{"/dev/sda"},
		Image: &Image{
			Source: "/dev/sda", WholeDisk: true, Size: 64 << 20, SectorSize: 512, Model: "QEMU HARDDISK", Serial: "QM0001",
			Table: "gpt", DiskID: "0d7e3a5c-1b2f-4c3d-9e8f-0a1b2c3d4e5f",
			Regions: []ImageRegion{
				{Kind: RegionGap, Offset: 0, Size: 1 << 20, ChunkSize: 256 << 10, Chunks: []ID{testID(0x33)}},
				{Kind: RegionPartition, Offset: 1 << 20, Size: 62 << 20, ChunkSize: 256 << 10, Chunks: []ID{testID(0x34)},
					Partition: &PartitionInfo{Number: 1, Type: "0fc63daf-8483-4772-8e79-3d69d8477de4", TypeName: "Linux filesystem",
						Name: "root", UUID: "6a1b2c3d-0000-4000-8000-000000000001", FS: "ext4", Label: "rootfs",
						FSUUID: "1e2d3c4b-0000-4000-8000-000000000002", FSSize: 62 << 20, BlockSize: 4096, UsedBytes: 9 << 20}},
				{Kind: RegionGap, Offset: 63 << 20, Size: 1 << 20, ChunkSize: 256 << 10, Chunks: []ID{testID(0x35)}},
			},
		},
	}
}

// sampleTree holds a node of every type, names and a link target that are not valid
// UTF-8, and xattrs with binary values; its nodes are sorted.
func sampleTree() *Tree {
	return &Tree{Nodes: []*Node{
		{Name: "chr", Type: NodeCharDev, Mode: 0o620, UID: 0, GID: 5, Rdev: 0x8801, MTime: 1, ATime: 2, CTime: 3},
		{Name: "dev", Type: NodeDev, Mode: 0o660, GID: 6, Rdev: 0x0801, MTime: 4, ATime: 5, CTime: 6},
		{Name: "dir", Type: NodeDir, Mode: 0o1777, UID: 1000, GID: 1000, User: "ada", Group: "ada",
			MTime: -7, ATime: 8, CTime: 9, Inode: 12, DeviceID: 2049, Links: 3, Subtree: idPtr(testID(0x50))},
		{Name: "empty", Type: NodeFile, Mode: 0o600, MTime: 10},
		{Name: "fifo", Type: NodeFIFO, Mode: 0o644, MTime: 11},
		{Name: "file.txt", Type: NodeFile, Mode: 0o4755, UID: 1000, GID: 100, User: "ada", Group: "users",
			Size: 3 << 20, MTime: 1715938215123456789, ATime: 1715938215000000000, CTime: 1715938216999999999,
			Inode: 1234567, DeviceID: 2049, Links: 2,
			Xattrs: []Xattr{
				{Name: "system.posix_acl_access", Value: []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff}},
				{Name: "user.bin", Value: []byte{0, 0x80, 0xff, '\n', '"', '\\'}},
				{Name: "user.empty", Value: []byte{}},
				{Name: RawString("user.\xff\xfe"), Value: []byte("x")},
			},
			Content: []ID{testID(0x60), testID(0x61), testID(0x60)},
			Error:   "file changed while reading",
		},
		{Name: "link", Type: NodeSymlink, Mode: 0o777, LinkTarget: RawString("../t\xe9st\x80"), MTime: 12},
		{Name: "sock", Type: NodeSocket, Mode: 0o755, MTime: 13},
		{Name: "utf8 \u00e9\u6f22\U0001F600", Type: NodeFile, Mode: 0o644, MTime: 14},
		{Name: RawString("\xc3\x28 latin1 \xe9"), Type: NodeFile, Mode: 0o644, MTime: 15, LinkTarget: ""},
		{Name: RawString("\xff"), Type: NodeSymlink, Mode: 0o777, LinkTarget: "/abs/\"quoted\"", MTime: 16},
	}}
}

func TestSampleTreeIsSorted(t *testing.T) {
	tr := sampleTree()
	want := append([]*Node(nil), tr.Nodes...)
	tr.SortNodes()
	if !reflect.DeepEqual(tr.Nodes, want) {
		t.Fatal("sampleTree is not sorted")
	}
	seen := map[string]bool{}
	for _, n := range tr.Nodes {
		seen[n.Type] = true
	}
	for _, typ := range []string{NodeFile, NodeDir, NodeSymlink, NodeDev, NodeCharDev, NodeFIFO, NodeSocket} {
		if !seen[typ] {
			t.Errorf("sampleTree lacks a %s node", typ)
		}
	}
}

func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: round trip differs\n got %s\nwant %s", what, show(got), show(want))
	}
}

func TestKeyFileRoundTrip(t *testing.T) {
	for _, k := range []*KeyFile{sampleKeyFile(), {Version: 1, KDF: "argon2id", Time: 1, MemoryKiB: 8, Threads: 1,
		Salt: make([]byte, 16), Data: []byte{1}, Created: time.Unix(0, 0).UTC()}} {
		b, err := EncodeKeyFile(k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeKeyFile(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		mustEqual(t, "key file", got, k)
	}
}

func TestMasterKeyRoundTrip(t *testing.T) {
	m := sampleMasterKey()
	b, err := EncodeMasterKey(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMasterKey(b)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "master key", got, m)
}

func TestConfigRoundTrip(t *testing.T) {
	for _, c := range []*Config{sampleConfig(), {Version: 1, ID: testID(0).String(), ChunkMin: 1, ChunkAvg: 1,
		ChunkMax: 64 << 20, PackSize: 1 << 30}, {Version: 1, ID: testID(0).String(), ChunkMin: 64 << 20,
		ChunkAvg: 64 << 20, ChunkMax: 64 << 20, PackSize: 1 << 20}} {
		b, err := EncodeConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeConfig(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		mustEqual(t, "config", got, c)
	}
}

func TestPackHeaderRoundTrip(t *testing.T) {
	for _, blobs := range [][]PackBlob{nil, samplePackBlobs(), samplePackBlobs()[:1]} {
		b := EncodePackHeader(blobs)
		got, err := DecodePackHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "pack header", got, blobs)
	}
}

func TestPackHeaderIgnoresOffsets(t *testing.T) {
	// Offsets are implied by the order: whatever the caller put in is not stored.
	blobs := samplePackBlobs()
	for i := range blobs {
		blobs[i].Offset = 7
	}
	got, err := DecodePackHeader(EncodePackHeader(blobs))
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "pack header", got, samplePackBlobs())
}

func TestIndexRoundTrip(t *testing.T) {
	for _, idx := range []*Index{{}, sampleIndex(), {Supersedes: []ID{testID(9)}}} {
		got, err := DecodeIndex(EncodeIndex(idx))
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "index", got, idx)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, s := range []*Snapshot{sampleSnapshot(), sampleImageSnapshot()} {
		b, err := EncodeSnapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeSnapshot(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		mustEqual(t, "snapshot", got, s)
	}
}

func TestTreeRoundTrip(t *testing.T) {
	for _, tr := range []*Tree{{}, sampleTree()} {
		b, err := EncodeTree(tr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeTree(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if len(tr.Nodes) == 0 {
			if len(got.Nodes) != 0 {
				t.Fatalf("empty tree decoded as %d nodes", len(got.Nodes))
			}
			continue
		}
		mustEqual(t, "tree", got, tr)
	}
}

func TestEncodeTreeSorts(t *testing.T) {
	want := sampleTree()
	shuffled := sampleTree()
	n := shuffled.Nodes
	for i := range n {
		j := (i*7 + 3) % len(n)
		n[i], n[j] = n[j], n[i]
	}
	b, err := EncodeTree(shuffled)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTree(b)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "tree", got, want)
}

func TestTreeFind(t *testing.T) {
	tr := sampleTree()
	for _, n := range tr.Nodes {
		if got := tr.Find(string(n.Name)); got != n {
			t.Errorf("Find(%q) = %v", n.Name, got)
		}
	}
	for _, name := range []string{"", "a", "dir2", "zzz", "\xff\xff"} {
		if got := tr.Find(name); got != nil {
			t.Errorf("Find(%q) = %v, want nil", name, got)
		}
	}
}

func TestRawString(t *testing.T) {
	for _, c := range []struct {
		s    RawString
		json string
	}{
		{"", `""`},
		{"plain", `"plain"`},
		{"\u00e9\u6f22", `"é漢"`},
		{"quote\"back\\slash\n", `"quote\"back\\slash\n"`},
		{"\xff", `{"b64":"/w=="}`},
		{"a\xc3\x28b", `{"b64":"YcMoYg=="}`},
		{"\xed\xa0\x80", `{"b64":"7aCA"}`}, // an encoded surrogate half is not valid UTF-8
		{"\x00", `"\u0000"`},
	} {
		b, err := json.Marshal(c.s)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.json {
			t.Errorf("marshal %q = %s, want %s", c.s, b, c.json)
		}
		var got RawString
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if got != c.s {
			t.Errorf("unmarshal %s = %q, want %q", b, got, c.s)
		}
	}
}

func TestRawStringRejects(t *testing.T) {
	for _, in := range []string{
		`{"b64":"YWJj"}`, // "abc" is valid UTF-8: must be a plain string
		`{"b64":""}`,
		`{}`,
		`{"b64":"!!"}`,
		`{"b64":1}`,
		`{"b64":"/w=="`,
		`1`,
		`[]`,
		`true`,
		`"unterminated`,
		``,
	} {
		var s RawString
		if err := s.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("UnmarshalJSON(%s) = %q, want error", in, s)
		}
	}
}

func TestID(t *testing.T) {
	id := testID(0xf0)
	s := id.String()
	if s != "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f" {
		t.Fatalf("String = %s", s)
	}
	if id.Short() != "f0f1f2f3" {
		t.Fatalf("Short = %s", id.Short())
	}
	p, err := ParseID(s)
	if err != nil || p != id {
		t.Fatalf("ParseID(%s) = %v, %v", s, p, err)
	}
	if id.IsNull() || !(ID{}).IsNull() {
		t.Fatal("IsNull wrong")
	}
	b, err := json.Marshal(id)
	if err != nil || string(b) != `"`+s+`"` {
		t.Fatalf("MarshalJSON = %s, %v", b, err)
	}
	var q ID
	if err := json.Unmarshal(b, &q); err != nil || q != id {
		t.Fatalf("UnmarshalJSON = %v, %v", q, err)
	}
	for _, bad := range []string{"", "f0", s[:63], s + "0", s[:62] + "zz", s[:62] + "-1", strings.Repeat(" ", 64)} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	for _, bad := range []string{`1`, `null`, `"` + s[:10] + `"`, `[]`} {
		var q ID
		if err := json.Unmarshal([]byte(bad), &q); err == nil && bad != `null` {
			t.Errorf("UnmarshalJSON(%s) accepted", bad)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "...", ".a", "a.", " ", "\xff", "a\\b", strings.Repeat("x", 255)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "/", "a/b", "a/", "/a", "a\x00", "\x00"} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
}

// rejects fails the test unless decode returns an error and no value for each input.
func rejects[T any](t *testing.T, what string, decode func([]byte) (T, error), inputs map[string][]byte) {
	t.Helper()
	for name, in := range inputs {
		v, err := decode(in)
		if err == nil {
			t.Errorf("%s: %s: accepted %.200q as %+v", what, name, in, v)
			continue
		}
		if !reflect.ValueOf(&v).Elem().IsZero() {
			t.Errorf("%s: %s: error %v but a non-zero value", what, name, err)
		}
	}
}

// jsonWith returns the JSON of v with the top-level fields in set replaced (or added)
// and those in del removed.
func jsonWith(t *testing.T, v any, set map[string]any, del ...string) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		m[k] = v
	}
	for _, k := range del {
		delete(m, k)
	}
	b, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeKeyFileRejects(t *testing.T) {
	k := sampleKeyFile()
	good, _ := EncodeKeyFile(k)
	rejects(t, "key file", DecodeKeyFile, map[string][]byte{
		"empty":          nil,
		"not json":       []byte("version: 1"),
		"null":           []byte("null"),
		"array":          []byte("[]"),
		"trailing":       append(append([]byte{}, good...), '}'),
		"truncated":      good[:len(good)-1],
		"version 0":      jsonWith(t, k, map[string]any{"version": 0}),
		"version 2":      jsonWith(t, k, map[string]any{"version": 2}),
		"no version":     jsonWith(t, k, nil, "version"),
		"kdf scrypt":     jsonWith(t, k, map[string]any{"kdf": "scrypt"}),
		"no kdf":         jsonWith(t, k, nil, "kdf"),
		"short salt":     jsonWith(t, k, map[string]any{"salt": "AAAAAAAAAAAAAAAAAAAA"}),
		"no salt":        jsonWith(t, k, nil, "salt"),
		"no data":        jsonWith(t, k, nil, "data"),
		"empty data":     jsonWith(t, k, map[string]any{"data": ""}),
		"bad base64":     jsonWith(t, k, map[string]any{"data": "!!!!"}),
		"threads 256":    jsonWith(t, k, map[string]any{"threads": 256}),
		"negative time":  jsonWith(t, k, map[string]any{"time": -1}),
		"string memory":  jsonWith(t, k, map[string]any{"memory_kib": "65536"}),
		"bad created":    jsonWith(t, k, map[string]any{"created": "yesterday"}),
		"float version":  jsonWith(t, k, map[string]any{"version": 1.5}),
		"created number": jsonWith(t, k, map[string]any{"created": 5}),
	})
}

func TestDecodeMasterKeyRejects(t *testing.T) {
	m := sampleMasterKey()
	good, _ := EncodeMasterKey(m)
	b31 := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==" // 31 bytes
	b33 := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // 33 bytes
	rejects(t, "master key", DecodeMasterKey, map[string][]byte{
		"empty":       nil,
		"null":        []byte("null"),
		"trailing":    append(append([]byte{}, good...), 'x'),
		"no encrypt":  jsonWith(t, m, nil, "encrypt"),
		"no mac":      jsonWith(t, m, nil, "mac"),
		"short enc":   jsonWith(t, m, map[string]any{"encrypt": b31}),
		"long enc":    jsonWith(t, m, map[string]any{"encrypt": b33}),
		"short mac":   jsonWith(t, m, map[string]any{"mac": b31}),
		"long mac":    jsonWith(t, m, map[string]any{"mac": b33}),
		"bad base64":  jsonWith(t, m, map[string]any{"mac": "%%%%"}),
		"number mac":  jsonWith(t, m, map[string]any{"mac": 1}),
		"array value": []byte(`[1,2]`),
	})
}

func TestDecodeConfigRejects(t *testing.T) {
	c := sampleConfig()
	good, _ := EncodeConfig(c)
	rejects(t, "config", DecodeConfig, map[string][]byte{
		"empty":          nil,
		"null":           []byte("null"),
		"trailing":       append(append([]byte{}, good...), "{}"...),
		"version 0":      jsonWith(t, c, map[string]any{"version": 0}),
		"version 2":      jsonWith(t, c, map[string]any{"version": 2}),
		"no id":          jsonWith(t, c, nil, "id"),
		"short id":       jsonWith(t, c, map[string]any{"id": "abcd"}),
		"non-hex id":     jsonWith(t, c, map[string]any{"id": strings.Repeat("g", 64)}),
		"min 0":          jsonWith(t, c, map[string]any{"chunk_min": 0}),
		"min > avg":      jsonWith(t, c, map[string]any{"chunk_min": 2 << 20}),
		"avg > max":      jsonWith(t, c, map[string]any{"chunk_avg": 9 << 20}),
		"max > 64 MiB":   jsonWith(t, c, map[string]any{"chunk_max": 64<<20 + 1}),
		"no chunk sizes": jsonWith(t, c, nil, "chunk_min", "chunk_avg", "chunk_max"),
		"negative min":   jsonWith(t, c, map[string]any{"chunk_min": -1}),
		"huge max":       jsonWith(t, c, map[string]any{"chunk_max": 1 << 32}),
		"pack too small": jsonWith(t, c, map[string]any{"pack_size": 1<<20 - 1}),
		"pack too large": jsonWith(t, c, map[string]any{"pack_size": 1<<30 + 1}),
		"no pack size":   jsonWith(t, c, nil, "pack_size"),
	})
}

func TestDecodeSnapshotRejects(t *testing.T) {
	s := sampleSnapshot()
	good, _ := EncodeSnapshot(s)
	rejects(t, "snapshot", DecodeSnapshot, map[string][]byte{
		"empty":        nil,
		"null":         []byte("null"),
		"trailing":     append(append([]byte{}, good...), " x"...),
		"truncated":    good[:len(good)/2],
		"version 0":    jsonWith(t, s, map[string]any{"version": 0}),
		"version 2":    jsonWith(t, s, map[string]any{"version": 2}),
		"unknown kind": jsonWith(t, s, map[string]any{"kind": "disk"}),
		"no kind":      jsonWith(t, s, nil, "kind"),
		"no tree":      jsonWith(t, s, nil, "tree"),
		"null tree":    jsonWith(t, s, map[string]any{"tree": ID{}.String()}),
		"short tree":   jsonWith(t, s, map[string]any{"tree": "abc"}),
		"bad parent":   jsonWith(t, s, map[string]any{"parent": "xyz"}),
		"bad original": jsonWith(t, s, map[string]any{"original": 5}),
		"bad time":     jsonWith(t, s, map[string]any{"time": "2024-13-01T00:00:00Z"}),
		"paths object": jsonWith(t, s, map[string]any{"paths": map[string]any{}}),
		"bad summary":  jsonWith(t, s, map[string]any{"summary": map[string]any{"errors": -1}}),
	})
}

// treeJSON marshals t as it is, without sorting its nodes.
func treeJSON(t *testing.T, tr *Tree) []byte {
	t.Helper()
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeTreeRejects(t *testing.T) {
	sub := idPtr(testID(1))
	file := func(name RawString) *Node { return &Node{Name: name, Type: NodeFile, Mode: 0o644} }
	one := func(n *Node) []byte { return treeJSON(t, &Tree{Nodes: []*Node{n}}) }
	good := treeJSON(t, sampleTree())
	in := map[string][]byte{
		"empty":           nil,
		"not json":        []byte("nodes"),
		"null":            []byte("null"),
		"array":           []byte("[]"),
		"string":          []byte(`"nodes"`),
		"nodes object":    []byte(`{"nodes":{}}`),
		"nodes string":    []byte(`{"nodes":"a"}`),
		"node number":     []byte(`{"nodes":[1]}`),
		"node null":       []byte(`{"nodes":[null]}`),
		"trailing":        append(append([]byte{}, good...), "x"...),
		"trailing value":  append(append([]byte{}, good...), ` {"nodes":[]}`...),
		"trailing brace":  append(append([]byte{}, good...), '}'),
		"truncated":       good[:len(good)-1],
		"repeated nodes":  []byte(`{"nodes":[],"nodes":[]}`),
		"name empty":      one(file("")),
		"name dot":        one(file(".")),
		"name dotdot":     one(file("..")),
		"name slash":      one(file("a/b")),
		"name only slash": one(file("/")),
		"name NUL":        one(file("a\x00b")),
		"no name":         []byte(`{"nodes":[{"type":"file"}]}`),
		"name number":     []byte(`{"nodes":[{"name":1,"type":"file"}]}`),
		"name b64 utf8":   []byte(`{"nodes":[{"name":{"b64":"YQ=="},"type":"file"}]}`),
		"unsorted":        treeJSON(t, &Tree{Nodes: []*Node{file("b"), file("a")}}),
		"unsorted bytes":  treeJSON(t, &Tree{Nodes: []*Node{file("\xff"), file("z")}}),
		"duplicate":       treeJSON(t, &Tree{Nodes: []*Node{file("a"), file("a")}}),
		"duplicate later": treeJSON(t, &Tree{Nodes: []*Node{file("a"), file("b"), file("b")}}),
		"dir no subtree":  one(&Node{Name: "d", Type: NodeDir, Mode: 0o755}),
		"unknown type":    one(&Node{Name: "x", Type: "door"}),
		"empty type":      one(&Node{Name: "x"}),
		"type case":       one(&Node{Name: "x", Type: "File"}),
		"mode type bits":  one(&Node{Name: "x", Type: NodeFile, Mode: 0o100644}),
		"mode high bit":   one(&Node{Name: "x", Type: NodeFile, Mode: 1 << 31}),
		"bad subtree":     []byte(`{"nodes":[{"name":"d","type":"dir","subtree":"00"}]}`),
		"bad content":     []byte(`{"nodes":[{"name":"f","type":"file","content":["00"]}]}`),
		"negative uid":    []byte(`{"nodes":[{"name":"f","type":"file","uid":-1}]}`),
		"bad xattr value": []byte(`{"nodes":[{"name":"f","type":"file","xattrs":[{"name":"a","value":"!"}]}]}`),
		"bad link target": []byte(`{"nodes":[{"name":"f","type":"symlink","link_target":{"b64":"*"}}]}`),
	}
	// One bad node after good ones is found too.
	bad := sampleTree()
	bad.Nodes = append(bad.Nodes, &Node{Name: "\xff\xff", Type: NodeDir})
	in["bad last node"] = treeJSON(t, bad)
	rejects(t, "tree", DecodeTree, in)

	// Accepted: a directory with a subtree, and a dir-named node sorted after a file.
	for _, ok := range []*Tree{
		{Nodes: []*Node{{Name: "d", Type: NodeDir, Subtree: sub}}},
		{Nodes: []*Node{file("a"), file("a.b"), file("a0"), file("b")}},
	} {
		if _, err := DecodeTree(treeJSON(t, ok)); err != nil {
			t.Errorf("rejected %s: %v", treeJSON(t, ok), err)
		}
	}
}

func TestDecodeTreeAccepts(t *testing.T) {
	for _, in := range []string{
		`{"nodes":[]}`,
		`{"nodes":null}`,
		`{}`,
		" \n{\"nodes\":[]}\n ", // whitespace around the value
		`{"nodes":[],"future":{"x":[1,2,{"y":null}]}}`, // unknown fields are ignored
		`{"future":1,"nodes":[{"name":"a","type":"fifo","future":[true]}]}`,
	} {
		if _, err := DecodeTree([]byte(in)); err != nil {
			t.Errorf("DecodeTree(%s): %v", in, err)
		}
	}
}

// packHeader builds a pack header by hand from the version and raw field values.
func packHeader(version byte, count uint64, blobs ...[4]uint64) []byte {
	b := []byte{version}
	b = binary.AppendUvarint(b, count)
	for i, f := range blobs {
		id := testID(byte(i))
		b = append(b, byte(f[0]))
		b = append(b, id[:]...)
		_ = f[1] // offset: not stored in a pack header
		b = binary.AppendUvarint(b, f[2])
		b = binary.AppendUvarint(b, f[3])
	}
	return b
}

func TestDecodePackHeaderRejects(t *testing.T) {
	good := EncodePackHeader(samplePackBlobs())
	in := map[string][]byte{
		"empty":              nil,
		"version 0":          packHeader(0, 0),
		"version 2":          packHeader(2, 1, [4]uint64{1, 0, 10, 10}),
		"no count":           {packHeaderVersion},
		"type 0":             packHeader(1, 1, [4]uint64{0, 0, 10, 10}),
		"type 3":             packHeader(1, 1, [4]uint64{3, 0, 10, 10}),
		"type 255":           packHeader(1, 1, [4]uint64{255, 0, 10, 10}),
		"count > blobs":      packHeader(1, 2, [4]uint64{1, 0, 10, 10}),
		"count < blobs":      packHeader(1, 1, [4]uint64{1, 0, 10, 10}, [4]uint64{1, 0, 10, 10}),
		"huge count":         packHeader(1, 1<<62, [4]uint64{1, 0, 10, 10}),
		"max count":          packHeader(1, 1<<64-1),
		"length too large":   packHeader(1, 1, [4]uint64{1, 0, MaxBlobSize + 1025, 10}),
		"raw too large":      packHeader(1, 1, [4]uint64{1, 0, 10, MaxBlobSize + 1}),
		"length overflow":    packHeader(1, 1, [4]uint64{1, 0, 1<<64 - 1, 10}),
		"trailing":           append(append([]byte{}, good...), 0),
		"overlong varint":    append(packHeader(1, 1, [4]uint64{1, 0, 10, 10})[:35], 0x8a, 0x00, 10),
		"overlong count":     append([]byte{1, 0x80, 0x00}, packHeader(1, 0)[2:]...),
		"varint over 64 bit": append(packHeader(1, 1, [4]uint64{1, 0, 10, 10})[:35], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
	}
	for n := range len(good) {
		in["prefix "+strconv.Itoa(n)] = good[:n]
	}
	// 4 GiB of blobs: the last offset would not fit in 32 bits.
	var big [][4]uint64
	for range 65 {
		big = append(big, [4]uint64{1, 0, MaxBlobSize + 1024, 1})
	}
	in["beyond 4 GiB"] = packHeader(1, uint64(len(big)), big...)
	rejects(t, "pack header", DecodePackHeader, in)

	// Exactly up to the limit is fine: 63 full blobs and one that ends at 4 GiB - 1.
	var fit [][4]uint64
	var total uint64
	for range 63 {
		fit = append(fit, [4]uint64{1, 0, MaxBlobSize + 1024, 1})
		total += MaxBlobSize + 1024
	}
	fit = append(fit, [4]uint64{2, 0, 1<<32 - 1 - total, 1})
	blobs, err := DecodePackHeader(packHeader(1, uint64(len(fit)), fit...))
	if err != nil {
		t.Fatalf("pack ending at 4 GiB-1: %v", err)
	}
	if last := blobs[len(blobs)-1]; uint64(last.Offset)+uint64(last.Length) != 1<<32-1 {
		t.Fatalf("last blob %+v", last)
	}
}

// indexBytes builds an index by hand.
type indexBuilder struct{ b []byte }

func newIndexBuilder(version byte) *indexBuilder {
	return &indexBuilder{b: append([]byte("CIX"), version)}
}
func (ib *indexBuilder) uv(v uint64) *indexBuilder { ib.b = binary.AppendUvarint(ib.b, v); return ib }
func (ib *indexBuilder) id(seed byte) *indexBuilder {
	id := testID(seed)
	ib.b = append(ib.b, id[:]...)
	return ib
}
func (ib *indexBuilder) blob(typ byte, off, length, raw uint64) *indexBuilder {
	ib.b = append(ib.b, typ)
	return ib.id(0x77).uv(off).uv(length).uv(raw)
}

func TestDecodeIndexRejects(t *testing.T) {
	good := EncodeIndex(sampleIndex())
	nb := newIndexBuilder
	in := map[string][]byte{
		"empty":             nil,
		"magic only":        []byte("CIX"),
		"bad magic":         append([]byte("CIY"), good[3:]...),
		"lower magic":       append([]byte("cix"), good[3:]...),
		"version 0":         nb(0).uv(0).uv(0).b,
		"version 2":         nb(2).uv(0).uv(0).b,
		"no packs count":    nb(1).uv(0).b,
		"supersedes > data": nb(1).uv(2).id(1).uv(0).b,
		"huge supersedes":   nb(1).uv(1 << 60).id(1).uv(0).b,
		"packs > data":      nb(1).uv(0).uv(2).id(1).uv(0).b,
		"blobs > data":      nb(1).uv(0).uv(1).id(1).uv(2).blob(1, 0, 10, 10).b,
		"huge blobs":        nb(1).uv(0).uv(1).id(1).uv(1<<64-1).blob(1, 0, 10, 10).b,
		"type 0":            nb(1).uv(0).uv(1).id(1).uv(1).blob(0, 0, 10, 10).b,
		"type 3":            nb(1).uv(0).uv(1).id(1).uv(1).blob(3, 0, 10, 10).b,
		"offset > 4 GiB":    nb(1).uv(0).uv(1).id(1).uv(1).blob(1, 1<<32, 10, 10).b,
		"length too large":  nb(1).uv(0).uv(1).id(1).uv(1).blob(1, 0, MaxBlobSize+1025, 10).b,
		"raw too large":     nb(1).uv(0).uv(1).id(1).uv(1).blob(1, 0, 10, MaxBlobSize+1).b,
		"end beyond 4 GiB":  nb(1).uv(0).uv(1).id(1).uv(1).blob(1, 1<<32-10, 10, 10).b,
		"trailing":          append(append([]byte{}, good...), 0),
		"trailing pack":     nb(1).uv(0).uv(0).id(1).uv(0).b,
		"overlong varint":   append(nb(1).uv(0).uv(1).id(1).uv(1).blob(1, 0, 10, 10).b[:4+1+1+32+1+1+32], 0x80, 0x00, 10, 10),
		"overlong count":    append(nb(1).b, 0x80, 0x00, 0x00),
	}
	for n := range len(good) {
		in["prefix "+strconv.Itoa(n)] = good[:n]
	}
	rejects(t, "index", DecodeIndex, in)

	// A blob that ends exactly at 4 GiB - 1 is fine.
	ok := nb(1).uv(0).uv(1).id(1).uv(1).blob(1, 1<<32-11, 10, 10).b
	if _, err := DecodeIndex(ok); err != nil {
		t.Fatalf("blob ending at 4 GiB-1: %v", err)
	}
}

// TestDecodeAllocations checks that decoders given many tiny or invalid elements
// allocate in proportion to their input, not to the element count times the size
// of a decoded element.
func TestDecodeAllocations(t *testing.T) {
	rep := func(prefix, elem, suffix string, n int) []byte {
		return []byte(prefix + strings.Repeat(elem+",", n-1) + elem + suffix)
	}
	const n = 50000
	id := `"` + testID(1).String() + `"`
	for _, c := range []struct {
		name   string
		decode func([]byte) error
		in     []byte
		factor float64 // allowed bytes allocated per input byte
	}{
		{"tree of numbers", treeErr, rep(`{"nodes":[`, `0`, `]}`, n), 16},
		{"tree of empty nodes", treeErr, rep(`{"nodes":[`, `{}`, `]}`, n), 16},
		{"tree of nulls", treeErr, rep(`{"nodes":[`, `null`, `]}`, n), 16},
		{"tree of unsorted", treeErr, rep(`{"nodes":[`, `{"name":"a","type":"file"}`, `]}`, n), 16},
		{"tree of small nodes", treeErr, []byte(`{"nodes":[` + smallNodes(n) + `]}`), 24},
		{"tree of unknown", treeErr, rep(`{"x":[`, `0`, `]}`, n), 16},
		// Inside one node encoding/json decodes a whole array before the node is
		// checked: 40 bytes an Xattr for 3 input bytes, and growing the slice by 1.25
		// allocates about 5 times its final size in all.
		{"node of xattrs", treeErr, rep(`{"nodes":[{"name":"a","type":"file","xattrs":[`, `{}`, `]}]}`, n), 100},
		{"node of bad content", treeErr, rep(`{"nodes":[{"name":"a","type":"file","content":[`, `0`, `]}]}`, n), 16},
		{"node of content", treeErr, rep(`{"nodes":[{"name":"a","type":"file","content":[`, id, `]}]}`, n), 16},
		{"snapshot paths", snapErr, rep(`{"version":1,"kind":"file","tree":`+id+`,"paths":[`, `""`, `]}`, n), 48},
		{"pack header", packErr, packHeader(1, n, slices.Repeat([][4]uint64{{1, 0, 1, 1}}, n)...), 8},
		{"index", indexErr, EncodeIndex(&Index{Supersedes: make([]ID, n)}), 8},
	} {
		got := allocated(func() { _ = c.decode(c.in) })
		if ratio := float64(got) / float64(len(c.in)); ratio > c.factor {
			t.Errorf("%s: %d bytes in, %d allocated (%.1fx, want <= %.0fx)", c.name, len(c.in), got, ratio, c.factor)
		}
	}
}

func smallNodes(n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"name":"`)
		sb.WriteString(strings.Repeat("a", 1+i/26/26/26))
		sb.WriteByte(byte('a' + i/26/26%26))
		sb.WriteByte(byte('a' + i/26%26))
		sb.WriteByte(byte('a' + i%26))
		sb.WriteString(`","type":"fifo"}`)
	}
	return sb.String()
}

func treeErr(b []byte) error  { _, err := DecodeTree(b); return err }
func snapErr(b []byte) error  { _, err := DecodeSnapshot(b); return err }
func packErr(b []byte) error  { _, err := DecodePackHeader(b); return err }
func indexErr(b []byte) error { _, err := DecodeIndex(b); return err }

// allocated returns the fewest bytes that one of three calls of f allocated.
func allocated(f func()) uint64 {
	best := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		best = min(best, after.TotalAlloc-before.TotalAlloc)
	}
	return best
}

func BenchmarkDecodeTree(b *testing.B) {
	tr := &Tree{}
	for i := range 1000 {
		n := *sampleTree().Nodes[5]
		n.Name = RawString("file" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)))
		tr.Nodes = append(tr.Nodes, &n)
	}
	enc, err := EncodeTree(tr)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeTree(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func TestChunkListRoundTripAndLimits(t *testing.T) {
	ids := []ID{testID(1), {}, testID(3)}
	got, err := DecodeChunkList(EncodeChunkList(ids))
	if err != nil || len(got) != 3 || got[0] != ids[0] || !got[1].IsNull() || got[2] != ids[2] {
		t.Fatalf("round trip: %v %v", got, err)
	}
	l := &ChunkList{IDs: ids, Group: 2, Digests: []ID{testID(7), {}}}
	gl, err := DecodeChunkListDigests(EncodeChunkListDigests(l))
	if err != nil || !reflect.DeepEqual(gl, l) {
		t.Fatalf("round trip with digests: %v %v", gl, err)
	}
	withDigests := EncodeChunkListDigests(l)
	for _, bad := range [][]byte{
		nil, []byte("CCL"), []byte("XYZ\x01\x00"), []byte("CCL\x03\x00"), []byte("CCL\x01\x01"),
		[]byte("CCL\x02\x00"),     // no group
		[]byte("CCL\x02\x00\x04"), // a group in an empty list
		append(EncodeChunkList(ids), 0),
		append(chunkListV1Bytes(ids), 0),
		withDigests[:len(withDigests)-1],
		append(withDigests, 0),
		append(EncodeChunkList(ids)[:len(EncodeChunkList(ids))-1], 3), // group not a power of two
	} {
		if _, err := DecodeChunkList(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// chunkListV1Bytes is a list of ids in version 1, which EncodeChunkList no
// longer writes.
func chunkListV1Bytes(ids []ID) []byte {
	b := []byte("CCL\x01")
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

// A version 1 list still reads: the same ids, no digests.
func TestChunkListVersion1(t *testing.T) {
	ids := []ID{testID(1), {}, testID(3)}
	l, err := DecodeChunkListDigests(chunkListV1Bytes(ids))
	if err != nil || !reflect.DeepEqual(l, &ChunkList{IDs: ids}) {
		t.Fatalf("version 1: %v %v", l, err)
	}
}

func TestImageSnapshotChecks(t *testing.T) {
	s := sampleImageSnapshot()
	b, _ := EncodeSnapshot(s)
	if _, err := DecodeSnapshot(b); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Snapshot){
		"no image":          func(s *Snapshot) { s.Image = nil },
		"gap in regions":    func(s *Snapshot) { s.Image.Regions[1].Offset++ },
		"short coverage":    func(s *Snapshot) { s.Image.Size++ },
		"bad chunk size":    func(s *Snapshot) { s.Image.Regions[0].ChunkSize = 0 },
		"partition no info": func(s *Snapshot) { s.Image.Regions[1].Partition = nil },
		"unknown kind":      func(s *Snapshot) { s.Image.Regions[0].Kind = "other" },
	} {
		s := sampleImageSnapshot()
		mutate(s)
		b, _ := EncodeSnapshot(s)
		if _, err := DecodeSnapshot(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
