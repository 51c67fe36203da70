package format

import (
	"encoding/json"
	"fmt"
	"time"
)

// Snapshot kinds.
const (
	KindFile  = "file"
	KindImage = "image"
)

// Snapshot is one backup: when, of what, from where, and the root of its tree.
type Snapshot struct {
	Version  int       `json:"version"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Host     string    `json:"host"`
	User     string    `json:"user,omitempty"`
	Paths    []string  `json:"paths"`
	Tags     []string  `json:"tags,omitempty"`
	Parent   *ID       `json:"parent,omitempty"`
	Tree     ID        `json:"tree,omitzero"`   // root tree of a file snapshot
	Image    *Image    `json:"image,omitempty"` // what an image snapshot holds
	Summary  *Summary  `json:"summary,omitempty"`
	Original *ID       `json:"original,omitempty"` // set when a snapshot is rewritten
}

// Summary holds the counts of the backup that made a snapshot.
type Summary struct {
	Start           time.Time `json:"start"`
	End             time.Time `json:"end"`
	FilesNew        uint64    `json:"files_new"`
	FilesChanged    uint64    `json:"files_changed"`
	FilesUnmodified uint64    `json:"files_unmodified"`
	DirsNew         uint64    `json:"dirs_new"`
	DirsChanged     uint64    `json:"dirs_changed"`
	DirsUnmodified  uint64    `json:"dirs_unmodified"`
	TotalFiles      uint64    `json:"total_files"`
	TotalBytes      uint64    `json:"total_bytes"`
	DataAdded       uint64    `json:"data_added"`        // plaintext bytes of new blobs
	DataAddedStored uint64    `json:"data_added_stored"` // their stored size
	Errors          uint64    `json:"errors"`
}

// EncodeSnapshot returns the JSON of s.
func EncodeSnapshot(s *Snapshot) ([]byte, error) { return json.Marshal(s) }

// DecodeSnapshot parses and checks a snapshot.
func DecodeSnapshot(b []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if s.Version != Version {
		return nil, fmt.Errorf("snapshot: unsupported version %d", s.Version)
	}
	if s.Kind != KindFile && s.Kind != KindImage {
		return nil, fmt.Errorf("snapshot: unknown kind %q", s.Kind)
	}
	switch {
	case s.Kind == KindFile && s.Tree.IsNull():
		return nil, fmt.Errorf("snapshot: no tree")
	case s.Kind == KindImage && s.Image == nil:
		return nil, fmt.Errorf("snapshot: image snapshot without image")
	case s.Kind == KindImage:
		if err := s.Image.check(); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	return &s, nil
}
