package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
)

func TestStats(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(e.dir, "src")
	random := randomData(t, 4<<20)
	writeFile(t, filepath.Join(src, "random"), random)
	writeFile(t, filepath.Join(src, "random-copy"), random)                                // dedups
	writeFile(t, filepath.Join(src, "text"), bytes.Repeat([]byte("cairn stats "), 400000)) // compresses
	e.must("init")
	e.must("backup", src)
	e.must("backup", "--force", src)
	var out struct {
		Snapshots []countsOut `json:"snapshots"`
		Total     countsOut   `json:"total"`
	}
	if err := json.Unmarshal([]byte(e.must("stats", "--json")), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Snapshots) != 2 {
		t.Fatalf("stats lists %d snapshots", len(out.Snapshots))
	}
	s := out.Snapshots[0]
	logical := uint64(2*len(random) + 12*400000)
	if s.Logical != logical {
		t.Errorf("logical size %d, want %d", s.Logical, logical)
	}
	if s.DedupRatio < 1.3 || s.CompressionRatio < 1.5 {
		t.Errorf("one snapshot: dedup %.2f, compression %.2f", s.DedupRatio, s.CompressionRatio)
	}
	// Two snapshots of the same data: twice the logical bytes, the same stored data
	// (only their trees differ).
	if out.Total.Logical != 2*logical || out.Total.Stored > s.Stored*101/100 || out.Total.DedupRatio < 2*s.DedupRatio*0.99 {
		t.Errorf("total %+v, one snapshot %+v", out.Total, s)
	}
}

type countsOut struct {
	Logical          uint64  `json:"logical_size"`
	Raw              uint64  `json:"raw_size"`
	Stored           uint64  `json:"stored_size"`
	DedupRatio       float64 `json:"dedup_ratio"`
	CompressionRatio float64 `json:"compression_ratio"`
}
