package format

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current encoders")

// golden is one codec's golden file: the value it holds, how to encode it and how to
// decode the file. A failure here means that repositories written before the change
// can no longer be read, or that new ones differ from old ones; either needs a new
// format version (docs/format.md, "Versioning"), not a new golden file.
type golden struct {
	file   string
	value  any
	encode func() ([]byte, error)
	decode func([]byte) (any, error)
}

func goldens() []golden {
	return []golden{
		{"keyfile.json", sampleKeyFile(),
			func() ([]byte, error) { return EncodeKeyFile(sampleKeyFile()) },
			func(b []byte) (any, error) { return DecodeKeyFile(b) }},
		{"masterkey.json", sampleMasterKey(),
			func() ([]byte, error) { return EncodeMasterKey(sampleMasterKey()) },
			func(b []byte) (any, error) { return DecodeMasterKey(b) }},
		{"config.json", sampleConfig(),
			func() ([]byte, error) { return EncodeConfig(sampleConfig()) },
			func(b []byte) (any, error) { return DecodeConfig(b) }},
		{"packheader.bin", samplePackBlobs(),
			func() ([]byte, error) { return EncodePackHeader(samplePackBlobs()), nil },
			func(b []byte) (any, error) { return DecodePackHeader(b) }},
		{"index.bin", sampleIndex(),
			func() ([]byte, error) { return EncodeIndex(sampleIndex()), nil },
			func(b []byte) (any, error) { return DecodeIndex(b) }},
		{"snapshot.json", sampleSnapshot(),
			func() ([]byte, error) { return EncodeSnapshot(sampleSnapshot()) },
			func(b []byte) (any, error) { return DecodeSnapshot(b) }},
		{"snapshot-image.json", sampleImageSnapshot(),
			func() ([]byte, error) { return EncodeSnapshot(sampleImageSnapshot()) },
			func(b []byte) (any, error) { return DecodeSnapshot(b) }},
		{"chunklist.bin", sampleChunkList(),
			func() ([]byte, error) { return EncodeChunkListDigests(sampleChunkList()), nil },
			func(b []byte) (any, error) { return DecodeChunkListDigests(b) }},
		{"tree.json", sampleTree(),
			func() ([]byte, error) { return EncodeTree(sampleTree()) },
			func(b []byte) (any, error) { return DecodeTree(b) }},
	}
}

func TestGolden(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.file, func(t *testing.T) {
			path := filepath.Join("testdata", g.file)
			enc, err := g.encode()
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, enc, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (make it with go test ./internal/format -run Golden -update)", err)
			}
			got, err := g.decode(want)
			if err != nil {
				t.Fatalf("decoding %s: %v", path, err)
			}
			if !reflect.DeepEqual(got, g.value) {
				t.Errorf("decoding %s:\n got %s\nwant %s", path, show(got), show(g.value))
			}
			if !bytes.Equal(enc, want) {
				t.Errorf("encoding differs from %s:\n got %q\nwant %q", path, enc, want)
			}
		})
	}
}

// show formats v for a failure message: as JSON, which shows what pointers point to.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}
